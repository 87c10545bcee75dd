"""The only place that calls ansible-runner.

Events come in through ansible-runner's event handler and leave as typed HostEvent objects for whoever shows
progress; results leave as a PlaybookResult. No stdout is scraped and no shell command line is built.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from provisioner.errors import InterruptedRunError
from provisioner.paths import playbook_dir as shipped_playbook_dir
from provisioner.ssh_config import SshSettings

# Environment variables that carry secrets into provision. ansible-runner copies the whole process environment into
# every run's artifacts (artifacts/<id>/command) and into the playbook's process, so they must be gone before a run:
# the CLI moves them into 0600 files first (cli/common.py), and Runner.run drops any that reappeared.
SECRET_ENV = ("PROVISION_K3S_TOKEN", "PROVISION_DATASTORE_PASSWORD", "PROVISION_BECOME_PASSWORD")

# Event names ansible-runner reports per host and task.
_HOST_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


@dataclass(frozen=True)
class PlaybookRun:
    """One ansible-playbook run: which playbook, against what, with which non-secret variables."""

    playbook: str
    inventory: Path
    extravars: Mapping[str, Any] = field(default_factory=dict)
    limit: str | None = None
    check: bool = False
    diff: bool = False
    forks: int = 50
    capture: frozenset[str] = frozenset()  # task names whose results are kept in PlaybookResult.captured


@dataclass(frozen=True)
class HostEvent:
    """Something that happened on one host: a task started, or a task finished with a state."""

    host: str
    task: str
    state: str  # started | ok | changed | note | failed | unreachable | skipped
    message: str = ""
    play: str = ""


@dataclass
class HostOutcome:
    """What a run did to one host."""

    ok: int = 0
    changed: int = 0
    failed: bool = False
    unreachable: bool = False
    reason: str = ""
    duration_s: float = 0.0
    changed_tasks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # messages of "Show ..." tasks: what changes, key by key


@dataclass
class PlaybookResult:
    """The typed result of one run."""

    playbook: str
    status: str
    rc: int
    duration_s: float
    hosts: dict[str, HostOutcome]
    artifact_dir: Path
    captured: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> task -> module result

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.status == "successful"

    @property
    def failed_hosts(self) -> dict[str, str]:
        return {h: o.reason for h, o in self.hosts.items() if o.failed and not o.unreachable}

    @property
    def unreachable_hosts(self) -> dict[str, str]:
        return {h: o.reason for h, o in self.hosts.items() if o.unreachable}

    @property
    def changed_total(self) -> int:
        return sum(o.changed for o in self.hosts.values())


# Roles name a task "Show ..." when its message is meant for the user (what changes in a file, key by key, secrets
# masked; which labels a node gets): the CLI prints it, in --check too.
NOTE_TASK_PREFIX = "Show "


def _is_note(task: str) -> bool:
    return task.startswith(NOTE_TASK_PREFIX) or f" : {NOTE_TASK_PREFIX}" in task


REASON_MAX = 600
REASON_HEAD = 300


def _short_reason(event_data: Mapping[str, Any]) -> str:
    result = event_data.get("res") or {}
    if result.get("censored"):
        return "a task whose output is hidden because it handles secrets failed"
    # A loop reports "One or more items failed": the first failed item says what and why.
    failed_items = [item for item in result.get("results") or () if isinstance(item, Mapping) and item.get("failed")]
    if failed_items:
        return _short_reason({"res": failed_items[0]})
    message = result.get("msg") or result.get("stderr") or result.get("reason") or ""
    if isinstance(message, list):
        message = "; ".join(str(m) for m in message)
    text = " ".join(str(message).split())
    stderr = " ".join(str(result.get("stderr") or "").split())
    if stderr and stderr not in text:  # a failed command: "non-zero return code" says nothing without its stderr
        text = f"{text} (rc {result.get('rc', '?')}): {stderr[-400:]}"
    # Long messages keep their head and their tail: ssh ends a banner of warnings with the error itself
    # ("Host key verification failed."), which the reader and the hints need.
    return text if len(text) <= REASON_MAX else f"{text[:REASON_HEAD]} ... {text[-(REASON_MAX - REASON_HEAD - 5):]}"


class Runner:
    """Runs phase playbooks through ansible-runner in a private data directory under the cluster's state dir."""

    def __init__(
        self,
        work_dir: Path,
        ssh: SshSettings,
        *,
        on_event: Callable[[HostEvent], None] | None = None,
        playbook_dir: Path | None = None,
        base_extravars: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> None:
        self.work_dir = work_dir
        # One folder of artifacts per command run (artifacts/<run id>/<playbook run>/), the last keep_runs() kept
        # whole: an error names a folder that is still there however many phases later runs had.
        self.artifact_root = work_dir / "artifacts" / (run_id or new_run_id())
        self.base_extravars = dict(base_extravars or {})  # every run gets these; a run's own extravars win
        self.ssh = ssh
        self.on_event = on_event
        self.playbook_dir = playbook_dir or shipped_playbook_dir()
        # Facts gathered by one phase serve the next ones of the same command (gathering=smart), so each phase
        # does not gather again. A fresh cache per command: facts never outlive the command that gathered them.
        self.fact_cache = work_dir / "facts" / uuid.uuid4().hex[:12]
        _prune(work_dir / "facts", max_age_s=3600)

    def run(self, run: PlaybookRun) -> PlaybookResult:
        self.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        ident = f"{Path(run.playbook).stem}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        hosts: dict[str, HostOutcome] = {}
        captured: dict[str, dict[str, Any]] = {}
        started = time.monotonic()

        def handle(event: dict[str, Any]) -> bool:
            self._record(event, hosts)
            data = event.get("event_data") or {}
            if event.get("event") == "runner_on_ok" and data.get("task") in run.capture:
                captured.setdefault(data.get("host", ""), {})[data["task"]] = data.get("res") or {}
            return True

        for name in SECRET_ENV:
            os.environ.pop(name, None)
        cmdline = []
        if run.check:
            cmdline.append("--check")
        if run.diff:
            cmdline.append("--diff")
        result = ansible_runner.run(
            private_data_dir=str(self.work_dir),
            project_dir=str(self.playbook_dir),
            playbook=run.playbook,
            inventory=str(run.inventory),
            extravars=self.base_extravars | dict(run.extravars),
            limit=run.limit,
            forks=run.forks,
            cmdline=" ".join(cmdline) or None,
            ident=ident,
            envvars=self.ssh.envvars() | self._cache_env() | {"ANSIBLE_NOCOLOR": "1", "PATH": _path_with_own_ansible()},
            event_handler=handle,
            quiet=True,
            suppress_env_files=True,
            artifact_dir=str(self.artifact_root),
            rotate_artifacts=0,
        )
        _keep_newest(self.artifact_root.parent, keep_runs())
        artifact_dir = Path(result.config.artifact_dir)
        _tighten(artifact_dir)
        if str(result.status) == "canceled":  # ansible-runner's own SIGINT/SIGTERM handling stopped the playbook
            raise InterruptedRunError(playbook=run.playbook)
        return PlaybookResult(
            playbook=run.playbook,
            status=str(result.status),
            rc=int(result.rc),
            duration_s=time.monotonic() - started,
            hosts=hosts,
            artifact_dir=artifact_dir,
            captured=captured,
        )

    def _cache_env(self) -> dict[str, str]:
        return {
            "ANSIBLE_GATHERING": "smart",
            "ANSIBLE_CACHE_PLUGIN": "jsonfile",
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(self.fact_cache),
            "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "3600",
        }

    def _record(self, event: Mapping[str, Any], hosts: dict[str, HostOutcome]) -> None:
        name = event.get("event", "")
        data = event.get("event_data") or {}
        host = data.get("host") or data.get("remote_addr")
        task = str(data.get("task") or "")
        play = str(data.get("play") or "")
        if name == "runner_on_start" and host:
            self._emit(HostEvent(host=host, task=task, state="started", play=play))
            return
        state = _HOST_RESULT_EVENTS.get(name)
        if state is None or not host:
            return
        outcome = hosts.setdefault(host, HostOutcome())
        outcome.duration_s += float(data.get("duration") or 0.0)
        if state == "ok":
            outcome.ok += 1
            if (data.get("res") or {}).get("changed"):
                state = "changed"
                outcome.changed += 1
                outcome.changed_tasks.append(task)
            elif _is_note(task):
                state = "note"
                outcome.notes.append(_short_reason(data))
        elif state == "failed" and not data.get("ignore_errors"):
            outcome.failed = True
            outcome.reason = f"{task}: {_short_reason(data)}"
        elif state == "unreachable":
            outcome.unreachable = True
            outcome.reason = _short_reason(data)
        self._emit(HostEvent(host=host, task=task, state=state, message=_short_reason(data), play=play))

    def _emit(self, event: HostEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)


def _path_with_own_ansible() -> str:
    """PATH with this environment's bin first, so its ansible-playbook (and collections) run, not another one."""
    own = str(Path(sys.executable).parent)
    return os.pathsep.join([own, os.environ.get("PATH", os.defpath)])


KEEP_RUNS_ENV = "PROVISION_KEEP_RUNS"
DEFAULT_KEEP_RUNS = 20


def new_run_id() -> str:
    """Sortable by time, unique per command run."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def keep_runs() -> int:
    """How many command runs keep their artifacts: $PROVISION_KEEP_RUNS (at least 1), else 20."""
    try:
        return max(1, int(os.environ.get(KEEP_RUNS_ENV, DEFAULT_KEEP_RUNS)))
    except ValueError:
        return DEFAULT_KEEP_RUNS


def _keep_newest(folder: Path, keep: int) -> None:
    """Remove all but the `keep` newest run folders (run ids sort by time)."""
    runs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    for old in runs[: max(0, len(runs) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


def _prune(folder: Path, max_age_s: float) -> None:
    """Remove fact caches of earlier commands."""
    if not folder.is_dir():
        return
    cutoff = time.time() - max_age_s
    for entry in folder.iterdir():
        if entry.is_dir() and entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry, ignore_errors=True)


def _tighten(path: Path) -> None:
    """Artifacts stay readable by their owner only: they describe the hosts, even though secrets are kept out."""
    for root, dirs, files in os.walk(path):
        for name in dirs:
            Path(root, name).chmod(0o700)
        for name in files:
            Path(root, name).chmod(0o600)
