"""Refuse, before any host is contacted, a change to what a kubeadm cluster fixed at its first `up`.

kubeadm fixes the pod and service subnets, the DNS domain, the control-plane endpoint, the cluster name and the etcd
topology at init, and the CNI cannot be swapped under running pods. Which settings those are is written once, in the
kubeadm role's filter plugin (FIXED_AT_INIT, FIXED_AFTER_FIRST_UP): the role checks the first control plane's own
record with it (also for plain ansible-playbook runs), but only in the install phase, after probing and preparing.
So the last verified `up` records these settings in the state directory, and this phase compares the inventory with
that record first: a refused change ends the run at once with exit code 4. Without a record (first run, another
machine's state directory) it is skipped and the role's check still applies.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from provisioner.errors import RefusedError
from provisioner.inventory import Cluster
from provisioner.paths import role_code
from provisioner.phases.base import Context, PhaseOutcome, unless_verified

SETTINGS_FILE = "fixed-settings.json"


def fixed_settings(cluster: Cluster) -> dict[str, str]:
    """The inventory's values of the fixed settings the model knows (the role checks the others on the host)."""
    rules = role_code("kubeadm", "filter_plugins", "kubeadm_filters.py")
    names = {name for name, _path in rules.FIXED_AT_INIT} | set(rules.FIXED_AFTER_FIRST_UP)
    settings = cluster.kubeadm
    known = {
        "kubeadm_pod_subnet": settings.pod_subnet,
        "kubeadm_service_subnet": settings.service_subnet,
        "provision_api_endpoint": cluster.api_endpoint,
        "kubeadm_etcd": "external" if settings.etcd is not None else "stacked",
        "kubeadm_cni": settings.cni,
    }
    return {name: value for name, value in known.items() if name in names}


def changes(recorded: dict[str, str], wanted: dict[str, str]) -> list[str]:
    return [f"{name}: {recorded[name]} -> {value}" for name, value in sorted(wanted.items())
            if name in recorded and recorded[name] != value]


def settings_file(ctx: Context) -> Path:
    return ctx.state.root / SETTINGS_FILE


@dataclass
class FixedSettingsPhase:
    name: str = "settings"
    title: str = "Compare the settings kubeadm fixed at init with the running cluster's"
    changes_hosts: bool = False

    def run(self, ctx: Context) -> PhaseOutcome:
        try:
            recorded = json.loads(settings_file(ctx).read_text())
        except (OSError, json.JSONDecodeError):
            return PhaseOutcome(status="skipped", note="no record of a previous run; the first control plane checks")
        found = changes(recorded, fixed_settings(ctx.cluster))
        if found:
            raise RefusedError(
                f"{ctx.inventory}: changes settings a running kubeadm cluster cannot change ({'; '.join(found)}). "
                "Restore the previous values in the inventory, or rebuild the cluster (provision reset, then up) to "
                "use the new ones.",
            )
        return PhaseOutcome(status="ok", note="as the running cluster has them")


@dataclass
class RecordFixedSettingsPhase:
    """After a verified `up`: the fixed settings, for the next run's FixedSettingsPhase."""

    name: str = "record-settings"
    title: str = "Record the settings kubeadm fixed"
    changes_hosts: bool = False

    def run(self, ctx: Context) -> PhaseOutcome:
        skipped = unless_verified(ctx)
        if skipped is not None:
            return skipped
        fd = os.open(settings_file(ctx), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(fixed_settings(ctx.cluster), handle, indent=2, sort_keys=True)
        return PhaseOutcome(status="ok")
