"""Topology decisions for upgrades: versions, the order and batches, and the safety rules applied to them.

Pure functions only: nothing here touches the network, so every rule can be tested from small data files
(tests/plan/cases/) and the CLI can show the exact plan before anything changes. The safety rules themselves
(downgrade, skipped minor, health, etcd quorum) are written once, in the k3s_upgrade role's filter plugin, which the
role uses to refuse on its own in plain ansible-playbook runs; this module loads that file and applies the same rules
to what the CLI read, so the CLI and the playbooks refuse alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import total_ordering
from types import ModuleType
from typing import Literal

from provisioner import grammar
from provisioner.paths import role_code

Role = Literal["server", "agent"]
# rolling: provision drains, swaps and restarts each node over SSH; plan: system-upgrade-controller Plans do it.
Strategy = Literal["rolling", "plan"]
RULES_FILE = ("k3s_upgrade", "filter_plugins", "k3s_upgrade_filters.py")  # a file of the shipped roles


def _rules() -> ModuleType:
    """The role's rules file, loaded on first use (commands that never plan an upgrade never read it)."""
    return role_code(*RULES_FILE)


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
        match = grammar.k3s_version().VERSION.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a K3s version of the form {grammar.k3s_version_form()}")
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
    """Release lines to pass through, one minor at a time, ending with the target's line (v1.27 -> v1.29 goes v1.28
    then v1.29); across a major version no chain is known and the target's line alone is returned."""
    return [str(line) for line in _rules().minor_lines(list(current.key), list(target.key))]


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
    return int(_rules().quorum(members))


def fault_tolerance(members: int) -> int:
    """Members that may be down while the rest still form a quorum."""
    return max(members - quorum(members), 0)


def can_take_one_down(members: int, healthy: int) -> bool:
    """True when, with one more healthy member stopped, the healthy ones still form a quorum."""
    return bool(_rules().can_take_one_down(members, healthy))


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


def refusals(nodes: Sequence[NodeState], target: K3sVersion, datastore: str) -> list[str]:
    """Every safety rule the cluster breaks for this target (the role's rules); health only matters while some node
    still has to move."""
    found = [str(r) for r in _rules().version_refusals(
        {n.name: str(n.version) for n in nodes if n.version is not None}, str(target))]
    if any(needs_upgrade(n, target) for n in nodes):
        health = [{"name": n.name, "role": n.role, "registered": n.version is not None, "ready": n.ready,
                   "reachable": n.reachable} for n in nodes]
        found += [str(r) for r in _rules().health_refusals(health, datastore == "embedded-etcd")]
    return found


def notes_for(nodes: Sequence[NodeState], datastore: str) -> list[str]:
    """What the user should know about the topology while it upgrades."""
    servers = [n for n in nodes if n.role == "server"]
    healthy = sum(1 for n in servers if n.reachable and n.ready)
    if datastore == "embedded-etcd" and len(servers) % 2 == 0 and can_take_one_down(len(servers), healthy):
        return [f"{len(servers)} etcd members tolerate no more failures than {len(servers) - 1}"]
    if datastore != "embedded-etcd" and len(servers) == 1:
        return ["one server: the API is unavailable while it restarts (agents keep running workloads)"]
    return []


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
    refused = [f"--max-unavailable must be at least 1, not {max_unavailable}"] if max_unavailable < 1 else []
    refused += refusals(nodes, target, datastore)
    pending = [n for n in nodes if needs_upgrade(n, target)]
    notes = notes_for(nodes, datastore) if pending else []
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
        notes.append(f"every node already runs {target}: nothing to do")
    elif strategy == "plan":
        notes.append(
            "the system-upgrade-controller upgrades the nodes after the Plans are applied, in its own order within "
            f"each step (servers one at a time, then agents {max(max_unavailable, 1)} at a time); "
            "provision does not wait for it"
        )
    return UpgradePlan(
        target=str(target),
        datastore=datastore,
        nodes=plans,
        steps=tuple(steps),
        refusals=tuple(refused),
        notes=tuple(notes),
        strategy=strategy,
    )
