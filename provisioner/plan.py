"""Topology decisions for upgrades: versions, the chain of minors, the order and batches, quorum arithmetic.

Pure functions only: nothing here touches the network or the disk, so every rule can be tested from small data files
(tests/plan/cases/) and the CLI can show the exact plan before anything changes. The playbooks enforce the same
rules again on their own (plain ansible-playbook users get no CLI), so these functions decide what the user sees and
whether the CLI starts at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import total_ordering
from typing import Literal

Role = Literal["server", "agent"]
# rolling: provision drains, swaps and restarts each node over SSH; plan: system-upgrade-controller Plans do it.
Strategy = Literal["rolling", "plan"]
_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)\+k3s(\d+)$")


@total_ordering
@dataclass(frozen=True)
class K3sVersion:
    """A K3s release, vMAJOR.MINOR.PATCH+k3sN. Ordered by all four numbers (k3sN is the K3s build of a patch)."""

    major: int
    minor: int
    patch: int
    build: int

    @classmethod
    def parse(cls, text: str) -> K3sVersion:
        """Parse `v1.28.4+k3s2` (also the kubeletVersion a node reports); ValueError with the expected form."""
        match = _VERSION.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a K3s version of the form vMAJOR.MINOR.PATCH+k3sN (e.g. v1.28.4+k3s2)")
        major, minor, patch, build = (int(g) for g in match.groups())
        return cls(major, minor, patch, build)

    @property
    def key(self) -> tuple[int, int, int, int]:
        return (self.major, self.minor, self.patch, self.build)

    @property
    def minor_line(self) -> str:
        """The release line, e.g. `v1.28` (also the name of K3s's channel for that minor)."""
        return f"v{self.major}.{self.minor}"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, K3sVersion):
            return NotImplemented
        return self.key < other.key

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}+k3s{self.build}"


def minor_chain(current: K3sVersion, target: K3sVersion) -> list[str]:
    """Release lines to pass through, one minor at a time, ending with the target's line.

    Kubernetes supports upgrading one minor at a time only, so v1.27 -> v1.29 must go v1.28 then v1.29.
    Across a major version (never happened for Kubernetes 1.x) there is no known chain: the target alone is returned.
    """
    if current.major != target.major:
        return [target.minor_line]
    return [f"v{current.major}.{m}" for m in range(current.minor + 1, target.minor + 1)]


@dataclass(frozen=True)
class NodeState:
    """One inventory host as the cluster and the host report it before the upgrade."""

    name: str
    role: Role
    version: K3sVersion | None  # version the node runs (kubeletVersion); None when not registered/unknown
    ready: bool
    reachable: bool = True
    binary_version: K3sVersion | None = None  # what /usr/local/bin/k3s says; None when unknown
    unfinished: bool = False  # carries the mark of a run that cordoned it and stopped before uncordoning


@dataclass(frozen=True)
class Step:
    """One batch of the rolling upgrade: its nodes go down together."""

    phase: Literal["servers", "agents"]
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class NodePlan:
    name: str
    role: Role
    current: str
    target: str
    action: Literal["upgrade", "finish", "skip"]  # finish = at the target, only the uncordon is left
    drain: bool
    order: int  # 1-based position of its batch; 0 when skipped


@dataclass(frozen=True)
class UpgradePlan:
    """What an upgrade would do, and why it must not start (refusals), before anything changes."""

    target: str
    datastore: str
    nodes: tuple[NodePlan, ...]
    steps: tuple[Step, ...]
    refusals: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    strategy: Strategy = "rolling"

    @property
    def refused(self) -> bool:
        return bool(self.refusals)

    @property
    def to_upgrade(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes if n.action != "skip")

    @property
    def servers_change(self) -> bool:
        return any(n.action == "upgrade" and n.role == "server" for n in self.nodes)


def quorum(members: int) -> int:
    """Votes etcd needs to work: a strict majority of the members."""
    return members // 2 + 1


def fault_tolerance(members: int) -> int:
    """Members that may be down while the rest still form a quorum."""
    return max(members - quorum(members), 0)


def can_take_one_down(members: int, healthy: int) -> bool:
    """True when, with one more healthy member stopped, the healthy ones still form a quorum."""
    return healthy - 1 >= quorum(members)


def batches(names: Sequence[str], size: int) -> list[tuple[str, ...]]:
    """Split `names` into consecutive batches of at most `size` (size < 1 is treated as 1)."""
    size = max(size, 1)
    return [tuple(names[i : i + size]) for i in range(0, len(names), size)]


def needs_upgrade(node: NodeState, target: K3sVersion) -> bool:
    """A node is done when it runs the target (API view), its binary is the target (when known) and no earlier run
    left it cordoned."""
    if node.version != target or node.unfinished:
        return True
    return node.binary_version is not None and node.binary_version != target


@dataclass
class _Checks:
    refusals: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _version_refusals(nodes: Iterable[NodeState], target: K3sVersion, checks: _Checks) -> None:
    known = [(n.name, n.version) for n in nodes if n.version is not None]
    for name, version in known:
        if version > target:
            checks.refusals.append(
                f"{name} runs {version}, newer than {target}: downgrades are not supported "
                "(restore a backup taken on the older version instead)"
            )
    older = [version for _, version in known if version < target]
    if not older:
        return
    oldest = min(older)
    chain = minor_chain(oldest, target)
    if oldest.major != target.major or len(chain) > 1:
        steps = ", then ".join([f"the latest {line} (--channel {line})" for line in chain[:-1]] + [str(target)])
        checks.refusals.append(
            f"{target} would skip a minor version from {oldest} (Kubernetes upgrades one minor at a time): "
            f"upgrade to {steps}"
        )


def _health_refusals(nodes: Sequence[NodeState], datastore: str, checks: _Checks) -> None:
    for node in nodes:
        if not node.reachable:
            checks.refusals.append(f"{node.name} is unreachable: bring it back (or remove it from the inventory) first")
        elif node.version is None:
            checks.refusals.append(f"{node.name} is not registered in the cluster: run `provision up` first")
        elif not node.ready:
            checks.refusals.append(f"{node.name} is not Ready: fix it before upgrading (a rolling upgrade needs a "
                                   "healthy cluster to stay serving)")
    servers = [n for n in nodes if n.role == "server"]
    if datastore == "embedded-etcd":
        healthy = sum(1 for n in servers if n.reachable and n.ready)
        if not can_take_one_down(len(servers), healthy):
            checks.refusals.append(
                f"etcd has {len(servers)} members, {healthy} healthy: taking one down for its upgrade would lose "
                f"quorum ({quorum(len(servers))} needed); restore the failed servers first"
            )
        elif len(servers) % 2 == 0:
            checks.notes.append(f"{len(servers)} etcd members tolerate no more failures than {len(servers) - 1}")
    elif len(servers) == 1:
        checks.notes.append("one server: the API is unavailable while it restarts (agents keep running workloads)")


def plan_upgrade(
    nodes: Sequence[NodeState],
    target: K3sVersion,
    datastore: str,
    max_unavailable: int = 1,
    strategy: Strategy = "rolling",
) -> UpgradePlan:
    """The plan: servers one at a time in inventory order, then agents in batches of `max_unavailable`.

    Nodes already at the target are skipped (a rerun resumes where it stopped). Refusals list every safety rule the
    cluster breaks right now; the CLI refuses to start when there is any. They are the same for both strategies:
    system-upgrade-controller Plans take nodes down like the rolling upgrade does, and the controller itself does not
    guard against a skipped minor. With Plans the controller picks the order within each role, and servers are only
    cordoned (the server Plan does not drain).
    """
    checks = _Checks()
    if max_unavailable < 1:
        checks.refusals.append(f"--max-unavailable must be at least 1, not {max_unavailable}")
    _version_refusals(nodes, target, checks)
    pending = [n for n in nodes if needs_upgrade(n, target)]
    if pending:
        _health_refusals(nodes, datastore, checks)
    servers = [n.name for n in pending if n.role == "server"]
    agents = [n.name for n in pending if n.role == "agent"]
    steps = [Step("servers", (name,)) for name in servers]
    steps += [Step("agents", batch) for batch in batches(agents, max_unavailable)]
    position = {name: index for index, step in enumerate(steps, start=1) for name in step.nodes}
    plans = tuple(
        NodePlan(
            name=n.name,
            role=n.role,
            current=str(n.version) if n.version else "unknown",
            target=str(target),
            action=("finish" if n.version == target else "upgrade") if n.name in position else "skip",
            drain=n.name in position and not (strategy == "plan" and n.role == "server"),
            order=position.get(n.name, 0),
        )
        for n in sorted(nodes, key=lambda n: (position.get(n.name, 10**6), n.role != "server"))
    )
    if not pending:
        checks.notes.append(f"every node already runs {target}: nothing to do")
    elif strategy == "plan":
        checks.notes.append(
            "the system-upgrade-controller upgrades the nodes after the Plans are applied, in its own order within "
            f"each step (servers one at a time, then agents {max(max_unavailable, 1)} at a time); "
            "provision does not wait for it"
        )
    return UpgradePlan(
        target=str(target),
        datastore=datastore,
        nodes=plans,
        steps=tuple(steps),
        refusals=tuple(checks.refusals),
        notes=tuple(checks.notes),
        strategy=strategy,
    )
