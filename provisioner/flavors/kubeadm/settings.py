"""What a kubeadm cluster fixed at its first `up`, refused before any host is contacted when the inventory changes it.

kubeadm fixes the pod and service subnets, the DNS domain, the control-plane endpoint, the cluster name and the etcd
topology at init, and the CNI cannot be swapped under running pods. Which settings those are is written once, in the
kubeadm role's filter plugin (FIXED_AT_INIT, FIXED_AFTER_FIRST_UP): the role checks the first control plane's own
record with it (also for plain ansible-playbook runs), but only in the install phase. The last verified `up` records
them in the state directory, and the settings phase (provisioner/phases/settings.py) compares the inventory with
that record first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provisioner.inventory import Cluster
from provisioner.paths import role_code
from provisioner.phases.settings import RecordedSettings

SETTINGS_FILE = "fixed-settings.json"


def fixed_settings(cluster: Cluster) -> dict[str, Any]:
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


def changes(recorded: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    return [f"{name}: {recorded[name]} -> {value}" for name, value in sorted(wanted.items())
            if name in recorded and recorded[name] != value]


def _refusal(inventory: Path, found: list[str]) -> str:
    return (
        f"{inventory}: changes settings a running kubeadm cluster cannot change ({'; '.join(found)}). Restore the "
        "previous values in the inventory, or rebuild the cluster (provision reset, then up) to use the new ones."
    )


FIXED_SETTINGS = RecordedSettings(
    file_name=SETTINGS_FILE,
    snapshot=fixed_settings,
    changes=changes,
    refusal=_refusal,
    skipped_note="no record of a previous run; the first control plane checks",
    compare_title="Compare the settings kubeadm fixed at init with the running cluster's",
    record_title="Record the settings kubeadm fixed",
)

