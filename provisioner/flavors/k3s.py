"""K3s: one binary per node, a server/agent split, config in /etc/rancher/k3s."""

from __future__ import annotations

from provisioner.flavors.base import FlavorOptions
from provisioner.phases.base import Phase, PlaybookPhase
from provisioner.phases.probe import ProbePhase


class K3sFlavor:
    name = "k3s"

    def __init__(self, options: FlavorOptions) -> None:
        self.options = options

    def up_phases(self) -> list[Phase]:
        return [
            ProbePhase(self.options.ssh),
            PlaybookPhase("prepare", "Prepare hosts (packages, kernel modules, sysctls)", "prepare.yml"),
            PlaybookPhase("install", "Install K3s: first server, other servers one by one, agents", "install.yml"),
            PlaybookPhase(
                "kubeconfig", "Fetch the admin kubeconfig", "kubeconfig.yml", changes_hosts=False,
                run_in_check_mode=False,
            ),
            PlaybookPhase(
                "verify", "Verify every node is Ready as described", "verify.yml", changes_hosts=False,
                run_in_check_mode=False,
            ),
        ]

    def status_playbook(self) -> str:
        return "status.yml"
