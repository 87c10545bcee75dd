"""What every flavor's `provision upgrade` shows and asks the same way: the plan table, its JSON form, the refusal
that lists each broken rule, and the confirmation. The plans themselves are the flavor's (provisioner.plan for K3s,
provisioner/flavors/kubeadm/upgrade.py for kubeadm); both fill provisioner.plan.UpgradePlan."""

from __future__ import annotations

import sys
from typing import Any

from provisioner.errors import RefusedError, UsageError
from provisioner.flavors.base import UpgradeRequest
from provisioner.plan import UpgradePlan
from provisioner.session import Session

#: The label an upgrade puts on a node before draining it and takes off after the uncordon: a rerun finishes a node
#: that carries it. The roles name it too (k3s_upgrade and kubeadm vars; tests/unit checks they agree).
CORDON_MARK = "upgrade.provision.io/cordoned"


class UpgradeRefusedError(RefusedError):
    """The upgrade must not start; `details()` lists every rule the cluster breaks."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"the upgrade is refused ({len(problems)} problem(s)); nothing was changed")

    def details(self) -> list[str]:
        return self.problems


def show_plan(session: Session, plan: UpgradePlan, headline: str, result: bool = True) -> None:
    """The plan table; a result on stdout unless stdout is kept for something else (result=False)."""
    reporter = session.reporter
    reporter.info(f"plan: upgrade to {plan.target} ({plan.datastore}); {headline}")
    rows = [
        [str(n.order) if n.order else "-", n.name, n.role, n.current, n.target, n.action, "yes" if n.drain else "no"]
        for n in plan.nodes
    ]
    reporter.table(["STEP", "NODE", "ROLE", "CURRENT", "TARGET", "ACTION", "DRAIN"], rows, result=result)
    for note in plan.notes:
        reporter.info(f"note: {note}")


def plan_json(plan: UpgradePlan) -> dict[str, Any]:
    return {
        "target": plan.target,
        "strategy": plan.strategy,
        "datastore": plan.datastore,
        "steps": [{"phase": s.phase, "nodes": list(s.nodes)} for s in plan.steps],
        "nodes": [n.__dict__ for n in plan.nodes],
        "refusals": list(plan.refusals),
        "notes": list(plan.notes),
    }


def confirm(request: UpgradeRequest, question: str) -> None:
    """Ask before changing anything, unless --yes; never without a terminal."""
    if request.assume_yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("not asking for confirmation without a terminal; rerun with --yes (or --dry-run)")
    answer = input(f"{question} [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("upgrade cancelled; nothing was changed")
