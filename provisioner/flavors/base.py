"""The interface every flavor implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from provisioner.phases.base import Phase
from provisioner.probe import SshSettings


@dataclass(frozen=True)
class FlavorOptions:
    ssh: SshSettings
    touch_all: bool = False  # `up --all`: run every phase on every host, not only on new or changed ones


class Flavor(Protocol):
    name: str

    def up_phases(self) -> list[Phase]:
        """Phases of `provision up`, in order."""
        ...

    def status_playbook(self) -> str:
        """Playbook whose task 'Read the node list' returns the nodes as JSON."""
        ...
