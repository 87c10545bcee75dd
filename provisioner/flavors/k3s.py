"""K3s: one binary per node, a server/agent split, config in /etc/rancher/k3s."""

from __future__ import annotations

from provisioner.flavors.base import FlavorOptions
from provisioner.phases.base import Phase, PlaybookPhase
from provisioner.phases.datastore import DatastoreCheckPhase
from provisioner.phases.membership import MembershipPhase, RecordMembersPhase
from provisioner.phases.probe import ProbePhase
from provisioner.phases.settings import CriticalSettingsPhase
from provisioner.phases.upgrade import upgrade_phases


class K3sFlavor:
    name = "k3s"

    def __init__(self, options: FlavorOptions) -> None:
        self.options = options

    def up_phases(self) -> list[Phase]:
        return [
            CriticalSettingsPhase(),
            MembershipPhase(touch_all=self.options.touch_all),
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
        ]

    def upgrade_phases(self, backup: bool) -> list[Phase]:
        """After the read-only check and the user's go: stage, backup, servers, agents, verify."""
        return list(upgrade_phases(backup))

    def status_playbook(self) -> str:
        return "status.yml"
