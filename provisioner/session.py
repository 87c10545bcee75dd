"""What every command that talks to hosts works with, built once by the CLI (cli/common.open_session): the loaded
inventory, its state directory, the reporter, the SSH settings, the secrets moved out of the environment, and the
flavor that knows how this cluster's commands run. Flavors receive it; nothing here prints or parses arguments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner.inventory import Cluster
from provisioner.phases.base import Reporter
from provisioner.runner import Runner, new_run_id
from provisioner.ssh_config import SshSettings
from provisioner.state import ClusterState

if TYPE_CHECKING:
    from provisioner.flavors.base import Flavor


@dataclass(frozen=True)
class SecretFiles:
    """Secrets the user exported (PROVISION_K3S_TOKEN, PROVISION_DATASTORE_PASSWORD), moved into 0600 files of the
    cluster's state dir before anything runs: the variables leave the environment, so no runner artifact, child
    process or task environment sees them, and only the files' paths travel as extra vars."""

    token: Path | None = None
    datastore_password: Path | None = None
    become_password: Path | None = None  # sudo's (PROVISION_BECOME_PASSWORD or --ask-become-pass)


@dataclass
class Session:
    """One command's view of the cluster. `flavor` decides playbooks, extra vars and flows."""

    cluster: Cluster
    inventory: Path
    state: ClusterState
    reporter: Reporter
    ssh: SshSettings  # the command line's part of the SSH configuration, for the probe and Ansible alike
    flavor: Flavor
    secrets: SecretFiles = field(default_factory=SecretFiles)
    run_id: str = field(default_factory=new_run_id)  # every playbook of this command keeps its artifacts together

    def runner(self, base_extravars: Mapping[str, Any] | None = None) -> Runner:
        """A runner whose every playbook gets the secret files' paths the flavor's roles read (as the environment
        variables would have reached them), plus `base_extravars`."""
        base = dict(self.flavor.secret_extravars(self.secrets)) | dict(base_extravars or {})
        if self.secrets.become_password is not None:
            # Ansible reads the file on this machine when it needs the password (sudo gets it on stdin); only the
            # path is in the extra vars, hence in the runner's artifacts.
            path = json.dumps(str(self.secrets.become_password))  # a JSON string is a valid Jinja string literal
            base["ansible_become_password"] = "{{ lookup('ansible.builtin.file', " + path + ") }}"
        return Runner(
            self.state.runner_dir, self.ssh, on_event=self.reporter.host_event, base_extravars=base,
            run_id=self.run_id,
        )
