"""Command-line, config.yaml and environment handling for ``k3s server`` and ``k3s agent``.

Mirrors k3s's pkg/configfilearg: the config file (``--config``/``-c``, ``$K3S_CONFIG_FILE``,
default ``/etc/rancher/k3s/config.yaml``) plus ``<config>.d/*.yaml`` in alphabetical order
are turned into ``--key=value`` arguments placed *before* the command-line ones, so the
command line wins for scalars and adds to lists. ``key+:`` appends to an earlier file's
value. For ``server`` an unknown key is dropped with a warning; for ``agent`` it reaches
the flag parser and fails there. Environment variables apply only to flags still unset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import log
from .flags import ENV_VARS, TABLES, FlagSpec, FlagTable

DEFAULT_CONFIG = "/etc/rancher/k3s/config.yaml"
DEFAULT_DATA_DIR = "/var/lib/rancher/k3s"

_DEFAULTS: dict[str, Any] = {
    "data-dir": DEFAULT_DATA_DIR,
    "https-listen-port": "6443",
    "write-kubeconfig": "/etc/rancher/k3s/k3s.yaml",
    "cluster-cidr": ["10.42.0.0/16"],
    "service-cidr": ["10.43.0.0/16"],
    "cluster-dns": ["10.43.0.10"],
    "cluster-domain": "cluster.local",
    "flannel-backend": "vxlan",
    "service-node-port-range": "30000-32767",
    "etcd-snapshot-retention": "5",
    "etcd-snapshot-schedule-cron": "0 */12 * * *",
    "lb-server-port": "6444",
    "servicelb-namespace": "kube-system",
    "egress-selector-mode": "agent",
}

# Values of these repeatable flags are not split on commas (they carry arbitrary args).
_NO_SPLIT = ("kubelet-arg", "kube-proxy-arg", "kube-apiserver-arg", "kube-controller-manager-arg",
             "kube-scheduler-arg", "etcd-arg", "kube-cloud-controller-manager-arg", "helm-controller-arg",
             "kube-controller-arg", "kube-cloud-controller-arg", "node-taint", "node-label")


class UsageError(Exception):
    """A flag the command does not define; str() is the Go flag package's wording."""


class ConfigFileError(UsageError):
    """The config file is missing (when asked for) or is not valid YAML."""


@dataclass
class Settings:
    """Parsed flag values for one command, by canonical flag name."""

    command: str
    values: dict[str, Any] = field(default_factory=dict)
    explicit: set[str] = field(default_factory=set)
    config_files: list[Path] = field(default_factory=list)
    args_for_annotation: list[str] = field(default_factory=list)

    def text(self, name: str, default: str = "") -> str:
        value = self.values.get(name, _DEFAULTS.get(name, default))
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return default if value is None else str(value)

    def flag(self, name: str) -> bool:
        value = self.values.get(name, False)
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in ("1", "t", "true", "yes", "on")

    def strings(self, name: str) -> list[str]:
        value = self.values.get(name, _DEFAULTS.get(name, []))
        if isinstance(value, list):
            return [str(v) for v in value]
        return [str(value)] if value not in (None, "") else []

    def number(self, name: str, default: int = 0) -> int:
        text = self.text(name, str(default))
        try:
            return int(text)
        except ValueError as exc:
            raise UsageError(f'invalid value "{text}" for flag -{name}: parse error') from exc

    @property
    def data_dir(self) -> Path:
        return Path(self.text("data-dir")).expanduser()


def _find_config_file(args: list[str]) -> tuple[str, bool]:
    """Config path and whether it was asked for explicitly (then it must exist)."""
    env = os.environ.get("K3S_CONFIG_FILE", "")
    if env:
        return env, True
    for i, arg in enumerate(args):
        for name in ("--config", "-c"):
            if arg == name and i + 1 < len(args):
                return args[i + 1], True
            if arg.startswith(name + "="):
                return arg[len(name) + 1:], True
    return DEFAULT_CONFIG, False


def _dropins(config: Path) -> list[Path]:
    directory = Path(str(config) + ".d")
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def merge_config_files(files: list[Path]) -> dict[str, Any]:
    """Merge config files in order; later files override, ``key+`` appends."""
    merged: dict[str, Any] = {}
    for path in files:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigFileError(f"failed to parse {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigFileError(f"failed to parse {path}: config file must be a map")
        for raw_key, value in data.items():
            key = str(raw_key)
            if key.endswith("+"):
                base = key[:-1]
                previous = merged.get(base, [])
                prev_list = previous if isinstance(previous, list) else [previous]
                new_list = value if isinstance(value, list) else [value]
                merged[base] = [*prev_list, *new_list]
            else:
                merged[key] = value
    return merged


def config_to_args(merged: dict[str, Any]) -> list[str]:
    """Turn merged config into ``--key=value`` arguments (lists repeat the flag)."""
    args: list[str] = []
    for key, value in merged.items():
        prefix = "-" if len(key) == 1 else "--"
        values = value if isinstance(value, list) else [value]
        for item in values:
            args.append(f"{prefix}{key}={_scalar_text(item)}")
    return args


def _filter_unknown(args: list[str], table: FlagTable) -> list[str]:
    """k3s server's validation: drop keys it does not know, with a warning each."""
    kept = []
    for arg in args:
        name = arg.lstrip("-").split("=", 1)[0]
        if table.lookup(name) is None:
            log.warn(f"Unknown flag {arg.split('=', 1)[0]} found in config.yaml, skipping")
            continue
        kept.append(arg)
    return kept


def _assign(settings: Settings, spec: FlagSpec, value: Any) -> None:
    if spec.repeatable:
        items = [value] if spec.name in _NO_SPLIT else [v for v in str(value).split(",") if v != ""]
        current = settings.values.get(spec.name) if spec.name in settings.explicit else []
        settings.values[spec.name] = [*(current or []), *items]
    else:
        settings.values[spec.name] = value
    settings.explicit.add(spec.name)


def _parse_args(settings: Settings, args: list[str], table: FlagTable) -> list[str]:
    """Go flag-package style parsing; returns positional arguments."""
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positional.extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        body = arg.lstrip("-")
        name, has_value, value = body.partition("=")
        spec = table.lookup(name)
        if spec is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if spec.is_bool:
            if has_value:
                if value.lower() not in ("1", "0", "t", "f", "true", "false", "yes", "no"):
                    raise UsageError(f'invalid boolean value "{value}" for -{name}: parse error')
                _assign(settings, spec, value.lower() in ("1", "t", "true", "yes"))
            else:
                _assign(settings, spec, True)
            continue
        if not has_value:
            if i >= len(args):
                raise UsageError(f"flag needs an argument: -{name}")
            value = args[i]
            i += 1
        _assign(settings, spec, value)
    return positional


def _apply_env(settings: Settings, table: FlagTable) -> None:
    for name, env in ENV_VARS.items():
        if name in settings.explicit or table.lookup(name) is None:
            continue
        value = os.environ.get(env)
        if value is None or value == "":
            continue
        spec = table.lookup(name)
        assert spec is not None
        if spec.is_bool:
            settings.values[name] = value.lower() in ("1", "t", "true", "yes")
        else:
            _assign(settings, spec, value)


def parse(command: str, argv: list[str]) -> Settings:
    """Parse ``k3s <command> argv`` with config files and environment, as k3s does."""
    table = TABLES[command]
    settings = Settings(command)
    config_path, explicit = _find_config_file(argv)
    path = Path(config_path)
    files: list[Path] = []
    if path.is_file():
        files.append(path)
    elif explicit:
        raise ConfigFileError(f"open {config_path}: no such file or directory")
    files.extend(_dropins(path))
    settings.config_files = files
    file_args = config_to_args(merge_config_files(files)) if files else []
    if command == "server":
        file_args = _filter_unknown(file_args, table)
    _parse_args(settings, [*file_args, *argv], table)
    _apply_env(settings, table)
    settings.args_for_annotation = [command, *file_args, *argv]
    return settings
