"""The probe phase: facts from every host in parallel over SSH, compared with what the inventory declares.

Errors stop the flow before anything changes, with one line per problem. Unreachable agents are left out of this
run (the rest of the cluster still comes up) and reported at the end; an unreachable server stops everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from provisioner.errors import HostProblem, ProbeError
from provisioner.phases.base import Context, PhaseOutcome
from provisioner.probe import Check, compare, probe_hosts
from provisioner.ssh_config import SshSettings


@dataclass
class ProbePhase:
    ssh: SshSettings
    checks: Sequence[Check] | None = None  # the flavor's; None: K3s's
    name: str = "probe"
    title: str = "Probe hosts and compare them with the inventory"
    changes_hosts: bool = False

    def run(self, ctx: Context) -> PhaseOutcome:
        hosts = [
            h for h in ctx.cluster.hosts
            if h.name not in ctx.excluded and (ctx.only is None or h.name in ctx.only or h == ctx.cluster.first_server)
        ]
        facts = probe_hosts(hosts, self.ssh)
        ctx.facts.update(facts)
        findings = compare(hosts, facts, self.checks)
        for finding in findings:
            if finding.severity == "warning":
                ctx.reporter.warn(f"{finding.host}: {finding.check}: {finding.message}")
        errors = [f for f in findings if f.severity == "error"]
        agents = {h.name for h in ctx.cluster.agents}
        unreachable_agents = {
            f.host: f.message for f in errors if f.check == "reachable" and f.host in agents
        }
        blocking = [f for f in errors if f.host not in unreachable_agents]
        if blocking:
            only_unreachable = all(f.check == "reachable" for f in blocking)
            raise ProbeError(
                [HostProblem(f.host, f.check, f.message, f.fix) for f in blocking],
                unreachable=only_unreachable,
            )
        if unreachable_agents:
            return PhaseOutcome(status="failed", unreachable=unreachable_agents)
        return PhaseOutcome(status="ok")
