"""The per-cluster state directory on the control machine: runner work dirs, run reports, the kubeconfig.

Layout (all owner-only):
    <root>/<cluster>/runner/        ansible-runner private data dir and artifacts
    <root>/<cluster>/reports/       one JSON report per command run (no secrets)
    <root>/<cluster>/kubeconfig     the admin kubeconfig as fetched (0600)
    <root>/<cluster>/lock           held (flock) by the run that changes the cluster; names that run while it lasts
The root is $PROVISION_STATE_DIR, else $XDG_STATE_HOME/provision, else ~/.local/state/provision.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from provisioner import tool_version
from provisioner.errors import BusyError


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


@dataclass
class ClusterLock:
    """An exclusive hold on one cluster's state for one run. The kernel drops it when the process ends, however it
    ends, so a lock is never stale; the file keeps the holder's description until a clean release empties it."""

    path: Path
    fd: int
    previous: dict[str, Any] | None  # the description an earlier run left behind: it did not end cleanly

    def release(self) -> None:
        if self.fd < 0:
            return
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = -1


def lock_cluster(state: ClusterState, cluster: str, command: str) -> ClusterLock:
    """Take the cluster for this run, or raise BusyError naming the run that has it (and since when)."""
    path = state.root / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(holder.get("since", 0)))) if holder else "?"
        who = f"`provision {holder.get('command', '?')}` (pid {holder.get('pid', '?')} on {holder.get('host', '?')})"
        raise BusyError(
            f"cluster {cluster!r} is busy: {who if holder else 'another run'} has held it since {since}; "
            "wait for it to end (or stop it), then rerun"
        ) from None
    previous = _holder(fd)
    description = {"command": command, "pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(description).encode(), 0)
    return ClusterLock(path, fd, previous)


def _holder(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
