"""`provision upgrade` for kubeadm clusters, in kubeadm's order, one minor at a time.

Flow: a read-only check (playbooks/kubeadm_upgrade_check.yml: the node list, the control plane's version from
kubeadm-config, the target in the package source for every architecture) -> the plan, shown before anything changes
-> refusal when a rule is broken (the rules are the kubeadm role's filter plugin kubeadm_upgrade_filters.py, which
the playbook also asserts on its own) -> --dry-run stops here -> confirmation (unless --yes) -> one playbook
(playbooks/kubeadm_upgrade.yml: first control plane with `kubeadm upgrade apply`, the other control planes with
`kubeadm upgrade node`, then every kubelet: control planes one at a time, workers in batches) -> verify.
A rerun resumes: nodes Ready at the target and not left cordoned are skipped, and so is `upgrade apply` once
kubeadm-config names the target.

Not built yet (docs/flavors.md): the etcd snapshot before the upgrade, the VIP hand-over make-before-break, and the
CNI upgrade.
"""

from __future__ import annotations

import json
import time
from types import ModuleType
from typing import Any

from provisioner import grammar
from provisioner.errors import PhaseFailedError, ProvisionError, UsageError
from provisioner.flavors.base import UpgradeRequest
from provisioner.flavors.upgrade_view import (
    CORDON_MARK,
    UpgradeRefusedError,
    confirm,
    plan_json,
    show_plan,
)
from provisioner.paths import role_code
from provisioner.phases.base import Context, PhaseManager, PhaseOutcome, PlaybookPhase
from provisioner.plan import NodePlan, Step, UpgradePlan, batches
from provisioner.runner import PlaybookResult, PlaybookRun
from provisioner.session import Session
from provisioner.state import RunReport

TASK_NODES = "Read the node list"
TASK_CLUSTER = "Read the cluster's version"
CHECK_CAPTURE = frozenset({TASK_NODES, TASK_CLUSTER})
HEADLINE = "kubeadm upgrade apply on the first control plane, upgrade node on the others, then kubelets: control " \
    "planes one at a time, workers in batches"


def _rules() -> ModuleType:
    return role_code("kubeadm", "filter_plugins", "kubeadm_upgrade_filters.py")


class _StopAtFirstFailure(PhaseManager):
    @staticmethod
    def _can_continue_without(ctx: Context, outcome: PhaseOutcome) -> bool:
        return False


def _target(request: UpgradeRequest) -> str:
    if request.target_channel:
        raise UsageError("--channel names a K3s release channel; kubeadm clusters take --version vX.Y.Z")
    if request.strategy != "rolling":
        raise UsageError(f"--strategy {request.strategy}: kubeadm clusters are upgraded by provision (rolling) only")
    if request.plan_out is not None:
        raise UsageError("--plan-out writes K3s system-upgrade-controller Plans; kubeadm clusters have none")
    version = request.target_version or ""
    rules = grammar.kubeadm_version()
    if not rules.kubeadm_version_valid(version):
        raise UsageError(f"--version {version!r}: a Kubernetes release is {rules.VERSION_FORM}")
    if rules.kubeadm_minor(version) < rules.OLDEST_MINOR:
        raise UsageError(f"--version {version}: provision installs Kubernetes v1.{rules.OLDEST_MINOR} and later")
    return str(version)


def _extravars(session: Session, request: UpgradeRequest, target: str) -> dict[str, Any]:
    settings = session.cluster.kubeadm
    extravars: dict[str, Any] = {
        "provision_flavor": "kubeadm",
        "kubeadm_version": target,  # overrides the inventory's, never combined with it
        "kubeadm_kubeconfig_dest": str(session.state.kubeconfig),
        "kubeadm_upgrade_max_unavailable": request.max_unavailable,
        "kubeadm_upgrade_drain": request.drain,
        "kubeadm_upgrade_drain_timeout": request.drain_timeout_s,
    }
    if settings.artifact_dir is not None:
        extravars["kubeadm_artifact_dir"] = str(settings.artifact_dir)
    return extravars


def _captured(result: PlaybookResult, task: str) -> dict[str, Any]:
    for tasks in result.captured.values():
        if task in tasks:
            return dict(tasks[task])
    return {}


def _node_list(result: PlaybookResult) -> dict[str, Any]:
    raw = _captured(result, TASK_NODES).get("stdout")
    return dict(json.loads(raw)) if raw else {}


def _cluster_version(result: PlaybookResult) -> str:
    text = str(_captured(result, TASK_CLUSTER).get("stdout") or "")
    for line in text.splitlines():
        if line.startswith("kubernetesVersion:"):
            return str(grammar.kubeadm_version().version_in(line))
    return ""


def make_plan(session: Session, extravars: dict[str, Any], max_unavailable: int) -> UpgradePlan:
    """Run the read-only check and plan from what it saw."""
    session.reporter.phase_started("check", "Read versions and health; check the target packages (read-only)")
    result = session.runner().run(
        PlaybookRun(
            playbook="kubeadm_upgrade_check.yml",
            inventory=session.inventory,
            extravars={**extravars, "kubeadm_upgrade_enforce_checks": False},
            capture=CHECK_CAPTURE,
        )
    )
    return plan_from(session, result, str(extravars["kubeadm_version"]), max_unavailable)


def plan_from(session: Session, result: PlaybookResult, target: str, max_unavailable: int) -> UpgradePlan:
    cluster = session.cluster
    servers = [h.name for h in cluster.servers]
    agents = [h.name for h in cluster.agents]
    node_list = _node_list(result)
    cluster_version = _cluster_version(result)
    problems = [f"{host}: {why}" for host, why in sorted(result.failed_hosts.items())]
    if not node_list and not result.unreachable_hosts:
        problems.append(f"could not read the node list from {cluster.first_server.name}")
    problems += [str(p) for p in _rules().upgrade_refusals(
        node_list, cluster_version, target, servers, agents, cluster.kubeadm.etcd is None,
        sorted(result.unreachable_hosts))]
    if max_unavailable < 1:
        problems.insert(0, f"--max-unavailable must be at least 1, not {max_unavailable}")
    registered = {n["metadata"]["name"]: n for n in node_list.get("items", [])}

    def current(name: str) -> str:
        return str(registered.get(name, {}).get("status", {}).get("nodeInfo", {}).get("kubeletVersion") or "unknown")

    def marked(name: str) -> bool:
        return CORDON_MARK in (registered.get(name, {}).get("metadata", {}).get("labels") or {})

    def pending(name: str) -> bool:
        first = name == cluster.first_server.name and cluster_version != target
        return current(name) != target or marked(name) or first

    steps = [Step("servers", (name,)) for name in servers if pending(name)]
    steps += [Step("agents", batch) for batch in batches([a for a in agents if pending(a)], max_unavailable)]
    position = {name: index for index, step in enumerate(steps, start=1) for name in step.nodes}
    nodes = tuple(
        NodePlan(
            name=name,
            role="server" if name in servers else "agent",
            current=current(name),
            target=target,
            action=("finish" if current(name) == target else "upgrade") if name in position else "skip",
            drain=name in position,
            order=position.get(name, 0),
        )
        for name in sorted([*servers, *agents], key=lambda n: (position.get(n, 10**6), n not in servers))
    )
    notes = []
    if cluster_version:
        notes.append(f"the control plane runs {cluster_version} (kubeadm-config)")
    if not position:
        notes.append(f"every node already runs {target}: nothing to do")
    else:
        notes.append("no etcd snapshot is taken first (not built for kubeadm yet): take one with etcdctl if you need "
                     "a way back")
        if len(servers) == 1:
            notes.append("one control plane: the API is unavailable while kubeadm restarts its static pods")
    return UpgradePlan(
        target=target,
        datastore="external etcd" if cluster.kubeadm.etcd is not None else "stacked etcd",
        nodes=nodes,
        steps=tuple(steps),
        refusals=tuple(problems),
        notes=tuple(notes),
    )


def run_upgrade(session: Session, request: UpgradeRequest) -> int:
    target = _target(request)
    extravars = _extravars(session, request, target)
    plan = make_plan(session, extravars, request.max_unavailable)
    if not request.json:
        show_plan(session, plan, HEADLINE)
    if plan.refused:
        raise UpgradeRefusedError(list(plan.refusals))
    if request.dry_run or not plan.to_upgrade:
        if request.json:
            session.reporter.document({"status": "planned" if request.dry_run else "ok", "plan": plan_json(plan)})
        else:
            session.reporter.info("dry run: nothing was changed" if request.dry_run else "nothing to upgrade")
        return 0
    confirm(request, f"Upgrade {len(plan.to_upgrade)} node(s) to {plan.target}?")
    return _execute(request, session, plan, extravars)


def _execute(request: UpgradeRequest, session: Session, plan: UpgradePlan, extravars: dict[str, Any]) -> int:
    report = RunReport(command="upgrade", cluster=session.cluster.name, inventory=str(session.inventory))
    ctx = Context(
        cluster=session.cluster, inventory=session.inventory, runner=session.runner(), state=session.state,
        report=report, reporter=session.reporter, extravars=extravars,
    )
    started = time.monotonic()
    error: ProvisionError | None = None
    phases = [
        PlaybookPhase("upgrade", "Upgrade in kubeadm's order (apply, node, kubelets)", "kubeadm_upgrade.yml"),
        PlaybookPhase("verify", "Verify every node, the CNI and CoreDNS are Ready at the target",
                      "kubeadm_verify.yml", changes_hosts=False),
    ]
    try:
        _StopAtFirstFailure(list(phases)).run(ctx)
    except PhaseFailedError as exc:
        stopped = ", ".join(sorted({**exc.failed, **exc.unreachable})) or "the node named above"
        exc.resume_hint = (
            f"the upgrade stopped at {stopped}; nodes after it were not touched. Fix the cause (see above; "
            "`journalctl -u kubelet` on the node), then rerun the same command: what already runs the target is skipped"
        )
        error = exc
    report.status = "failed" if error else "ok"
    report.finished = time.time()
    saved = report.save(session.state)
    if request.json:
        document = report.to_json() | {"plan": plan_json(plan), "report_file": str(saved)}
        if error is not None:
            document["error"] = {"message": str(error), "details": error.details()}
            error.reported = True
        session.reporter.document(document)
    else:
        session.reporter.info(
            f"upgrade {'stopped' if error else 'finished'} in {time.monotonic() - started:.1f}s; report: {saved}"
        )
        if error is None:
            session.reporter.info(
                f"set kubeadm_version: {plan.target} in {session.inventory} so `provision up` keeps this version"
            )
    if error is not None:
        raise error
    return 0
