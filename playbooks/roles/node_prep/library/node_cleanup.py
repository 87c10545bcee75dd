#!/usr/bin/python
"""Ansible module: remove what a Kubernetes node (K3s or kubeadm) leaves on its host outside its own files, without
touching anything else.

Stopping the node's services leaves containerd shims running (K3s's unit has KillMode=process), pod network
namespaces, tmpfs/overlay mounts under the data and run directories, the CNI's interfaces (flannel, Calico, Cilium)
and the iptables chains of kube-proxy and the CNI (KUBE-*, CNI-*, FLANNEL-*, cali-*, CILIUM_*). This module removes
exactly those the caller names, in an order that works (processes, namespaces, mounts, interfaces, firewall), and
reports each action. Firewall rules are removed with one `iptables-restore --noflush` script per tool that deletes
only the rules jumping to the cluster's chains and then those chains: unrelated rules (and so the SSH session) are
never flushed. Supports check mode. Used by the k3s_reset and kubeadm_reset roles through node_prep's cleanup.yml.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DOCUMENTATION = r"""
module: node_cleanup
short_description: Remove a cluster's processes, pod namespaces, mounts, interfaces and firewall chains from a host
description:
  - Kills processes started from the data directory or left in the named units' cgroups, with every process below
    them (the pods' processes under each containerd shim).
  - Deletes C(cni-*) network namespaces, unmounts everything under I(mount_roots), deletes I(interfaces) and the
    veth devices attached to C(cni0), and removes iptables/ip6tables chains named with I(chain_prefixes) together
    with the rules that jump to them. Nothing else is flushed.
options:
  data_dir: {type: path, required: true, description: Processes whose executable lies below it are leftovers.}
  units: {type: list, elements: str, required: true, description: Unit names whose cgroups may hold leftovers.}
  mount_roots: {type: list, elements: path, required: true, description: Directories whose mounts are removed.}
  interfaces: {type: list, elements: str, required: true, description: Interface names to delete when present.}
  chain_prefixes: {type: list, elements: str, required: true, description: Prefixes of the cluster's iptables chains.}
  rule_comments: {type: list, elements: str, default: [], description: Comment prefixes marking the cluster's rules.}
  product: {type: str, default: K3s, description: What the node ran, for the action lines.}
author: provision
"""

RETURN = r"""
actions:
  description: What was (or in check mode would be) done, one line each.
  type: list
  elements: str
  returned: always
"""

_JUMP = re.compile(r"^-[jg]$")
_MOUNTINFO_MIN_FIELDS = 5


# ---------------------------------------------------------------------------------------------- firewall (pure)
def firewall_script(save_text: str, prefixes: list[str], comments: list[str] | None = None) -> str:
    """An iptables-restore --noflush script removing the cluster's chains and the rules pointing at them; '' if none.

    Per table: delete every rule outside a cluster chain that jumps (-j/-g) to a cluster chain or whose comment starts
    with one of `comments`; then flush all cluster chains, then delete them (flush first: they reference each other).
    """
    comments = comments or []
    out: list[str] = []
    table = ""
    chains: list[str] = []
    rules: list[tuple[str, list[str], str]] = []  # chain, parsed arguments, the line as iptables-save wrote it

    def ours(name: str) -> bool:
        return any(name.startswith(p) for p in prefixes)

    def flush_table() -> None:
        own = [c for c in chains if ours(c)]
        deletes = [line for chain, args, line in rules if not ours(chain) and _points_at_cluster(args, ours, comments)]
        if not own and not deletes:
            return
        out.append(f"*{table}")
        # The saved line, with -A turned into -D: iptables-save's quoting is what iptables-restore reads back.
        out.extend("-D" + line[2:] for line in deletes)
        out.extend(f"-F {c}" for c in own)
        out.extend(f"-X {c}" for c in own)
        out.append("COMMIT")

    for raw in save_text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table, chains, rules = line[1:], [], []
        elif line.startswith(":"):
            chains.append(line[1:].split()[0])
        elif line.startswith("-A "):
            tokens = shlex.split(line)
            rules.append((tokens[1], tokens[2:], line))
        elif line == "COMMIT":
            flush_table()
    return "\n".join(out) + "\n" if out else ""


def _points_at_cluster(args: list[str], ours: Callable[[str], bool], comments: list[str]) -> bool:
    for index, word in enumerate(args[:-1]):
        if _JUMP.match(word) and ours(args[index + 1]):
            return True
        if word == "--comment" and any(args[index + 1].startswith(c) for c in comments):
            return True
    return False


def chains_left(save_text: str, prefixes: list[str]) -> list[str]:
    return [line[1:].split()[0] for line in save_text.splitlines()
            if line.startswith(":") and any(line[1:].startswith(p) for p in prefixes)]


# ------------------------------------------------------------------------------------------------ mounts (pure)
def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mounts_under(mountinfo: str, roots: list[str]) -> list[str]:
    """Mount points at or below any root, deepest first (so children go before parents)."""
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < _MOUNTINFO_MIN_FIELDS:
            continue
        point = _unescape(fields[4])
        if any(point == r.rstrip("/") or point.startswith(r.rstrip("/") + "/") for r in roots):
            found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


# -------------------------------------------------------------------------------------------------- host actions
def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60, check=False)


def with_descendants(roots: list[int], parents: dict[int, int]) -> list[int]:
    """The roots and every process below them (``parents``: pid -> ppid), roots first. A shim's children are the
    pods' processes: their executables lie elsewhere and their cgroups are the pods', not the unit's, so only the
    process tree finds them (K3s's killall kills each shim's whole tree the same way)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    queue = list(roots)
    while queue:
        pid = queue.pop(0)
        if pid in found:
            continue
        found.append(pid)
        queue.extend(sorted(children.get(pid, [])))
    return found


def _parents() -> dict[int, int]:
    """pid -> ppid of every process (the field after the parenthesised command in /proc/<pid>/stat)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1].isdigit():
            parents[int(entry.name)] = int(fields[1])
    return parents


def _leftover_pids(data_dir: str, units: list[str]) -> list[int]:
    me = os.getpid()
    return [pid for pid in with_descendants(_started_pids(data_dir, units), _parents()) if pid not in (me, os.getppid())]


def _started_pids(data_dir: str, units: list[str]) -> list[int]:
    """Processes run from the data directory (shims) or left in the units' cgroups."""
    me = os.getpid()
    prefix = data_dir.rstrip("/") + "/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (me, os.getppid()):
            continue
        try:
            exe = str((entry / "exe").readlink())
        except OSError:
            exe = ""
        try:
            cgroup = (entry / "cgroup").read_text(encoding="utf-8")
        except OSError:
            cgroup = ""
        in_unit = any(f"/{unit}\n" in cgroup or cgroup.rstrip().endswith(f"/{unit}") for unit in units)
        if exe.startswith(prefix) or in_unit:
            found.append(int(entry.name))
    return found


def _kill(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.1)


def _netns() -> list[str]:
    netns_dir = Path("/run/netns")
    if not netns_dir.is_dir():
        return []
    return sorted(p.name for p in netns_dir.iterdir() if p.name.startswith("cni-"))


def _links() -> dict[str, str]:
    """Interface name -> master name ('' when none)."""
    result = _run(["ip", "-o", "link", "show"])
    links: dict[str, str] = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^\d+:\s+([^:@\s]+)(?:@\S+)?:", line)
        if match:
            master = re.search(r"\smaster\s+(\S+)", line)
            links[match.group(1)] = master.group(1) if master else ""
    return links


def _tools() -> list[tuple[str, str]]:
    pairs = [("iptables-save", "iptables-restore"), ("ip6tables-save", "ip6tables-restore"),
             ("iptables-legacy-save", "iptables-legacy-restore"), ("ip6tables-legacy-save", "ip6tables-legacy-restore")]
    dirs = [*os.environ.get("PATH", "").split(":"), "/usr/sbin", "/sbin"]
    return [(save, restore) for save, restore in pairs if any(os.access(Path(d, save), os.X_OK) for d in dirs if d)]


class _Cleanup:
    """One cleanup run: each step appends what it did (or would do) and what it could not do."""

    def __init__(self, params: dict[str, Any], check: bool) -> None:
        self.params = params
        self.check = check
        self.actions: list[str] = []
        self.problems: list[str] = []

    def run(self) -> tuple[list[str], list[str]]:
        for step in (self.processes, self.namespaces, self.mounts, self.interfaces, self.firewall):
            step()
        return self.actions, self.problems

    def processes(self) -> None:
        pids = _leftover_pids(str(self.params["data_dir"]), list(self.params["units"]))
        if pids:
            self.actions.append(f"kill {len(pids)} leftover {self.params.get('product') or 'K3s'} process(es)")
            if not self.check:
                _kill(pids)

    def namespaces(self) -> None:
        for name in _netns():
            self.actions.append(f"delete network namespace {name}")
            if not self.check:
                result = _run(["ip", "netns", "delete", name])
                if result.returncode != 0:
                    self.problems.append(f"ip netns delete {name}: {result.stderr.strip()}")
        netns_dir = Path("/run/netns")
        if netns_dir.is_dir() and not any(netns_dir.iterdir()) and not self.check:
            _run(["umount", str(netns_dir)])  # `ip netns add` bind-mounts the directory onto itself
            with contextlib.suppress(OSError):
                netns_dir.rmdir()

    def mounts(self) -> None:
        mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
        for point in mounts_under(mountinfo, list(self.params["mount_roots"])):
            self.actions.append(f"unmount {point}")
            if not self.check and _run(["umount", point]).returncode != 0:
                lazy = _run(["umount", "-l", point])
                if lazy.returncode != 0:
                    self.problems.append(f"umount {point}: {lazy.stderr.strip()}")

    def interfaces(self) -> None:
        links = _links()
        wanted = list(self.params["interfaces"])
        doomed = sorted(n for n, master in links.items() if master in wanted and n not in wanted)
        doomed += [n for n in wanted if n in links]
        for name in doomed:
            self.actions.append(f"delete interface {name}")
            if not self.check:
                result = _run(["ip", "link", "delete", name])
                if result.returncode != 0 and name in _links():
                    self.problems.append(f"ip link delete {name}: {result.stderr.strip()}")

    def firewall(self) -> None:
        prefixes = list(self.params["chain_prefixes"])
        comments = list(self.params.get("rule_comments") or [])
        for save, restore in _tools():
            saved = _run([save])
            if saved.returncode != 0:
                continue  # backend not usable here (e.g. legacy tables without the kernel module)
            script = firewall_script(saved.stdout, prefixes, comments)
            if not script:
                continue
            count = sum(1 for line in script.splitlines() if line.startswith(("-D", "-X")))
            product = self.params.get("product") or "K3s"
            self.actions.append(f"{save.replace('-save', '')}: remove {count} {product} rule(s)/chain(s)")
            if self.check:
                continue
            result = _run([restore, "--noflush", "--wait"], stdin=script)
            if result.returncode != 0:
                result = _run([restore, "--noflush"], stdin=script)
            if result.returncode != 0:
                self.problems.append(f"{restore}: {result.stderr.strip()[:400]}")
            left = chains_left(_run([save]).stdout, prefixes)
            if left:
                self.problems.append(f"{save}: chains still present: {', '.join(left)}")


def cleanup(params: dict[str, Any], check: bool) -> tuple[list[str], list[str]]:
    """Do (or plan, in check mode) the cleanup; return (actions, problems)."""
    return _Cleanup(params, check).run()


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule  # noqa: PLC0415 - the module is also imported by unit tests

    module = AnsibleModule(
        argument_spec={
            "data_dir": {"type": "path", "required": True},
            "units": {"type": "list", "elements": "str", "required": True},
            "mount_roots": {"type": "list", "elements": "path", "required": True},
            "interfaces": {"type": "list", "elements": "str", "required": True},
            "chain_prefixes": {"type": "list", "elements": "str", "required": True},
            "rule_comments": {"type": "list", "elements": "str", "default": []},
            "product": {"type": "str", "default": "K3s"},
        },
        supports_check_mode=True,
    )
    actions, problems = cleanup(module.params, module.check_mode)
    if problems:
        module.fail_json(msg="; ".join(problems), actions=actions)
    module.exit_json(changed=bool(actions), actions=actions)


if __name__ == "__main__":
    main()
