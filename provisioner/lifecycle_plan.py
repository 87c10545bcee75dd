"""Day-2 decisions as pure functions: which hosts `up` must touch, and whether a node may be removed.

Nothing here touches the network or the disk: callers pass the node list a server reported and what the inventory
(and the state directory) say, and get a decision with the reasons, which the CLI prints and records.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from provisioner.inventory import Cluster, Host
from provisioner.inventory.model import KubeadmSettings
from provisioner.plan import quorum

Node = Mapping[str, Any]
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
ETCD_LABEL = "node-role.kubernetes.io/etcd"


# ----------------------------------------------------------------------------------------------- node list facts
def node_ready(node: Node) -> bool:
    conditions = node.get("status", {}).get("conditions", []) or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def node_version(node: Node) -> str:
    return str(node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", ""))


def nodes_by_name(items: Iterable[Node]) -> dict[str, Node]:
    return {str(n.get("metadata", {}).get("name", "")): n for n in items}


def missing_node_meta(host: Host, node: Node) -> list[str]:
    """The inventory's labels and taints ('key=value', 'key=value:Effect') the registered node does not carry."""
    labels = node.get("metadata", {}).get("labels") or {}
    missing = [f"{k}={v}" for k, v in host.node_labels.items() if labels.get(k) != str(v)]
    carried = set()
    for taint in node.get("spec", {}).get("taints") or []:
        key, value, effect = taint.get("key"), taint.get("value") or "", taint.get("effect")
        carried.add(f"{key}={value}:{effect}" if value else f"{key}:{effect}")
    missing += [t for t in host.node_taints if t not in carried]
    return missing


# ---------------------------------------------------------------------------------------------- adding nodes (up)
def host_fingerprint(cluster: Cluster, host: Host) -> str:
    """A digest of everything the inventory model says about how `host` should be set up.

    Stored after a successful `up`; a host whose digest changed is touched again even though its node is Ready at
    the right version (a label, taint or config.yaml key was edited). Secrets are not in the model, so not here.
    """
    if isinstance(cluster.settings, KubeadmSettings):
        return _kubeadm_fingerprint(cluster, host)
    k3s = cluster.k3s
    material: dict[str, object] = {
        "role": host.role,
        "config": host.k3s_config,
        "labels": host.node_labels,
        "taints": list(host.node_taints),
        "arch": host.hardware.arch,
        "version": k3s.version,
        "channel": k3s.channel,
        "release_url": k3s.release_url,
        "artifact_dir": str(k3s.artifact_dir or ""),
        "registries": k3s.registries,
        "server_config": k3s.server_config if host.role == "server" else None,
        "datastore": k3s.datastore_endpoint if host.role == "server" else None,
        "api_endpoint": cluster.api_endpoint,
    }
    if host.role == "server" and len(cluster.servers) > 1 and not _external_datastore(k3s.datastore_endpoint):
        # Embedded etcd: a server that ran alone on SQLite gets cluster-init when others are added (K3s moves its
        # data into etcd), so growing from one server to three is a change for the first server too.
        material["embedded_etcd"] = True
    blob = json.dumps(material, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def _external_datastore(endpoint: str | None) -> bool:
    return bool(endpoint) and not str(endpoint).startswith("sqlite://")


def _kubeadm_fingerprint(cluster: Cluster, host: Host) -> str:
    material = {
        "flavor": "kubeadm",
        "role": host.role,
        "labels": host.node_labels,
        "taints": list(host.node_taints),
        "arch": host.hardware.arch,
        "settings": dataclasses.asdict(cluster.kubeadm),
        "api_endpoint": cluster.api_endpoint,
    }
    blob = json.dumps(material, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class ConvergePlan:
    """Hosts `up` must run the install phases on, and why; `settled` hosts are left alone."""

    touch: tuple[str, ...]
    settled: tuple[str, ...]
    reasons: dict[str, str] = field(default_factory=dict)
    everything: bool = False  # True: no limit at all (fresh cluster, --all, or the first server needs work)


def plan_converge(
    cluster: Cluster,
    nodes: Mapping[str, Node] | None,
    fingerprints: Mapping[str, str],
    touch_all: bool = False,
) -> ConvergePlan:
    """Decide which hosts need the prepare/install phases.

    `nodes` is the node list read once from the first server (None when it has no cluster yet); `fingerprints`
    are the per-host digests recorded by the last successful `up` (a run that touches a host forgets its digest
    first, so a host a failed or interrupted run left half-changed is touched again). A host is settled when its
    node is registered, Ready, at the target version (or the first server's version when a channel is followed),
    in the right role, carries the inventory's labels and taints, and its inventory digest is unchanged. When the
    first server itself is not settled, everything runs: the join token and the cluster's shape come from it.
    """
    names = tuple(h.name for h in cluster.hosts)
    if touch_all:
        return ConvergePlan(names, (), dict.fromkeys(names, "--all"), everything=True)
    if nodes is None:
        return ConvergePlan(names, (), dict.fromkeys(names, "no cluster on the first server yet"), everything=True)
    first = cluster.first_server.name
    target = cluster.target_version or node_version(nodes.get(first, {})) or None
    reasons: dict[str, str] = {}
    for host in cluster.hosts:
        why = _why_touch(cluster, host, nodes.get(host.name), target, fingerprints.get(host.name))
        if why:
            reasons[host.name] = why
    touch = tuple(n for n in names if n in reasons)
    settled = tuple(n for n in names if n not in reasons)
    return ConvergePlan(touch, settled, reasons, everything=first in reasons)


def _why_touch(cluster: Cluster, host: Host, node: Node | None, target: str | None, recorded: str | None) -> str:
    """Why `host` needs the install phases again; empty when it is a member as described."""
    if node is None:
        return "not a member of the cluster"
    is_server = CONTROL_PLANE_LABEL in (node.get("metadata", {}).get("labels") or {})
    missing = missing_node_meta(host, node)
    checks = (
        (not node_ready(node), "node is not Ready"),
        (bool(target) and node_version(node) != target, f"runs {node_version(node)}, target {target}"),
        (is_server != (host.role == "server"),
         f"registered as {'server' if is_server else 'agent'}, inventory says {host.role}"),
        (bool(missing), f"node lacks {', '.join(missing)}"),
        (recorded != host_fingerprint(cluster, host),
         "inventory settings changed since the last run" if recorded else "no record of a previous run"),
    )
    return next((why for failing, why in checks if failing), "")


class LimitRefusedError(ValueError):
    """`up --limit` would leave out a host the others need first; the message says which and what to do."""


def limit_plan(plan: ConvergePlan, requested: Sequence[str], first_server: str) -> tuple[ConvergePlan, tuple[str, ...]]:
    """`up --limit`: of the hosts the plan touches, only the requested ones; the others are left out for a later
    run (returned second). The first server cannot be left out while it is not settled: the other hosts join it."""
    if plan.everything and first_server not in requested and plan.reasons.get(first_server) != "--all":
        why = plan.reasons.get(first_server, "it is not a settled member")
        raise LimitRefusedError(
            f"--limit leaves out {first_server}, the first server ({why}); the other hosts join it, so it goes "
            f"first: add {first_server} to --limit, or run without --limit"
        )
    touch = tuple(h for h in plan.touch if h in requested)
    left_out = tuple(h for h in plan.touch if h not in requested)
    settled = tuple(h for h in plan.settled)
    return ConvergePlan(touch, settled, {h: plan.reasons[h] for h in touch}, everything=False), left_out


def limit_pattern(hosts: Sequence[str]) -> str:
    """An Ansible --limit naming exactly these hosts (comma-separated names; never empty)."""
    if not hosts:
        raise ValueError("an empty host list cannot be a limit (it would mean all hosts)")
    return ",".join(hosts)


# ---------------------------------------------------------------------------------------------- removing nodes
@dataclass(frozen=True)
class RemovalPlan:
    host: str
    role: str  # server | agent
    control_server: str  # the server that drains and deletes the node
    etcd_member: bool  # removing it shrinks the embedded etcd cluster
    in_cluster: bool  # registered in the node list
    reset_host: bool  # False with --force: the host is only removed from the cluster
    notes: tuple[str, ...] = ()


class RemovalRefusedError(ValueError):
    """Removing this node would break the cluster; the message says why and what to do instead."""


def check_removable(cluster: Cluster, host_name: str) -> Host:
    """The refusals the inventory alone decides (no cluster state needed): an unknown host, the last server."""
    declared = {h.name: h for h in cluster.hosts}
    if host_name not in declared:
        raise RemovalRefusedError(f"{host_name} is not in the inventory; name a host listed under server or agent")
    host = declared[host_name]
    if host.role == "server" and not [s for s in cluster.servers if s.name != host_name]:
        raise RemovalRefusedError(
            f"{host_name} is the last server: removing it would destroy the cluster. "
            "Use `provision reset` to tear the whole cluster down instead."
        )
    return host


def check_partial_reset(
    cluster: Cluster, targets: Sequence[str], nodes: Mapping[str, Node], *, embedded_etcd: bool
) -> None:
    """`reset --limit` cleans hosts but leaves their nodes in the cluster: a reset server's etcd member stays listed
    and stops answering. Refuse (RemovalRefusedError) when no server would be left, or when the etcd members still
    running after the reset would be fewer than a quorum of the listed members."""
    servers = [h.name for h in cluster.servers]
    reset_servers = [s for s in servers if s in targets]
    if not reset_servers:
        return
    remaining = [s for s in servers if s not in targets]
    if not remaining:
        raise RemovalRefusedError(
            f"--limit names every server ({', '.join(reset_servers)}): the agents would be left without a cluster. "
            "Reset every host (no --limit) to tear the cluster down."
        )
    if not embedded_etcd:
        return
    members = [s for s in servers if s in nodes]
    running = [s for s in members if s not in targets and node_ready(nodes[s])]
    if len(running) < quorum(len(members)):
        raise RemovalRefusedError(
            f"resetting {', '.join(reset_servers)} stops {'its' if len(reset_servers) == 1 else 'their'} etcd "
            f"member{'s' if len(reset_servers) > 1 else ''} but keeps {'it' if len(reset_servers) == 1 else 'them'} "
            f"listed: {len(running)} of {len(members)} members would run, below the quorum of "
            f"{quorum(len(members))}, and the API would stop. Take servers out with `provision remove-node` "
            "one at a time, or reset one server at a time and let `up` rejoin it."
        )


def plan_removal(
    cluster: Cluster,
    host_name: str,
    nodes: Mapping[str, Node],
    *,
    reachable: bool,
    force: bool,
    embedded_etcd: bool,
) -> RemovalPlan:
    """Check a removal is safe and say how to do it; raise RemovalRefusedError otherwise.

    Refused: a host not in the inventory; the last server; a server whose removal leaves the embedded etcd
    cluster without a majority of healthy members (counted from Ready server nodes), or which cannot be done
    because etcd has no quorum now (a member change needs one); an unreachable host without --force.
    """
    host = check_removable(cluster, host_name)
    servers = [h.name for h in cluster.servers]
    others = [s for s in servers if s != host_name]
    notes: list[str] = []
    if not reachable and not force:
        raise RemovalRefusedError(
            f"{host_name} is unreachable, so it cannot be cleaned up. Rerun with --force to remove it from the "
            "cluster only (its files stay on the machine; reset it later or reinstall it)."
        )
    if host.role == "server" and not [s for s in others if s in nodes]:
        raise RemovalRefusedError(
            f"{host_name} is the last server of the cluster ({', '.join(others)} in the inventory "
            f"{'is' if len(others) == 1 else 'are'} not a node of it): removing it would destroy the cluster. "
            "Use `provision reset` to tear the whole cluster down instead."
        )
    ready_servers = [s for s in others if s in nodes and node_ready(nodes[s])]
    if not ready_servers:
        raise RemovalRefusedError(
            f"no other server is Ready ({', '.join(others)}); the cluster cannot remove {host_name} now"
        )
    control = ready_servers[0]
    node = nodes.get(host_name)
    is_member = embedded_etcd and host.role == "server"
    if is_member:
        members = [s for s in servers if s in nodes]
        if host_name not in members:
            members.append(host_name)
        healthy = [s for s in members if node_ready(nodes.get(s, {}))]
        if len(healthy) < quorum(len(members)):
            raise RemovalRefusedError(
                f"etcd has no quorum now ({len(healthy)} of {len(members)} servers Ready, {quorum(len(members))} "
                "needed), and removing a member needs one. Bring servers back first, or restore from a snapshot."
            )
        after = len(members) - 1
        healthy_after = len([s for s in healthy if s != host_name])
        if healthy_after < quorum(after):
            raise RemovalRefusedError(
                f"removing {host_name} would leave {healthy_after} Ready of {after} etcd members, below the "
                f"quorum of {quorum(after)}: the API would stop. Bring the NotReady servers back first, or remove "
                "a NotReady server instead."
            )
        if after % 2 == 0:
            notes.append(
                f"{after} etcd members remain: an even count tolerates no more failures than {after - 1}; "
                "add or remove one more server"
            )
    if node is None:
        notes.append(f"{host_name} is not registered in the cluster; only its host is cleaned up")
    return RemovalPlan(
        host=host_name,
        role=host.role,
        control_server=control,
        etcd_member=is_member,
        in_cluster=node is not None,
        reset_host=reachable,
        notes=tuple(notes),
    )
