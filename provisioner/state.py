"""The per-cluster state directory on the control machine: runner work dirs, run reports, the kubeconfig.

Layout (all owner-only):
    <root>/<cluster>/runner/        ansible-runner private data dir and artifacts
    <root>/<cluster>/reports/       one JSON report per command run (no secrets)
    <root>/<cluster>/kubeconfig     the admin kubeconfig as fetched (0600)
The root is $PROVISION_STATE_DIR, else $XDG_STATE_HOME/provision, else ~/.local/state/provision.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from provisioner import tool_version


def state_root() -> Path:
    explicit = os.environ.get("PROVISION_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "provision"


@dataclass(frozen=True)
class ClusterState:
    """Paths of one cluster's state."""

    root: Path

    @classmethod
    def for_cluster(cls, name: str, root: Path | None = None) -> ClusterState:
        state = cls((root or state_root()) / name)
        for path in (state.root, state.runner_dir, state.reports_dir):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.chmod(0o700)
        return state

    @property
    def runner_dir(self) -> Path:
        return self.root / "runner"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"


@dataclass
class PhaseReport:
    name: str
    status: str  # ok | failed | skipped
    duration_s: float
    changed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)


@dataclass
class RunReport:
    """What a command did, on which host, with what result and how long. Holds no secrets."""

    command: str
    cluster: str
    inventory: str
    started: float = field(default_factory=time.time)
    finished: float | None = None
    status: str = "running"
    phases: list[PhaseReport] = field(default_factory=list)
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    provision_version: str = field(default_factory=tool_version)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, state: ClusterState) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self.started))
        path = state.reports_dir / f"{stamp}-{self.command}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.to_json(), handle, indent=2, sort_keys=True)
        return path
