"""Refuse, before any host is contacted, a change to settings K3s cannot change on a running cluster.

K3s's critical settings (its own list: CIDRs, cluster DNS and domain, flannel backend, servicelb, secrets encryption,
...) must be the same on every server and cannot change in place. The servers' config.yaml is the truth and the k3s
role checks it on each server (tasks/critical.yml, also for plain ansible-playbook runs), but only in the install
phase, after probing and preparing. So the last successful `up` records the first server's critical settings in the
state directory, and this phase compares the inventory with that record first: a refused change ends the run in
about a second with exit code 4, before anything is probed or changed. Without a record (first run, another
machine's state directory) it is skipped and the role's check still applies.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.errors import RefusedError
from provisioner.paths import role_code
from provisioner.phases.base import Context, PhaseOutcome, unless_verified

SETTINGS_FILE = "critical-settings.json"


def _rules() -> Any:
    return role_code("k3s", "filter_plugins", "k3s_ha_filters.py")


def critical_subset(config: dict[str, Any]) -> dict[str, Any]:
    """The keys of a server's config that decide its critical settings (no secrets among them)."""
    keys = set(_rules().CRITICAL_KEYS) | {"disable"}
    return {k: v for k, v in config.items() if k in keys}


def settings_file(ctx: Context) -> Path:
    return ctx.state.root / SETTINGS_FILE


def record_critical_settings(ctx: Context) -> None:
    fd = os.open(settings_file(ctx), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(critical_subset(dict(ctx.cluster.first_server.k3s_config)), handle, indent=2, sort_keys=True)


@dataclass
class CriticalSettingsPhase:
    name: str = "settings"
    title: str = "Compare the settings every server shares with the running cluster's"
    changes_hosts: bool = False

    def run(self, ctx: Context) -> PhaseOutcome:
        try:
            recorded = json.loads(settings_file(ctx).read_text())
        except (OSError, json.JSONDecodeError):
            return PhaseOutcome(status="skipped", note="no record of a previous run; each server checks its own")
        changes = _rules().critical_diff(recorded, dict(ctx.cluster.first_server.k3s_config))
        if changes:
            raise RefusedError(
                f"{ctx.inventory}: k3s_server_config changes settings K3s cannot change on a running cluster "
                f"({'; '.join(changes)}). Restore the previous values in the inventory, or rebuild the cluster "
                "(provision reset, then up) to use the new ones.",
            )
        return PhaseOutcome(status="ok", note="as the running cluster has them")


@dataclass
class RecordCriticalSettingsPhase:
    """After a verified `up`: the first server's critical settings, for the next run's CriticalSettingsPhase."""

    name: str = "record-settings"
    title: str = "Record the settings every server shares"
    changes_hosts: bool = False

    def run(self, ctx: Context) -> PhaseOutcome:
        skipped = unless_verified(ctx)
        if skipped is not None:
            return skipped
        record_critical_settings(ctx)
        return PhaseOutcome(status="ok")
