"""Refuse, before any host is contacted, a change to settings a running cluster cannot take.

Each flavor has settings that are fixed once its cluster runs (K3s's critical settings; what kubeadm fixes at init).
The roles check the hosts' own record of them, but only in the install phase, after probing and preparing. So the
last verified `up` also records them in the state directory, and the first phase of the next `up` compares the
inventory with that record: a refused change ends the run at once with exit code 4. Without a record (first run,
another machine's state directory) the phase is skipped and the roles' checks still apply. The flavor says what is
recorded and how a change is worded (`RecordedSettings`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.errors import RefusedError
from provisioner.inventory import Cluster
from provisioner.phases.base import Context, PhaseOutcome, unless_verified


@dataclass(frozen=True)
class RecordedSettings:
    """What a flavor records after a verified `up` and compares before the next one."""

    file_name: str
    snapshot: Callable[[Cluster], dict[str, Any]]  # the inventory's values (no secrets)
    changes: Callable[[dict[str, Any], dict[str, Any]], list[str]]  # recorded, wanted -> one line per change
    refusal: Callable[[Path, list[str]], str]  # inventory path, changes -> the message
    skipped_note: str
    compare_title: str
    record_title: str

    def path(self, ctx: Context) -> Path:
        return ctx.state.root / self.file_name


@dataclass
class SettingsPhase:
    settings: RecordedSettings
    name: str = "settings"
    title: str = ""
    changes_hosts: bool = False

    def __post_init__(self) -> None:
        self.title = self.title or self.settings.compare_title

    def run(self, ctx: Context) -> PhaseOutcome:
        try:
            recorded = json.loads(self.settings.path(ctx).read_text())
        except (OSError, json.JSONDecodeError):
            return PhaseOutcome(status="skipped", note=self.settings.skipped_note)
        found = self.settings.changes(recorded, self.settings.snapshot(ctx.cluster))
        if found:
            raise RefusedError(self.settings.refusal(ctx.inventory, found))
        return PhaseOutcome(status="ok", note="as the running cluster has them")


@dataclass
class RecordSettingsPhase:
    """After a verified `up`: the settings, for the next run's SettingsPhase."""

    settings: RecordedSettings
    name: str = "record-settings"
    title: str = ""
    changes_hosts: bool = False

    def __post_init__(self) -> None:
        self.title = self.title or self.settings.record_title

    def run(self, ctx: Context) -> PhaseOutcome:
        skipped = unless_verified(ctx)
        if skipped is not None:
            return skipped
        fd = os.open(self.settings.path(ctx), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.settings.snapshot(ctx.cluster), handle, indent=2, sort_keys=True)
        return PhaseOutcome(status="ok")
