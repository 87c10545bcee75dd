"""What `reset` and `remove-node` share: asking first, running one phase playbook, and the run report."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner.errors import RefusedError, UsageError
from provisioner.lifecycle_plan import Node
from provisioner.phases.membership import read_node_list
from provisioner.runner import PlaybookResult, PlaybookRun
from provisioner.session import Session
from provisioner.state import PhaseReport, RunReport

CLEANUP_TASK = "Remove processes, pod namespaces, mounts, interfaces and firewall chains"


def read_nodes(session: Session, avoid: Sequence[str]) -> dict[str, Node]:
    """The node list as the first server outside `avoid` that answers sees it; else as a server in `avoid` sees it
    (so that a server whose inventory peers are no longer nodes is judged the last one, not unanswered)."""
    runner = session.runner()
    servers = [s.name for s in session.cluster.servers]
    for server in [*(s for s in servers if s not in avoid), *(s for s in servers if s in avoid)]:
        nodes = read_node_list(runner, session.inventory, session.flavor.node_query, server)
        if nodes is not None:
            return nodes
    raise RefusedError(
        f"no server other than {', '.join(avoid)} answered with the node list; the cluster's state cannot be checked"
    )


def confirm(args: argparse.Namespace, question: str) -> None:
    """Ask before a destructive command unless --yes; refuse to guess without a terminal."""
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("not asking for confirmation without a terminal; rerun with --yes")
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise UsageError("cancelled; nothing was changed")


@dataclass
class PhaseRun:
    """One playbook run recorded as a phase of the report."""

    session: Session
    report: RunReport
    results: dict[str, PlaybookResult] = field(default_factory=dict)

    def run(self, name: str, title: str, run: PlaybookRun) -> PlaybookResult:
        reporter = self.session.reporter
        reporter.phase_started(name, title)
        started = time.monotonic()
        result = self.session.runner().run(run)
        self.results[name] = result
        phase = PhaseReport(
            name=name,
            status="ok" if result.ok else "failed",
            duration_s=round(time.monotonic() - started, 2),
            changed={h: o.changed for h, o in result.hosts.items()},
            failed=result.failed_hosts,
            unreachable=result.unreachable_hosts,
        )
        self.report.phases.append(phase)
        reporter.phase_finished(phase)
        return result


def host_rows(results: dict[str, PlaybookResult]) -> dict[str, dict[str, Any]]:
    """Per host: outcome, changes, time and the cleanup actions (no secrets: module output lists paths/names)."""
    rows: dict[str, dict[str, Any]] = {}
    for result in results.values():
        for host, outcome in result.hosts.items():
            row = rows.setdefault(host, {"status": "ok", "changed": 0, "duration_s": 0.0, "actions": []})
            row["changed"] += outcome.changed
            row["duration_s"] = round(row["duration_s"] + outcome.duration_s, 2)
            if outcome.unreachable:
                row["status"] = "unreachable"
            elif outcome.failed and row["status"] == "ok":
                row["status"] = "failed"
            if outcome.reason:
                row["reason"] = outcome.reason
        for host, tasks in result.captured.items():
            actions = (tasks.get(CLEANUP_TASK) or {}).get("actions") or []
            rows.setdefault(host, {"status": "ok", "changed": 0, "duration_s": 0.0, "actions": []})
            rows[host]["actions"].extend(str(a) for a in actions)
    return rows


def finish(report: RunReport, session: Session, ok: bool) -> Path:
    report.status = "ok" if ok else "failed"
    report.finished = time.time()
    return report.save(session.state)
