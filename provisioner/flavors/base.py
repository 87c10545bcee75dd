"""The contract every flavor implements: the CLI, the phase manager and the runner ask the flavor, never name a
distribution themselves.

A flavor owns, for its clusters: the phases of `up`; the playbook that reads the node list; what `reset`,
`remove-node`, `backup` and `restore` run; the whole `upgrade` flow (its version grammar and rules live with it);
and the names of the extra vars its roles read (kubeconfig destination, secret files). Settings and validation of
the inventory stay in `provisioner.inventory` (below this layer), flows here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from provisioner.lifecycle_plan import Node, RemovalPlan
from provisioner.phases.base import Phase
from provisioner.phases.settings import RecordedSettings
from provisioner.ssh_config import SshSettings

if TYPE_CHECKING:
    from provisioner.session import SecretFiles, Session


@dataclass(frozen=True)
class FlavorOptions:
    ssh: SshSettings


@dataclass(frozen=True)
class Step:
    """One playbook a command runs, as the flavor names it."""

    playbook: str
    title: str
    extravars: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UpgradeRequest:
    """`provision upgrade` as the user asked for it; the flavor checks what it supports."""

    target_version: str | None
    target_channel: str | None
    max_unavailable: int
    drain_timeout_s: int
    drain: bool
    backup: bool
    dry_run: bool
    assume_yes: bool
    json: bool
    strategy: str
    plan_out: Path | None


@dataclass(frozen=True)
class RestoreSource:
    """A backup directory checked by the flavor: what it holds, for the confirmation and the report."""

    path: Path
    kind: str
    description: str


class Flavor(Protocol):
    name: str
    product: str  # what the user sees it install: "K3s"
    commands: frozenset[str]  # the `provision` commands built for it; others are refused before any host is asked
    recorded_settings: RecordedSettings  # fixed once the cluster runs; recorded by `up`, forgotten by a whole `reset`

    def secret_extravars(self, secrets: SecretFiles) -> Mapping[str, str]:
        """Extra vars every playbook gets for the secret files the user exported (paths only)."""
        ...

    def up_phases(self, touch_all: bool) -> list[Phase]:
        """Phases of `provision up`, in order; `touch_all` (`up --all`) runs them on every host."""
        ...

    def up_extravars(self, session: Session, token_file: Path | None) -> dict[str, Any]:
        """Extra vars of `up`: where the admin kubeconfig goes, the token and password files."""
        ...

    def node_list_playbook(self) -> str:
        """Playbook whose task 'Read the node list' returns the nodes as JSON (status)."""
        ...

    def node_query(self, server: str | None) -> tuple[str, dict[str, Any]]:
        """Playbook and extra vars that ask one server (default: the first) for the node list, never failing on a
        host without the cluster (task "Read the cluster's node list"; membership, reset, remove-node)."""
        ...

    def embedded_etcd(self, nodes: Mapping[str, Node]) -> bool:
        """Whether the control plane's etcd runs on the servers (removing one then needs quorum arithmetic)."""
        ...

    def reset_step(self) -> Step:
        """What `reset` runs on the hosts it resets."""
        ...

    def kept_packages(self) -> list[str]:
        """Packages `up` may have installed that `reset` leaves in place (other software may use them)."""
        ...

    def removal_step(self, plan: RemovalPlan) -> Step:
        """What `remove-node` runs for this removal."""
        ...

    def backup_step(self, session: Session, dest: Path, name: str) -> Step:
        """What `backup` runs; raises UsageError when the cluster cannot be backed up this way."""
        ...

    def restore_source(self, session: Session, source: Path) -> RestoreSource:
        """Check a backup directory before anything stops; raises UsageError with the reason."""
        ...

    def restore_step(self, session: Session, source: RestoreSource) -> Step:
        """What `restore` runs."""
        ...

    def upgrade(self, session: Session, request: UpgradeRequest) -> int:
        """The whole `upgrade` command: check, plan, refusals, confirmation, phases, report; the exit code."""
        ...
