"""Per-host fields: hardware, node labels and taints, and the SSH connection variables."""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Mapping
from pathlib import Path

from ansible.module_utils.parsing.convert_bool import boolean

from provisioner import arch as arch_table
from provisioner.inventory.model import BOARD_ARCHES, BOARDS, Hardware
from provisioner.inventory.report import Report
from provisioner.inventory.syntax import kubelet_label_problem, label_key_problem, label_value_problem, taint_problem

_HARDWARE_KEYS = ("arch", "board", "memory_mb")
_MAX_PORT = 65535


def _template(value: object) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def check_hardware(report: Report, host: str, value: object) -> Hardware:
    """provision_hardware: {arch, board, memory_mb}; every part optional (probed when absent)."""
    if value is None:
        return Hardware()
    if not isinstance(value, Mapping):
        report.error(
            "provision_hardware", "must be a mapping", "write {arch: arm64, board: rpi4, memory_mb: 4096}", host=host
        )
        return Hardware()
    for key in value:
        if key not in _HARDWARE_KEYS:
            close = difflib.get_close_matches(str(key), _HARDWARE_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            report.error(
                ("provision_hardware", str(key)), f"unknown key{hint}", "use arch, board and memory_mb", host=host
            )
    arch = _arch(report, host, value.get("arch"))
    board = _board(report, host, value.get("board"), arch)
    return Hardware(arch=arch, board=board, memory_mb=_memory(report, host, value.get("memory_mb")))


def _arch(report: Report, host: str, arch: object) -> str | None:
    if arch is None:
        return None
    aliases = arch_table.inventory_aliases()
    supported = ", ".join(arch_table.inventory_arches()) + "".join(f" (or {a} for {n})" for a, n in aliases.items())
    if not isinstance(arch, str):
        report.error(
            ("provision_hardware", "arch"), f"must be a string, found {arch!r}", f"use one of {supported}", host=host
        )
        return None
    arch = aliases.get(arch, arch)
    if arch in arch_table.inventory_arches():
        return arch
    refused = arch_table.refused_reason(arch)
    release = arch_table.release_arch(arch)
    message = f"{arch!r} is not an architecture k3s ships binaries for"
    if refused:
        message, fix = f"{arch!r} cannot run K3s: {refused}", "install a 64-bit (arm64) or ARMv7 OS, or remove the host"
    elif release:
        fix = f"write {arch_table.inventory_name(release)} (k3s's name for {arch})"
    else:
        fix = f"use one of {supported}, or remove the host"
    report.error(("provision_hardware", "arch"), message, fix, host=host)
    return None


def _board(report: Report, host: str, board: object, arch: str | None) -> str | None:
    if board is None:
        return None
    if not isinstance(board, str) or board not in BOARDS:
        close = difflib.get_close_matches(str(board), BOARDS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        report.error(
            ("provision_hardware", "board"),
            f"{board!r} is not a known board",
            f"{hint}use one of {', '.join(BOARDS)} (generic or other-arm when unsure)",
            host=host,
        )
        return None
    allowed = BOARD_ARCHES.get(board)
    if arch is not None and allowed is not None and arch not in allowed:
        report.error(
            ("provision_hardware", "arch"),
            f"{board} boards do not run {arch}",
            f"use {' or '.join(allowed)} for a {board}, or fix the board",
            host=host,
        )
    return board


def _memory(report: Report, host: str, memory: object) -> int | None:
    if memory is None:
        return None
    if isinstance(memory, bool) or not isinstance(memory, int) or memory <= 0:
        report.error(
            ("provision_hardware", "memory_mb"),
            f"{memory!r} is not a positive whole number of MiB",
            "write the RAM in MiB without a unit, e.g. memory_mb: 4096 for 4 GiB",
            host=host,
        )
        return None
    return memory


def check_labels(report: Report, host: str, value: object) -> dict[str, str]:
    """k3s_node_labels: mapping of label key -> value, in Kubernetes syntax."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        report.error("k3s_node_labels", "must be a mapping of label -> value", "write e.g. {zone: a}", host=host)
        return {}
    labels: dict[str, str] = {}
    for key, raw in value.items():
        path = ("k3s_node_labels", str(key))
        reason = label_key_problem(str(key)) or kubelet_label_problem(str(key))
        if reason:
            report.error(path, f"label key {key!r} {reason}", "use e.g. example.com/zone or zone", host=host)
            continue
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            shown = str(raw).lower() if isinstance(raw, bool) else str(raw)
            report.error(path, f"label value must be a string, found {raw!r}", f'quote it: {key}: "{shown}"', host=host)
            continue
        text = str(raw)
        if reason := label_value_problem(text):
            report.error(path, f"label value {text!r} {reason}", "use e.g. edge-a", host=host)
            continue
        labels[str(key)] = text
    return labels


def check_taints(report: Report, host: str, value: object) -> tuple[str, ...]:
    """k3s_node_taints: list of key=value:Effect."""
    if value is None:
        return ()
    if not isinstance(value, list):
        report.error("k3s_node_taints", "must be a list", 'write e.g. ["dedicated=edge:NoSchedule"]', host=host)
        return ()
    taints: list[str] = []
    for number, taint in enumerate(value):
        if not isinstance(taint, str):
            report.error(("k3s_node_taints", number), f"{taint!r} is not a string", "write key=value:Effect", host=host)
        elif reason := taint_problem(taint):
            report.error(
                ("k3s_node_taints", number),
                f"taint {taint!r} {reason}",
                "write key=value:Effect, Effect one of NoSchedule, PreferNoSchedule, NoExecute",
                host=host,
            )
        else:
            taints.append(taint)
    return tuple(taints)


def check_port(report: Report, host: str, variables: Mapping[str, object]) -> int:
    """ansible_port (or ansible_ssh_port), default 22; Ansible accepts digits in a string too."""
    name = "ansible_port" if "ansible_port" in variables else "ansible_ssh_port"
    raw = variables.get(name)
    if raw is None or _template(raw):
        return 22
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw <= _MAX_PORT:
        report.error(name, f"{raw!r} is not a TCP port", "use a number from 1 to 65535 (22 by default)", host=host)
        return 22
    return raw


def port_given(variables: Mapping[str, object]) -> bool:
    """Whether the inventory sets the port (Ansible then passes it to ssh, ahead of ~/.ssh/config's Port)."""
    return any(variables.get(name) is not None and not _template(variables.get(name))
               for name in ("ansible_port", "ansible_ssh_port"))


def check_bool(report: Report, host: str | None, name: str, raw: object, default: bool) -> bool:
    """A boolean as Ansible reads it (yes/no/true/false/1/0)."""
    if raw is None or _template(raw):
        return default
    try:
        return bool(boolean(raw, strict=True))
    except TypeError:
        report.error(name, f"{raw!r} is not a boolean", "use true or false", host=host)
        return default


def text_or_none(report: Report, host: str, name: str, raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        report.error(name, f"must be a string, found {raw!r}", "quote it", host=host)
        return None
    return raw


def ssh_option(args: str | None, option: str) -> str | None:
    """The value of ``-o Option=value`` (or ``-oOption=value`` / ``-o Option value``) in SSH args; like ssh, the first
    one wins."""
    if not args or _template(args):
        return None
    try:
        words = shlex.split(args)
    except ValueError:
        return None
    for number, word in enumerate(words):
        text = word[2:] if word.startswith("-o") and word != "-o" else None
        if word == "-o" and number + 1 < len(words):
            text = words[number + 1]
        if text is None:
            continue
        key, sep, value = text.partition("=")
        if not sep:
            key, _, value = text.partition(" ")
        if key.strip().lower() == option.lower():
            return value.strip()
    return None


def known_hosts_file(common: str | None, extra: str | None) -> Path | None:
    """The inventory's UserKnownHostsFile as ssh applies it: Ansible puts ansible_ssh_common_args before
    ansible_ssh_extra_args on the ssh command line, and ssh keeps the first value of an option."""
    value = ssh_option(common, "UserKnownHostsFile") or ssh_option(extra, "UserKnownHostsFile")
    return Path(value).expanduser() if value else None


def strict_checking_off(common: str | None, extra: str | None) -> bool:
    value = ssh_option(common, "StrictHostKeyChecking") or ssh_option(extra, "StrictHostKeyChecking")
    return value is not None and value.lower() in ("no", "off", "false")
