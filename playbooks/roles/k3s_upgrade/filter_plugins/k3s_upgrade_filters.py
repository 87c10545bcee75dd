"""Safety rules of a K3s upgrade, for plain ansible-playbook runs.

The provision CLI evaluates the same rules in provisioner/plan.py before it starts; these filters let the playbooks
refuse on their own when run without the CLI (AWX, CI). Kept small and dependency-free on purpose: the role must not
import the provision package, which the Ansible controller may not have. tests/playbooks/test_upgrade_filters.py
runs the CLI's plan cases through both and fails when they refuse differently.
"""

from __future__ import annotations

import re
from typing import Any

_VERSION = re.compile(r"v(\d+)\.(\d+)\.(\d+)\+k3s(\d+)")


def version_key(text: str) -> list[int]:
    """[major, minor, patch, build] of the first K3s version in `text` (e.g. `k3s --version` output); [] if none."""
    match = _VERSION.search(text or "")
    return [int(g) for g in match.groups()] if match else []


def quorum(members: int) -> int:
    """Votes etcd needs to work: a strict majority of the members."""
    return members // 2 + 1


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
    """Why the upgrade to `target` must not start, one line per rule broken; [] when it may."""
    want = version_key(target)
    nodes = {n["metadata"]["name"]: n for n in node_list.get("items", [])}
    problems: list[str] = []
    unhealthy: list[str] = []
    pending = 0
    for name in [*servers, *agents]:
        node = nodes.get(name)
        if node is None:
            problems.append(f"{name} is not registered in the cluster: run the install first")
            pending += 1
            continue
        have_text = node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
        have = version_key(have_text)
        if have != want:
            pending += 1
        if have > want:
            problems.append(f"{name} runs {have_text}, newer than {target}: downgrades are not supported")
        elif have and have < want and (have[0] != want[0] or want[1] - have[1] > 1):
            problems.append(
                f"{target} would skip a minor version from {have_text}: upgrade one minor at a time "
                f"(next: the latest v{have[0]}.{have[1] + 1})"
            )
        if not _ready(node):
            unhealthy.append(f"{name} is not Ready")
    if not pending:
        return problems
    problems += unhealthy
    if embedded_etcd:
        healthy = sum(1 for s in servers if s in nodes and _ready(nodes[s]))
        if healthy - 1 < quorum(len(servers)):
            problems.append(
                f"etcd has {len(servers)} members, {healthy} healthy: taking one down would lose quorum"
            )
    return problems


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"k3s_version_key": version_key, "k3s_upgrade_refusals": upgrade_refusals,
                "k3s_ready_names": ready_names, "k3s_etcd_quorum": quorum}
