"""Merge a cluster's kubeconfig into the user's without clobbering anything else.

Entries (cluster, user, context) named after this cluster are replaced; every other entry, preference and
extension is kept as it was. The file is replaced atomically and stays owner-only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from provisioner.errors import ProvisionError


class KubeconfigError(ProvisionError):
    """A kubeconfig could not be read or written."""


def default_kubeconfig_path() -> Path:
    """Where kubectl looks first: the first entry of $KUBECONFIG, else ~/.kube/config."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": [], "preferences": {}}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"{path} is not valid YAML ({exc}); fix or move it, nothing was changed") from exc
    if not isinstance(data, dict):
        raise KubeconfigError(f"{path} is not a kubeconfig (top level is not a mapping); nothing was changed")
    return data


def _replace(entries: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = {e.get("name") for e in new}
    return [e for e in entries if e.get("name") not in names] + new


def merge(source: Path, target: Path, switch_context: bool = True) -> tuple[str, str]:
    """Merge `source` into `target`; return (the merged context's name, the current context afterwards). The
    current context changes only when asked, or when the target had none."""
    incoming = _load(source)
    current = _load(target)
    for key in ("clusters", "users", "contexts"):
        current[key] = _replace(current.get(key) or [], incoming.get(key) or [])
    context = str(incoming.get("current-context") or "")
    if switch_context or not current.get("current-context"):
        current["current-context"] = context
    current.setdefault("apiVersion", "v1")
    current.setdefault("kind", "Config")
    write_private(target, yaml.safe_dump(current, default_flow_style=False, sort_keys=False))
    return context, str(current.get("current-context") or "")


def remove_context(target: Path, name: str) -> bool:
    """Remove this cluster's entries from `target`; True if anything was removed."""
    if not target.exists():
        return False
    current = _load(target)
    removed = False
    for key in ("clusters", "users", "contexts"):
        kept = [e for e in current.get(key) or [] if e.get("name") != name]
        removed = removed or len(kept) != len(current.get(key) or [])
        current[key] = kept
    if current.get("current-context") == name:
        current["current-context"] = ""
    if removed:
        write_private(target, yaml.safe_dump(current, default_flow_style=False, sort_keys=False))
    return removed


def write_private(path: Path, text: str) -> None:
    """Write atomically with mode 0600 (the file holds client keys)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        Path(tmp).chmod(0o600)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
