"""kubeadm: upstream Kubernetes, a control plane of static pods set up by `kubeadm init`, nodes added by `kubeadm join`.

What is built: `up` (prepare with the shared node_prep role, binaries from dl.k8s.io or a mirror, containerd, init,
control-plane joins one at a time, worker joins, the CNI, kubeconfig, verify), `status`, `reset`, `remove-node` and
`upgrade` (upgrade.py). backup and restore answer that they are not built for kubeadm clusters yet, before anything
is contacted. The roles are playbooks/roles/kubeadm and node_prep; the inventory's kubeadm settings are
checked by provisioner/inventory/kubeadm_checks.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner.errors import RefusedError, UsageError
from provisioner.flavors.base import FlavorOptions, RestoreSource, Step, UpgradeRequest
from provisioner.flavors.kubeadm import probe_checks
from provisioner.flavors.kubeadm.settings import FIXED_SETTINGS
from provisioner.flavors.node_prep import base_packages, flavor_packages
from provisioner.lifecycle_plan import Node, RemovalPlan
from provisioner.phases.base import Phase, PlaybookPhase
from provisioner.phases.membership import MembershipPhase, RecordMembersPhase
from provisioner.phases.probe import ProbePhase
from provisioner.phases.settings import RecordSettingsPhase, SettingsPhase

if TYPE_CHECKING:
    from provisioner.session import SecretFiles, Session


def _not_built(command: str) -> UsageError:
    return UsageError(
        f"`provision {command}` is not built for kubeadm clusters yet (this release installs them with `up` and"
        " reads them with `status`); run kubeadm's own tools on the control plane meanwhile"
    )


class KubeadmFlavor:
    name = "kubeadm"
    product = "Kubernetes (kubeadm)"
    recorded_settings = FIXED_SETTINGS
    commands = frozenset({"up", "status", "reset", "remove-node", "upgrade"})

    def __init__(self, options: FlavorOptions) -> None:
        self.options = options

    # --------------------------------------------------------------------------------------------------- up
    def secret_extravars(self, secrets: SecretFiles) -> Mapping[str, str]:
        # Join tokens and certificate keys are made on the first control plane during the run; nothing to pass.
        return {}

    def up_phases(self, touch_all: bool) -> list[Phase]:
        return [
            SettingsPhase(FIXED_SETTINGS),
            MembershipPhase(self.node_query, touch_all=touch_all),
            ProbePhase(self.options.ssh, checks=probe_checks.CHECKS),
            PlaybookPhase(
                "prepare", "Prepare hosts (packages, kernel, swap, containerd, kubeadm/kubelet/kubectl)",
                "kubeadm_prepare.yml", honours_only=True,
            ),
            PlaybookPhase(
                "install", "kubeadm init on the first control plane, the CNI, joins", "kubeadm_install.yml",
                honours_only=True,
            ),
            PlaybookPhase(
                "kubeconfig", "Fetch the admin kubeconfig", "kubeadm_kubeconfig.yml", changes_hosts=False,
                run_in_check_mode=False,
            ),
            PlaybookPhase(
                "verify", "Verify every node, the CNI and CoreDNS are Ready", "kubeadm_verify.yml",
                changes_hosts=False, run_in_check_mode=False,
            ),
            RecordMembersPhase(),
            RecordSettingsPhase(FIXED_SETTINGS),
        ]

    def up_extravars(self, session: Session, token_file: Path | None) -> dict[str, Any]:
        if token_file is not None:
            raise UsageError(
                "--token-file is a K3s setting; kubeadm clusters use short-lived bootstrap tokens made during the run"
            )
        extravars: dict[str, Any] = {
            "kubeadm_kubeconfig_dest": str(session.state.kubeconfig),
            "provision_flavor": self.name,
        }
        settings = session.cluster.kubeadm
        if settings.artifact_dir is not None:
            extravars["kubeadm_artifact_dir"] = str(settings.artifact_dir)  # resolved from the inventory's folder
        etcd = settings.etcd
        if etcd is not None:
            # Resolved from the inventory's folder by the loader; the role copies them from this machine.
            extravars |= {
                "kubeadm_etcd_ca_file": str(etcd.ca_file),
                "kubeadm_etcd_cert_file": str(etcd.cert_file),
                "kubeadm_etcd_key_file": str(etcd.key_file),
            }
        return extravars

    # ------------------------------------------------------------------------------------------ day 2
    def node_list_playbook(self) -> str:
        return "kubeadm_status.yml"

    def node_query(self, server: str | None) -> tuple[str, dict[str, Any]]:
        return "kubeadm_nodes.yml", ({"kubeadm_query_server": server} if server else {})

    def embedded_etcd(self, nodes: Mapping[str, Node]) -> bool:
        # Stacked etcd runs on every control-plane node unless the inventory names an external one; the node list
        # does not say (kubeadm sets no etcd label), so this answers for stacked etcd.
        return True

    def reset_step(self) -> Step:
        return Step(
            "kubeadm_reset.yml",
            "kubeadm reset, then the CNI's files, interfaces and iptables chains, containerd's configuration, the "
            "kubelet and the Kubernetes packages",
        )

    def kept_packages(self) -> list[str]:
        # Node preparation's packages and the container runtime kubeadm_prepare.yml adds; kubeadm, kubelet and
        # kubectl go unless kubeadm_reset_keep_packages is set in the inventory.
        return base_packages() + flavor_packages("kubeadm_prepare.yml")

    def removal_step(self, plan: RemovalPlan) -> Step:
        if plan.etcd_member and not plan.reset_host:
            raise RefusedError(
                f"{plan.host} is a control plane and unreachable: its etcd member can only leave the cluster from "
                "its own host. Bring it back and rerun without --force, or remove the member by hand (`etcdctl "
                f"member remove` on {plan.control_server}, then `kubectl delete node {plan.host}`)"
            )
        return Step(
            "kubeadm_remove_node.yml",
            f"Remove {plan.host}",
            {
                "kubeadm_remove_node": plan.host,
                "kubeadm_remove_force": not plan.reset_host,
                "kubeadm_remove_via": plan.control_server,
            },
        )

    # ---------------------------------------------------------------------------------- backup, restore
    def backup_step(self, session: Session, dest: Path, name: str) -> Step:
        raise _not_built("backup")

    def restore_source(self, session: Session, source: Path) -> RestoreSource:
        raise _not_built("restore")

    def restore_step(self, session: Session, source: RestoreSource) -> Step:
        raise _not_built("restore")

    # ---------------------------------------------------------------------------------------- upgrade
    def upgrade(self, session: Session, request: UpgradeRequest) -> int:
        from provisioner.flavors.kubeadm.upgrade import run_upgrade  # noqa: PLC0415 - the flow loads only when used

        return run_upgrade(session, request)
