"""Phases of `provision upgrade` and the reading of the check phase's results into plan inputs.

The check playbook is read-only; what it saw (installed binary versions, the node list, each server's /readyz,
the resolved target, for the plan strategy the controller's CRD) comes back through the runner's captured task
results, never from stdout. The flow after the check is a short list of playbook phases, one list per strategy, that
stops at the first failure: a rolling upgrade must never go on past a node that did not come back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from provisioner.flavors.k3s.suc import PLAN_CRD
from provisioner.flavors.upgrade_view import CORDON_MARK
from provisioner.inventory import Cluster
from provisioner.phases.base import Context, PhaseManager, PhaseOutcome, PlaybookPhase
from provisioner.plan import K3sVersion, NodeState
from provisioner.runner import PlaybookResult

TASK_INSTALLED = "Read the installed K3s version"
TASK_TARGET = "Report the target version"
TASK_NODES = "Read the node list"
TASK_HEALTH = "Read the API health"
TASK_PLAN_CRD = "Read the system-upgrade-controller's Plan type"  # run by the check for the plan strategy only
CHECK_CAPTURE = frozenset({TASK_INSTALLED, TASK_TARGET, TASK_NODES, TASK_HEALTH, TASK_PLAN_CRD})


class StopAtFirstFailure(PhaseManager):
    """An upgrade never continues without a host: the next phase would take more nodes down."""

    @staticmethod
    def _can_continue_without(ctx: Context, outcome: PhaseOutcome) -> bool:
        return False


def upgrade_phases(backup: bool) -> list[PlaybookPhase]:
    """Stage, back up (only when a server will change), servers one by one, agents in batches, verify."""
    phases = [PlaybookPhase("stage", "Stage the target binary on every host (checksum checked)", "upgrade_stage.yml")]
    if backup:
        phases.append(PlaybookPhase("backup", "Back up the cluster state and token to this machine", "backup.yml"))
    phases += [
        PlaybookPhase("servers", "Upgrade the servers one at a time", "upgrade_servers.yml"),
        PlaybookPhase("agents", "Upgrade the agents in batches", "upgrade_agents.yml"),
        PlaybookPhase("verify", "Verify every node is Ready at the target", "verify.yml", changes_hosts=False),
    ]
    return phases


def plan_phases(backup: bool) -> list[PlaybookPhase]:
    """Back up (only when a server will change), then apply the system-upgrade-controller Plans on the first server.

    Nothing waits for the nodes: the controller upgrades them after this, and `provision status` shows how far it is.
    """
    phases = []
    if backup:
        phases.append(PlaybookPhase("backup", "Back up the cluster state and token to this machine", "backup.yml"))
    phases.append(
        PlaybookPhase(
            "plans", "Apply the system-upgrade-controller Plans on the first server", "upgrade_plan_apply.yml"
        )
    )
    return phases


# How the nodes get the new release, by --strategy name: the phases after the check, given whether to back up.
STRATEGIES: dict[str, Callable[[bool], list[PlaybookPhase]]] = {"rolling": upgrade_phases, "plan": plan_phases}


@dataclass
class CheckFindings:
    """What the read-only check saw, in plan terms, plus problems only the check could find (artifacts)."""

    target: str | None
    nodes: list[NodeState]
    problems: list[str] = field(default_factory=list)


def _version_or_none(text: str) -> K3sVersion | None:
    for word in text.split():
        try:
            return K3sVersion.parse(word)
        except ValueError:
            continue
    return None


def _node_list(result: PlaybookResult) -> dict[str, Any]:
    for tasks in result.captured.values():
        raw = tasks.get(TASK_NODES, {}).get("stdout")
        if raw:
            items = json.loads(raw).get("items", [])
            return {n["metadata"]["name"]: n for n in items}
    return {}


def _ready(node: dict[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def read_check(cluster: Cluster, result: PlaybookResult) -> CheckFindings:
    """Turn the check run into NodeStates (reachable, version, Ready, binary) and artifact problems."""
    nodes = _node_list(result)
    target = None
    for tasks in result.captured.values():
        message = tasks.get(TASK_TARGET, {}).get("msg")
        if message:
            target = str(message).strip()
    problems = [f"{host}: {why}" for host, why in sorted(result.failed_hosts.items())]
    if not nodes and not result.unreachable_hosts:
        problems.append(f"could not read the node list from {cluster.first_server.name}")
    problems += _controller_problems(result)
    states = []
    for host in cluster.hosts:
        node = nodes.get(host.name)
        captured = result.captured.get(host.name, {})
        version = None
        if node is not None:
            version = _version_or_none(node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", ""))
        ready = node is not None and _ready(node)
        if host.role == "server" and ready:
            health = captured.get(TASK_HEALTH)
            ready = health is not None and health.get("rc") == 0
        states.append(
            NodeState(
                name=host.name,
                role=host.role,
                version=version,
                ready=ready,
                reachable=host.name not in result.unreachable_hosts,
                binary_version=_version_or_none(captured.get(TASK_INSTALLED, {}).get("stdout", "")),
                unfinished=node is not None and CORDON_MARK in node.get("metadata", {}).get("labels", {}),
            )
        )
    return CheckFindings(target=target, nodes=states, problems=problems)


def _controller_problems(result: PlaybookResult) -> list[str]:
    """For the plan strategy: the system-upgrade-controller's Plan CRD must exist (provision never installs it)."""
    for tasks in result.captured.values():
        crd = tasks.get(TASK_PLAN_CRD)
        if crd is None or crd.get("rc") == 0:
            continue
        said = " ".join(str(crd.get("stderr") or "").split()) or f"rc {crd.get('rc')}"
        return [
            f"the system-upgrade-controller is not installed: the cluster has no CustomResourceDefinition "
            f"{PLAN_CRD} (kubectl: {said}). Install the controller first (crd.yaml and "
            "system-upgrade-controller.yaml of a github.com/rancher/system-upgrade-controller release); "
            "provision does not install it"
        ]
    return []
