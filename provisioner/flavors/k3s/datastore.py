"""The datastore probe: every server reaches the external datastore and logs in, before anything is installed.

Runs playbooks/datastore_check.yml (a module that tries TCP, then the driver's login) only when the inventory names
an external datastore. A failure stops `up` with the module's own words ("wrong password", "cannot connect"), so it
is never mistaken for a K3s start timeout later on.
"""

from __future__ import annotations

from dataclasses import dataclass

from provisioner.phases.base import Context, PhaseOutcome, PlaybookPhase


@dataclass
class DatastoreCheckPhase:
    name: str = "probe-datastore"
    title: str = "Check the external datastore from every server"
    changes_hosts: bool = False

    def run(self, ctx: Context) -> PhaseOutcome:
        if ctx.cluster.datastore != "external":
            return PhaseOutcome(status="skipped", note="no external datastore")
        return PlaybookPhase(self.name, self.title, "datastore_check.yml", changes_hosts=False).run(ctx)
