"""K3s: one binary per node, a server/agent split, config in /etc/rancher/k3s.

Everything the commands need to know about K3s clusters is asked of K3sFlavor: the phases of `up`, the playbooks
and extra vars of reset, remove-node, backup and restore, and the upgrade flow (flavors/k3s/upgrade.py). The roles
are playbooks/roles/k3s*; the inventory's K3s settings are read by provisioner/inventory (k3s_checks, k3s_flags).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner.errors import UsageError
from provisioner.flavors.base import FlavorOptions, RestoreSource, Step, UpgradeRequest
from provisioner.flavors.k3s.datastore import DatastoreCheckPhase
from provisioner.flavors.k3s.settings import CRITICAL_SETTINGS
from provisioner.flavors.node_prep import base_packages, flavor_packages
from provisioner.lifecycle_plan import ETCD_LABEL, Node, RemovalPlan
from provisioner.phases.base import Phase, PlaybookPhase
from provisioner.phases.membership import MembershipPhase, RecordMembersPhase
from provisioner.phases.probe import ProbePhase
from provisioner.phases.settings import RecordSettingsPhase, SettingsPhase

if TYPE_CHECKING:
    from provisioner.session import SecretFiles, Session

# What `provision backup` writes for each datastore, and the file that holds the state.
_BACKUP_KINDS = {"sqlite": "state.db", "etcd-snapshot": "etcd-snapshot"}


class K3sFlavor:
    name = "k3s"
    product = "K3s"
    recorded_settings = CRITICAL_SETTINGS
    commands = frozenset({"up", "status", "upgrade", "backup", "restore", "reset", "remove-node"})

    def __init__(self, options: FlavorOptions) -> None:
        self.options = options

    # --------------------------------------------------------------------------------------------------- up
    def secret_extravars(self, secrets: SecretFiles) -> Mapping[str, str]:
        # The datastore password file reaches every playbook, as the environment variable would have (the roles
        # fall back to it when the inventory names no file).
        if secrets.datastore_password is None:
            return {}
        return {"k3s_datastore_password_file": str(secrets.datastore_password)}

    def up_phases(self, touch_all: bool) -> list[Phase]:
        return [
            SettingsPhase(CRITICAL_SETTINGS),
            MembershipPhase(self.node_query, touch_all=touch_all),
            ProbePhase(self.options.ssh),
            DatastoreCheckPhase(),
            PlaybookPhase(
                "prepare", "Prepare hosts (packages, kernel modules, sysctls)", "prepare.yml", honours_only=True
            ),
            PlaybookPhase(
                "install", "Install K3s: first server, other servers one by one, agents", "install.yml",
                honours_only=True,
            ),
            PlaybookPhase(
                "kubeconfig", "Fetch the admin kubeconfig", "kubeconfig.yml", changes_hosts=False,
                run_in_check_mode=False,
            ),
            PlaybookPhase(
                "verify", "Verify every node is Ready as described", "verify.yml", changes_hosts=False,
                run_in_check_mode=False,
            ),
            RecordMembersPhase(),
            RecordSettingsPhase(CRITICAL_SETTINGS),
        ]

    def up_extravars(self, session: Session, token_file: Path | None) -> dict[str, Any]:
        extravars: dict[str, Any] = {
            "k3s_kubeconfig_dest": str(session.state.kubeconfig),
            "provision_flavor": self.name,
        }
        if token_file is not None:
            extravars["k3s_token_file"] = str(token_file)
        # PROVISION_DATASTORE_PASSWORD (moved into a file by the session) wins over the inventory's file.
        password_file = session.secrets.datastore_password or session.cluster.k3s.datastore_password_file
        if password_file is not None:
            extravars["k3s_datastore_password_file"] = str(password_file)
        return extravars

    # ------------------------------------------------------------------------------------------ day 2
    def node_list_playbook(self) -> str:
        return "status.yml"

    def node_query(self, server: str | None) -> tuple[str, dict[str, Any]]:
        return "nodes.yml", ({"k3s_query_server": server} if server else {})

    def embedded_etcd(self, nodes: Mapping[str, Node]) -> bool:
        return any(ETCD_LABEL in (n.get("metadata", {}).get("labels") or {}) for n in nodes.values())

    def reset_step(self) -> Step:
        return Step("reset.yml", "Stop K3s and remove services, files, mounts, interfaces and K3s firewall chains")

    def kept_packages(self) -> list[str]:
        return base_packages() + flavor_packages("prepare.yml")

    def removal_step(self, plan: RemovalPlan) -> Step:
        return Step(
            "remove_node.yml",
            f"Remove {plan.host}",
            {
                "k3s_remove_node": plan.host,
                "k3s_remove_force": not plan.reset_host,
                "k3s_remove_via": plan.control_server,
            },
        )

    # ---------------------------------------------------------------------------------- backup, restore
    def backup_step(self, session: Session, dest: Path, name: str) -> Step:
        if session.cluster.datastore == "external":
            raise UsageError("this cluster uses an external datastore: back it up with that database's own tools")
        return Step(
            "backup.yml",
            f"Back up {session.cluster.datastore} state and token",
            {"k3s_backup_dir": str(dest), "k3s_backup_name": name},
        )

    def restore_source(self, session: Session, source: Path) -> RestoreSource:
        if session.cluster.datastore == "external":
            raise UsageError("this cluster uses an external datastore: restore that database with its own tools")
        manifest_path = source / "manifest.json"
        if not manifest_path.is_file():
            raise UsageError(f"--from {source}: no manifest.json; is this a directory written by `provision backup`?")
        manifest: dict[str, str] = json.loads(manifest_path.read_text(encoding="utf-8"))
        kind = manifest.get("kind", "")
        if kind not in _BACKUP_KINDS:
            raise UsageError(f"--from {source}: unknown backup kind {kind!r}")
        for name in (_BACKUP_KINDS[kind], "token"):
            if not (source / name).is_file():
                raise UsageError(f"--from {source}: {name} is missing")
        if (source / "token").stat().st_mode & 0o077:
            raise UsageError(f"{source / 'token'} is readable by others; run: chmod 600 {source / 'token'}")
        expected = "etcd-snapshot" if session.cluster.datastore == "embedded-etcd" else "sqlite"
        if kind != expected:
            raise UsageError(f"{source} is a {kind} backup but this cluster needs {expected}")
        taken = f"taken {manifest.get('created', '?')} on {manifest.get('node', '?')}, {manifest.get('version', '?')}"
        return RestoreSource(path=source, kind=kind, description=f"{kind}, {taken}")

    def restore_step(self, session: Session, source: RestoreSource) -> Step:
        return Step(
            "restore.yml", "Restore the state and restart the servers", {"k3s_backup_restore_from": str(source.path)}
        )

    # ---------------------------------------------------------------------------------------- upgrade
    def upgrade(self, session: Session, request: UpgradeRequest) -> int:
        from provisioner.flavors.k3s.upgrade import run_upgrade  # noqa: PLC0415 - the flow loads only when used

        return run_upgrade(session, request)
