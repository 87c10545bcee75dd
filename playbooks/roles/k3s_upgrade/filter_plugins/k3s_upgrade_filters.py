"""The safety rules of a K3s upgrade: the one place they are written.

The role refuses with them on its own when run without the CLI (ansible-playbook, AWX); the provision CLI loads this
same file (provisioner/plan.py) to plan and refuse before it starts, so both say the same thing for the same cluster.
Kept dependency-free on purpose: an Ansible controller may not have the provision package, and the CLI must not need
Ansible to plan. Versions are [major, minor, patch, build] lists, e.g. [1, 28, 4, 2] for v1.28.4+k3s2.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any


def _grammar() -> ModuleType:
    """The version grammar, written once in the k3s role (roles/k3s/filter_plugins/k3s_version.py)."""
    path = Path(__file__).resolve().parents[2] / "k3s" / "filter_plugins" / "k3s_version.py"
    spec = importlib.util.spec_from_file_location("provision_k3s_version_grammar", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the K3s version grammar from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_GRAMMAR = _grammar()


def version_key(text: str) -> list[int]:
    """[major, minor, patch, build] of the first K3s version in `text` (e.g. `k3s --version` output); [] if none."""
    return list(_GRAMMAR.version_key(text))


def quorum(members: int) -> int:
    """Votes etcd needs to work: a strict majority of the members."""
    return members // 2 + 1


def can_take_one_down(members: int, healthy: int) -> bool:
    """True when, with one more healthy member stopped, the healthy ones still form a quorum."""
    return healthy - 1 >= quorum(members)


def minor_lines(have: list[int], want: list[int]) -> list[str]:
    """Release lines to pass through, one minor at a time, ending with the target's (v1.27 -> v1.29: v1.28, v1.29).

    Across a major version (never happened for Kubernetes 1.x) no chain is known: the target's line alone.
    """
    if have[0] != want[0]:
        return [f"v{want[0]}.{want[1]}"]
    return [f"v{have[0]}.{minor}" for minor in range(have[1] + 1, want[1] + 1)]


def version_refusals(versions: dict[str, str], target: str) -> list[str]:
    """Downgrades and skipped minor versions. `versions`: node name -> the version it runs (nodes not registered are
    left out); the oldest node decides whether the target skips a minor."""
    want = version_key(target)
    problems: list[str] = []
    older: list[tuple[list[int], str]] = []
    for name, text in versions.items():
        have = version_key(text)
        if not have:
            continue
        if have > want:
            problems.append(
                f"{name} runs {text}, newer than {target}: downgrades are not supported "
                "(restore a backup taken on the older version instead)"
            )
        elif have < want:
            older.append((have, text))
    if older:
        oldest, text = min(older)
        lines = minor_lines(oldest, want)
        if oldest[0] != want[0] or len(lines) > 1:
            steps = ", then ".join([f"the latest {line} (channel {line})" for line in lines[:-1]] + [target])
            problems.append(
                f"{target} would skip a minor version from {text} (Kubernetes upgrades one minor at a time): "
                f"upgrade to {steps}"
            )
    return problems


def health_refusals(nodes: list[dict[str, Any]], embedded_etcd: bool) -> list[str]:
    """Why the cluster is not healthy enough to take nodes down one at a time. `nodes`: dicts with name, role
    (server|agent), registered, ready and (optional, default true) reachable."""
    problems: list[str] = []
    for node in nodes:
        if not node.get("reachable", True):
            problems.append(f"{node['name']} is unreachable: bring it back (or remove it from the inventory) first")
        elif not node["registered"]:
            problems.append(f"{node['name']} is not registered in the cluster: run the install (`provision up`) first")
        elif not node["ready"]:
            problems.append(
                f"{node['name']} is not Ready: fix it before upgrading (a rolling upgrade needs a healthy cluster to "
                "stay serving)"
            )
    servers = [node for node in nodes if node["role"] == "server"]
    if embedded_etcd:
        healthy = sum(1 for node in servers if node.get("reachable", True) and node["ready"])
        if not can_take_one_down(len(servers), healthy):
            problems.append(
                f"etcd has {len(servers)} members, {healthy} healthy: taking one down for its upgrade would lose "
                f"quorum ({quorum(len(servers))} needed); restore the failed servers first"
            )
    return problems


def _ready(node: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in node.get("status", {}).get("conditions", [])
    )


def ready_names(nodes: list[dict[str, Any]]) -> list[str]:
    """Names of the nodes whose Ready condition is True."""
    return [n["metadata"]["name"] for n in nodes if _ready(n)]


def upgrade_refusals(
    node_list: dict[str, Any], target: str, servers: list[str], agents: list[str], embedded_etcd: bool
) -> list[str]:
    """The rules applied to `kubectl get nodes -o json`: why the upgrade to `target` must not start; [] when it may.
    The health rules apply only while some node still has to move (a finished upgrade is not refused)."""
    registered = {n["metadata"]["name"]: n for n in node_list.get("items", [])}
    versions = {
        name: registered[name].get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
        for name in [*servers, *agents]
        if name in registered
    }
    problems = version_refusals(versions, target)
    want = version_key(target)
    if all(name in versions and version_key(versions[name]) == want for name in [*servers, *agents]):
        return problems
    nodes = [
        {"name": name, "role": role, "registered": name in registered, "ready": _ready(registered.get(name, {}))}
        for names, role in ((servers, "server"), (agents, "agent"))
        for name in names
    ]
    return problems + health_refusals(nodes, embedded_etcd)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"k3s_version_key": version_key, "k3s_upgrade_refusals": upgrade_refusals,
                "k3s_ready_names": ready_names, "k3s_etcd_quorum": quorum}
