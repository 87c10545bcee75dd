"""The phase contract and the manager that runs a list of phases.

A phase is one playbook (or one local step such as probing). The manager prints each phase's title through the
reporter, stops at the first failure that leaves nothing useful to do, and records every phase in the run report.
When only some agents fail, the remaining phases go on without them, so the rest of the cluster still comes up and
the report names what to rerun.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from provisioner.errors import InterruptedRunError, PhaseFailedError
from provisioner.inventory import Cluster
from provisioner.runner import HostEvent, PlaybookResult, PlaybookRun, Runner
from provisioner.state import ClusterState, PhaseReport, RunReport


class Reporter(Protocol):
    """Where progress goes (text for people, JSON for machines). Nothing below the CLI prints."""

    def phase_started(self, name: str, title: str) -> None: ...
    def host_event(self, event: HostEvent) -> None: ...
    def phase_finished(self, report: PhaseReport) -> None: ...
    def warn(self, message: str) -> None: ...
    def info(self, message: str) -> None: ...
    def table(self, headers: list[str], rows: list[list[str]], *, result: bool = True) -> None: ...
    def document(self, document: dict[str, Any]) -> None: ...
    def result_text(self, text: str) -> None: ...


@dataclass
class Context:
    """Everything a phase may use. `excluded` grows as hosts fail; later phases leave them out."""

    cluster: Cluster
    inventory: Path
    runner: Runner
    state: ClusterState
    report: RunReport
    reporter: Reporter
    extravars: dict[str, Any] = field(default_factory=dict)
    check: bool = False
    excluded: dict[str, str] = field(default_factory=dict)  # host -> why
    results: dict[str, PlaybookResult] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    # Hosts the host-changing phases work on (set by the membership phase: new or changed hosts only); None = all.
    only: tuple[str, ...] | None = None
    # The node list the membership phase read before anything changed (name -> node); None when there was none.
    nodes_before: dict[str, Any] | None = None
    # `up --limit`: the hosts the user asked for (None: all); hosts the run would touch but --limit leaves out.
    requested: tuple[str, ...] | None = None
    left_out: tuple[str, ...] = ()

    @property
    def limit(self) -> str | None:
        if not self.excluded:
            return None
        return ",".join(["all", *(f"!{h}" for h in sorted(self.excluded))])

    @property
    def limit_to_only(self) -> str | None:
        """The limit for phases that honour `only`: those hosts minus the excluded ones."""
        if self.only is None:
            return self.limit
        return ",".join(h for h in self.only if h not in self.excluded)


@dataclass
class PhaseOutcome:
    status: str  # ok | partial | failed | skipped
    changed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    note: str = ""


class Phase(Protocol):
    name: str
    title: str
    changes_hosts: bool

    def run(self, ctx: Context) -> PhaseOutcome: ...


@dataclass
class PlaybookPhase:
    """A phase that is one playbook under playbooks/."""

    name: str
    title: str
    playbook: str
    changes_hosts: bool = True
    run_in_check_mode: bool = True
    honours_only: bool = False  # True: runs only on ctx.only (the hosts the membership phase chose)

    def run(self, ctx: Context) -> PhaseOutcome:
        if ctx.check and not self.run_in_check_mode:
            return PhaseOutcome(status="skipped", note="not meaningful in check mode")
        limit = ctx.limit_to_only if self.honours_only else ctx.limit
        if limit == "":
            return PhaseOutcome(status="skipped", note="every host is already a member as described")
        result = ctx.runner.run(
            PlaybookRun(
                playbook=self.playbook,
                inventory=ctx.inventory,
                extravars={**ctx.extravars, "provision_excluded_hosts": sorted({*ctx.excluded, *ctx.left_out})},
                limit=limit,
                check=ctx.check,
                diff=ctx.check,
                capture=frozenset(CAPTURED_TASKS),
            )
        )
        ctx.results[self.name] = result
        changed = {h: o.changed for h, o in result.hosts.items()}
        if result.ok:
            return PhaseOutcome(status="ok", changed=changed)
        failed, unreachable = result.failed_hosts, result.unreachable_hosts
        if not failed and not unreachable:
            failed = {"(ansible)": f"run ended with status {result.status}, rc {result.rc}; see {result.artifact_dir}"}
        return PhaseOutcome(status="failed", changed=changed, failed=failed, unreachable=unreachable)


# Results the CLI reads from events (never from stdout): the node list the verify phase saw.
CAPTURED_TASKS = ("Wait for every node to be Ready as the inventory describes", "Read the node list")


def unless_verified(ctx: Context) -> PhaseOutcome | None:
    """For phases that record what a run achieved: the outcome to return instead when there is nothing to record
    (a check run, or verify did not pass); None when the run verified."""
    if ctx.check:
        return PhaseOutcome(status="skipped", note="check mode")
    if not any(p.name == "verify" and p.status == "ok" for p in ctx.report.phases):
        return PhaseOutcome(status="skipped", note="verify did not pass")
    return None


class PhaseManager:
    """Runs phases in order; decides after each whether the flow can go on."""

    def __init__(self, phases: list[Phase]) -> None:
        self.phases = phases

    def run(self, ctx: Context) -> None:
        for phase in self.phases:
            ctx.reporter.phase_started(phase.name, phase.title)
            started = time.monotonic()
            try:
                outcome = phase.run(ctx)
            except InterruptedRunError as exc:
                elapsed = round(time.monotonic() - started, 2)
                ctx.report.phases.append(PhaseReport(name=phase.name, status="interrupted", duration_s=elapsed))
                exc.phase = phase.name
                raise
            report = PhaseReport(
                name=phase.name,
                status=outcome.status,
                duration_s=round(time.monotonic() - started, 2),
                changed=outcome.changed,
                failed=outcome.failed,
                unreachable=outcome.unreachable,
            )
            ctx.report.phases.append(report)
            ctx.reporter.phase_finished(report)
            if outcome.status != "failed":
                continue
            if self._can_continue_without(ctx, outcome):
                for host, why in outcome.failed.items():
                    ctx.excluded[host] = f"{phase.name}: {why}"
                for host, why in outcome.unreachable.items():
                    ctx.excluded[host] = f"{phase.name}: unreachable: {why}"
                ctx.reporter.warn(
                    f"continuing without {', '.join(sorted({**outcome.failed, **outcome.unreachable}))}; "
                    "rerun the same command to complete them"
                )
                continue
            raise PhaseFailedError(
                phase=phase.name,
                rc=1,
                failed=outcome.failed,
                unreachable=outcome.unreachable,
                resume_hint="nothing after this phase ran; fix the hosts named above and rerun the same command",
            )
        if ctx.excluded:
            unreachable = {h: w for h, w in ctx.excluded.items() if "unreachable" in w}
            raise PhaseFailedError(
                phase="up",
                rc=1,
                failed={h: w for h, w in ctx.excluded.items() if h not in unreachable},
                unreachable=unreachable,
                resume_hint="the rest of the cluster is up; rerun the same command to complete these hosts "
                "(finished hosts are left alone)",
            )

    @staticmethod
    def _can_continue_without(ctx: Context, outcome: PhaseOutcome) -> bool:
        """Only agents may drop out: servers carry the control plane and must all succeed."""
        servers = {h.name for h in ctx.cluster.servers}
        bad = set(outcome.failed) | set(outcome.unreachable)
        return bool(bad) and not (bad & servers) and "(ansible)" not in bad
