"""K3s's critical settings, refused before any host is contacted when the inventory changes them.

K3s's critical settings (its own list: CIDRs, cluster DNS and domain, flannel backend, servicelb, secrets encryption,
...) must be the same on every server and cannot change in place. The servers' config.yaml is the truth and the k3s
role checks it on each server (tasks/critical.yml, also for plain ansible-playbook runs), but only in the install
phase. The last verified `up` records the first server's critical settings in the state directory, and the settings
phase (provisioner/phases/settings.py) compares the inventory with that record first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provisioner.inventory import Cluster
from provisioner.paths import role_code
from provisioner.phases.settings import RecordedSettings

SETTINGS_FILE = "critical-settings.json"


def _rules() -> Any:
    return role_code("k3s", "filter_plugins", "k3s_ha_filters.py")


def critical_subset(config: dict[str, Any]) -> dict[str, Any]:
    """The keys of a server's config that decide its critical settings (no secrets among them)."""
    keys = set(_rules().CRITICAL_KEYS) | {"disable"}
    return {k: v for k, v in config.items() if k in keys}


def _snapshot(cluster: Cluster) -> dict[str, Any]:
    return critical_subset(dict(cluster.first_server.k3s_config))


def _changes(recorded: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    return list(_rules().critical_diff(recorded, wanted))


def _refusal(inventory: Path, changes: list[str]) -> str:
    return (
        f"{inventory}: k3s_server_config changes settings K3s cannot change on a running cluster "
        f"({'; '.join(changes)}). Restore the previous values in the inventory, or rebuild the cluster "
        "(provision reset, then up) to use the new ones."
    )


CRITICAL_SETTINGS = RecordedSettings(
    file_name=SETTINGS_FILE,
    snapshot=_snapshot,
    changes=_changes,
    refusal=_refusal,
    skipped_note="no record of a previous run; each server checks its own",
    compare_title="Compare the settings every server shares with the running cluster's",
    record_title="Record the settings every server shares",
)

