"""`provision upgrade` for K3s: a rolling, quorum-safe, resumable K3s upgrade, or system-upgrade-controller Plans.

Flow: a read-only check (versions, node list, API health, target release per architecture; for --strategy plan also
the controller's CRD) -> the plan from provisioner.plan, shown before anything changes -> refusal if a safety rule
is broken -> --dry-run stops here (printing the Plans for --strategy plan) -> confirmation (unless --yes) -> the
strategy's phases: rolling = stage, backup, servers one by one, agents in batches, verify; plan = backup, apply the
Plans on the first server (the controller then upgrades the nodes). A rerun resumes: the plan skips nodes already at
the target and the playbooks skip them again.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, cast

from provisioner.errors import PhaseFailedError, ProvisionError, RefusedError, UsageError
from provisioner.flavors.base import UpgradeRequest
from provisioner.flavors.k3s.suc import NAMESPACE, PlanSettings, render_plans
from provisioner.flavors.k3s.upgrade_phases import CHECK_CAPTURE, STRATEGIES, StopAtFirstFailure, read_check
from provisioner.flavors.upgrade_view import UpgradeRefusedError, confirm, plan_json, show_plan
from provisioner.inventory import Cluster
from provisioner.phases.base import Context
from provisioner.plan import K3sVersion, Strategy, UpgradePlan, plan_upgrade
from provisioner.runner import PlaybookRun
from provisioner.session import Session
from provisioner.state import RunReport


def _target_vars(request: UpgradeRequest) -> dict[str, Any]:
    """Extra vars naming the target. An inventory's own k3s_version/k3s_channel is overridden, never combined."""
    if request.target_version:
        try:
            K3sVersion.parse(request.target_version)
        except ValueError as exc:
            raise UsageError(f"--version: {exc}") from None
        return {"k3s_version": request.target_version, "k3s_channel": ""}
    return {"k3s_version": "", "k3s_channel": request.target_channel}


def _extravars(request: UpgradeRequest, session: Session) -> dict[str, Any]:
    if request.strategy not in STRATEGIES:
        raise UsageError(f"--strategy {request.strategy!r}: choose one of {', '.join(sorted(STRATEGIES))}")
    if request.plan_out is not None and request.strategy != "plan":
        raise UsageError("--plan-out writes system-upgrade-controller Plans: it needs --strategy plan")
    strategy_vars: dict[str, Any] = {"k3s_upgrade_strategy": request.strategy}
    if request.strategy == "plan":
        strategy_vars["k3s_upgrade_image"] = session.cluster.k3s.upgrade_image
    return {
        **_target_vars(request),
        **strategy_vars,
        "k3s_kubeconfig_dest": str(session.state.kubeconfig),
        "k3s_upgrade_max_unavailable": request.max_unavailable,
        "k3s_upgrade_drain_timeout": request.drain_timeout_s,
        "k3s_upgrade_drain": request.drain,
        "k3s_backup_dir": str(session.state.root / "backups"),
        "k3s_backup_name": f"{session.cluster.name}-pre-upgrade-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}",
    }


def make_plan(
    session: Session, extravars: dict[str, Any], max_unavailable: int, strategy: Strategy = "rolling"
) -> UpgradePlan:
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
    plan = plan_upgrade(findings.nodes, target, session.cluster.datastore, max_unavailable, strategy)
    if findings.problems:
        plan = dataclasses.replace(plan, refusals=(*plan.refusals, *findings.problems))
    return plan


def _refused(problems: list[str]) -> UpgradeRefusedError:
    return UpgradeRefusedError(problems)


def _show_plan(session: Session, plan: UpgradePlan, result: bool) -> None:
    how = "system-upgrade-controller Plans: " if plan.strategy == "plan" else ""
    show_plan(session, plan, f"{how}servers one at a time, then agents", result=result)


def _confirm(request: UpgradeRequest, plan: UpgradePlan) -> None:
    question = f"Upgrade {len(plan.to_upgrade)} node(s) to {plan.target}?"
    if plan.strategy == "plan":
        question = f"Apply Plans that upgrade {len(plan.to_upgrade)} node(s) to {plan.target}?"
    confirm(request, question)


def run_upgrade(session: Session, request: UpgradeRequest) -> int:
    extravars = _extravars(request, session)
    plan = make_plan(session, extravars, request.max_unavailable, cast(Strategy, request.strategy))
    if not request.json:
        manifest_on_stdout = plan.strategy == "plan" and request.dry_run and request.plan_out is None
        _show_plan(session, plan, result=not manifest_on_stdout)
    if plan.refused:
        raise _refused(list(plan.refusals))
    manifest = plan_manifest(request, session.cluster, plan.target) if plan.strategy == "plan" else None
    if request.dry_run or not plan.to_upgrade:
        document: dict[str, Any] = {"status": "planned" if request.dry_run else "ok", "plan": plan_json(plan)}
        if manifest is not None and request.dry_run:
            document |= _deliver_manifest(request, session, manifest)
        if request.json:
            session.reporter.document(document)
        else:
            session.reporter.info("dry run: nothing was changed" if request.dry_run else "nothing to upgrade")
        return 0
    _confirm(request, plan)
    extravars["k3s_version"], extravars["k3s_channel"] = plan.target, ""  # a channel is pinned for the whole run
    return _execute(request, session, plan, extravars, manifest)


def plan_manifest(request: UpgradeRequest, cluster: Cluster, target: str) -> str:
    """The Plans the apply phase renders on the first server, rendered here from the same template and values."""
    settings = PlanSettings.for_cluster(
        cluster, target, max_unavailable=request.max_unavailable, drain=request.drain,
        drain_timeout_s=request.drain_timeout_s,
    )
    return render_plans(settings)


def _deliver_manifest(request: UpgradeRequest, session: Session, manifest: str) -> dict[str, Any]:
    """--dry-run: the Plans go to --plan-out, else into the JSON document (--json) or onto stdout."""
    if request.plan_out is not None:
        _write_manifest(request.plan_out, manifest)
        session.reporter.info(f"wrote the Plans (namespace {NAMESPACE}) to {request.plan_out}")
        return {"plan_out": str(request.plan_out)}
    if request.json:
        return {"manifest": manifest}
    session.reporter.result_text(manifest)
    return {}


def _write_manifest(path: Path, manifest: str) -> None:
    try:
        path.write_text(manifest, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--plan-out {path}: {exc.strerror or exc}") from None


def _execute(
    request: UpgradeRequest, session: Session, plan: UpgradePlan, extravars: dict[str, Any], manifest: str | None
) -> int:
    report = RunReport(command="upgrade", cluster=session.cluster.name, inventory=str(session.inventory))
    ctx = Context(
        cluster=session.cluster, inventory=session.inventory, runner=session.runner(), state=session.state,
        report=report, reporter=session.reporter, extravars=extravars,
    )
    started = time.monotonic()
    error: ProvisionError | None = None
    backup = plan.servers_change and request.backup
    if backup and session.cluster.datastore == "external":
        # Its state lives in the database: the database's own tools back it up (provision has no way to restore it).
        session.reporter.warn(
            "no backup before the upgrade: the cluster state is in its external datastore; "
            "back that database up with its own tools"
        )
        backup = False
    if manifest is not None and request.plan_out is not None:
        _write_manifest(request.plan_out, manifest)
    try:
        StopAtFirstFailure(list(STRATEGIES[plan.strategy](backup))).run(ctx)
    except PhaseFailedError as exc:
        exc.resume_hint = _resume_hint(exc)
        error = exc
    if plan.strategy == "rolling":
        per_node = {
            host: round(sum(r.hosts[host].duration_s for name, r in ctx.results.items()
                            if name in ("servers", "agents") and host in r.hosts), 1)
            for host in plan.to_upgrade
        }
        report.hosts = {h: {"upgrade_s": s} for h, s in per_node.items()}
    report.status = "failed" if error else "ok"
    report.finished = time.time()
    saved = report.save(session.state)
    if request.json:
        document = report.to_json() | {"plan": plan_json(plan), "report_file": str(saved)}
        if backup:
            document["backup"] = f"{extravars['k3s_backup_dir']}/{extravars['k3s_backup_name']}"
        if manifest is not None:
            document["manifest"] = manifest
        if error is not None:
            document["error"] = {"message": str(error), "details": error.details()}
            error.reported = True
        session.reporter.document(document)
    else:
        if backup and "backup" in {p.name for p in report.phases if p.status == "ok"}:
            session.reporter.info(f"backup: {extravars['k3s_backup_dir']}/{extravars['k3s_backup_name']}")
        session.reporter.info(
            f"upgrade {'stopped' if error else 'finished'} in {time.monotonic() - started:.1f}s; report: {saved}"
        )
        if error is None:
            _after_success(session, plan)
    if error is not None:
        raise error
    return 0


def _after_success(session: Session, plan: UpgradePlan) -> None:
    if plan.strategy == "plan":
        session.reporter.info(
            f"the Plans are applied (namespace {NAMESPACE}): the system-upgrade-controller now upgrades "
            f"{len(plan.to_upgrade)} node(s) to {plan.target}, servers first. `provision status -i "
            f"{session.inventory}` shows each node's version; `kubectl -n {NAMESPACE} get plans,jobs` the "
            f"controller's progress. Once every node runs {plan.target}, set k3s_version: {plan.target} in "
            f"{session.inventory} so `provision up` keeps this version"
        )
        return
    session.reporter.info(f"set k3s_version: {plan.target} in {session.inventory} so `provision up` keeps this version")


def _resume_hint(exc: PhaseFailedError) -> str:
    if exc.phase in ("stage", "backup"):
        return "no node was drained or restarted; fix the problem above and rerun the same command"
    if exc.phase == "plans":
        return (
            "no node was changed and no Plan took effect unless kubectl said so above; fix the problem on the first "
            "server and rerun the same command (applying the same Plans again changes nothing)"
        )
    stopped_at = {h: why for h, why in {**exc.failed, **exc.unreachable}.items() if "is left alone" not in why}
    names = ", ".join(sorted(stopped_at)) or "the node named above"
    return (
        f"the upgrade stopped at {names}; the other nodes keep serving (no further node was taken down). "
        "Fix that node (see the reason above; `journalctl -u k3s` or `-u k3s-agent` on it), then rerun the same "
        "command: nodes already at the target are skipped"
    )
