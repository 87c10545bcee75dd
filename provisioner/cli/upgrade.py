"""`provision upgrade`: a rolling, quorum-safe, resumable K3s upgrade.

Flow: a read-only check (versions, node list, API health, target release per architecture) -> the plan from
provisioner.plan, shown before anything changes -> refusal if a safety rule is broken -> --dry-run stops here ->
confirmation (unless --yes) -> stage, backup, servers one by one, agents in batches, verify. A rerun resumes: the
plan skips nodes already at the target and the playbooks skip them again.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from provisioner.cli.common import Session, add_connection_options, add_inventory_options, open_session
from provisioner.cli.output import emit_json
from provisioner.errors import PhaseFailedError, ProvisionError, RefusedError, UsageError
from provisioner.phases.base import Context
from provisioner.phases.upgrade import CHECK_CAPTURE, StopAtFirstFailure, read_check, upgrade_phases
from provisioner.plan import K3sVersion, UpgradePlan, plan_upgrade
from provisioner.runner import PlaybookRun
from provisioner.state import RunReport


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("upgrade", help="upgrade K3s on every node: servers one at a time, then agents")
    add_inventory_options(parser)
    add_connection_options(parser)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--version", dest="target_version", help="target release, e.g. v1.29.0+k3s1")
    target.add_argument("--channel", dest="target_channel", help="release channel to follow, e.g. stable or v1.29")
    parser.add_argument("--max-unavailable", type=int, default=1, help="agents upgraded at the same time (default 1)")
    parser.add_argument("--drain-timeout", type=int, default=120, help="seconds a node's drain may take (default 120)")
    parser.add_argument("--no-drain", action="store_true", help="do not cordon and drain nodes (not recommended)")
    parser.add_argument("--no-backup", action="store_true", help="skip the backup taken before the first server")
    parser.add_argument("--dry-run", action="store_true", help="show the plan and the safety checks; change nothing")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--strategy", choices=["rolling"], default="rolling",
        help="how to upgrade (system-upgrade-controller Plans are not available yet)",
    )
    parser.set_defaults(handler=run)


def _target_vars(args: argparse.Namespace) -> dict[str, Any]:
    """Extra vars naming the target. An inventory's own k3s_version/k3s_channel is overridden, never combined."""
    if args.target_version:
        try:
            K3sVersion.parse(args.target_version)
        except ValueError as exc:
            raise UsageError(f"--version: {exc}") from None
        return {"k3s_version": args.target_version, "k3s_channel": ""}
    return {"k3s_version": "", "k3s_channel": args.target_channel}


def _extravars(args: argparse.Namespace, session: Session) -> dict[str, Any]:
    if args.max_unavailable < 1:
        raise UsageError(f"--max-unavailable must be at least 1, not {args.max_unavailable}")
    return {
        **_target_vars(args),
        "k3s_kubeconfig_dest": str(session.state.kubeconfig),
        "k3s_upgrade_max_unavailable": args.max_unavailable,
        "k3s_upgrade_drain_timeout": args.drain_timeout,
        "k3s_upgrade_drain": not args.no_drain,
        "k3s_backup_dir": str(session.state.root / "backups"),
        "k3s_backup_name": f"{session.cluster.name}-pre-upgrade-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}",
    }


def make_plan(session: Session, extravars: dict[str, Any], max_unavailable: int) -> UpgradePlan:
    """Run the read-only check and plan from what it saw. Raises RefusedError when the target cannot be read."""
    session.reporter.phase_started("check", "Read versions and health; check the target release (read-only)")
    result = session.runner().run(
        PlaybookRun(
            playbook="upgrade_check.yml",
            inventory=session.inventory,
            extravars={**extravars, "k3s_upgrade_enforce_checks": False},
            capture=CHECK_CAPTURE,
        )
    )
    findings = read_check(session.cluster, result)
    if findings.target is None:
        raise _refused(findings.problems or ["could not settle the target version (is the channel URL reachable?)"])
    try:
        target = K3sVersion.parse(findings.target)
    except ValueError as exc:
        raise RefusedError(f"the channel resolved to {findings.target!r}: {exc}") from None
    plan = plan_upgrade(findings.nodes, target, session.cluster.datastore, max_unavailable)
    if findings.problems:
        plan = UpgradePlan(
            target=plan.target, datastore=plan.datastore, nodes=plan.nodes, steps=plan.steps,
            refusals=(*plan.refusals, *findings.problems), notes=plan.notes,
        )
    return plan


class _RefusalError(RefusedError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"the upgrade is refused ({len(problems)} problem(s)); nothing was changed")

    def details(self) -> list[str]:
        return self.problems


def _refused(problems: list[str]) -> _RefusalError:
    return _RefusalError(problems)


def _show_plan(session: Session, plan: UpgradePlan) -> None:
    reporter = session.reporter
    reporter.info(f"plan: upgrade to {plan.target} ({plan.datastore}); servers one at a time, then agents")
    rows = [
        [str(n.order) if n.order else "-", n.name, n.role, n.current, n.target, n.action, "yes" if n.drain else "no"]
        for n in plan.nodes
    ]
    reporter.table(["STEP", "NODE", "ROLE", "CURRENT", "TARGET", "ACTION", "DRAIN"], rows)
    for note in plan.notes:
        reporter.info(f"note: {note}")


def _plan_json(plan: UpgradePlan) -> dict[str, Any]:
    return {
        "target": plan.target,
        "datastore": plan.datastore,
        "steps": [{"phase": s.phase, "nodes": list(s.nodes)} for s in plan.steps],
        "nodes": [n.__dict__ for n in plan.nodes],
        "refusals": list(plan.refusals),
        "notes": list(plan.notes),
    }


def _confirm(args: argparse.Namespace, plan: UpgradePlan) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("not asking for confirmation without a terminal; rerun with --yes (or --dry-run)")
    answer = input(f"Upgrade {len(plan.to_upgrade)} node(s) to {plan.target}? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("upgrade cancelled; nothing was changed")


def run(args: argparse.Namespace) -> int:
    session = open_session(args)
    if session.cluster.flavor != "k3s":
        raise UsageError(f"upgrade supports the k3s flavor only, not {session.cluster.flavor!r}")
    extravars = _extravars(args, session)
    plan = make_plan(session, extravars, args.max_unavailable)
    if not args.json:
        _show_plan(session, plan)
    if plan.refused:
        raise _refused(list(plan.refusals))
    if args.dry_run or not plan.to_upgrade:
        if args.json:
            emit_json({"status": "planned" if args.dry_run else "ok", "plan": _plan_json(plan)})
        else:
            session.reporter.info("dry run: nothing was changed" if args.dry_run else "nothing to upgrade")
        return 0
    _confirm(args, plan)
    extravars["k3s_version"], extravars["k3s_channel"] = plan.target, ""  # a channel is pinned for the whole run
    return _execute(args, session, plan, extravars)


def _execute(args: argparse.Namespace, session: Session, plan: UpgradePlan, extravars: dict[str, Any]) -> int:
    report = RunReport(command="upgrade", cluster=session.cluster.name, inventory=str(session.inventory))
    ctx = Context(
        cluster=session.cluster, inventory=session.inventory, runner=session.runner(), state=session.state,
        report=report, reporter=session.reporter, extravars=extravars,
    )
    started = time.monotonic()
    error: ProvisionError | None = None
    backup = plan.servers_change and not args.no_backup
    try:
        StopAtFirstFailure(list(upgrade_phases(backup))).run(ctx)
    except PhaseFailedError as exc:
        exc.resume_hint = _resume_hint(exc)
        error = exc
    per_node = {
        host: round(sum(r.hosts[host].duration_s for name, r in ctx.results.items()
                        if name in ("servers", "agents") and host in r.hosts), 1)
        for host in plan.to_upgrade
    }
    report.hosts = {h: {"upgrade_s": s} for h, s in per_node.items()}
    report.status = "failed" if error else "ok"
    report.finished = time.time()
    saved = report.save(session.state)
    if args.json:
        document = report.to_json() | {"plan": _plan_json(plan), "report_file": str(saved)}
        if backup:
            document["backup"] = f"{extravars['k3s_backup_dir']}/{extravars['k3s_backup_name']}"
        if error is not None:
            document["error"] = {"message": str(error), "details": error.details()}
            error.reported = True
        emit_json(document)
    else:
        if backup and "backup" in {p.name for p in report.phases if p.status == "ok"}:
            session.reporter.info(f"backup: {extravars['k3s_backup_dir']}/{extravars['k3s_backup_name']}")
        session.reporter.info(
            f"upgrade {'stopped' if error else 'finished'} in {time.monotonic() - started:.1f}s; report: {saved}"
        )
        if error is None:
            session.reporter.info(
                f"set k3s_version: {plan.target} in {session.inventory} so `provision up` keeps this version"
            )
    if error is not None:
        raise error
    return 0


def _resume_hint(exc: PhaseFailedError) -> str:
    if exc.phase in ("stage", "backup"):
        return "no node was drained or restarted; fix the problem above and rerun the same command"
    stopped_at = {h: why for h, why in {**exc.failed, **exc.unreachable}.items() if "is left alone" not in why}
    names = ", ".join(sorted(stopped_at)) or "the node named above"
    return (
        f"the upgrade stopped at {names}; the other nodes keep serving (no further node was taken down). "
        "Fix that node (see the reason above; `journalctl -u k3s` or `-u k3s-agent` on it), then rerun the same "
        "command: nodes already at the target are skipped"
    )
