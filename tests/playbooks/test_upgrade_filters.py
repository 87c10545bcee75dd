"""The k3s_upgrade role refuses exactly what the CLI's upgrade plan refuses.

The rules are written once, in the role's filter plugin; the CLI (provisioner/plan.py) applies them to the node
states it read, the role to `kubectl get nodes -o json` (its `k3s_upgrade_refusals` filter). This test feeds every
upgrade plan case (tests/plan/cases/) through both routes and compares the kinds of refusal. Reachability is the one
rule only the CLI route sees: in a playbook run an unreachable host stops the play before anything changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provisioner.plan import K3sVersion, NodeState, plan_upgrade
from tests.playbook_code import load

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "plan" / "cases"
TABLES = json.loads((ROOT / "tests" / "plan" / "tables.json").read_text())

#: Words that tell a refusal's kind, in both wordings.
KINDS = {
    "downgrade": "downgrades are not supported",
    "skipped-minor": "would skip a minor version",
    "unregistered": "is not registered",
    "not-ready": "is not Ready",
    "quorum": "lose quorum",
}


filters = load("roles/k3s_upgrade/filter_plugins/k3s_upgrade_filters.py")


def kinds(refusals: list[str] | tuple[str, ...]) -> set[str]:
    found = set()
    for refusal in refusals:
        matched = [kind for kind, words in KINDS.items() if words in refusal]
        assert matched or "unreachable" in refusal, f"refusal of no known kind: {refusal}"
        found.update(matched)
    return found


def node_list(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """What `kubectl get nodes -o json` returns for the case's registered nodes."""
    items = [
        {
            "metadata": {"name": n["name"]},
            "status": {
                "nodeInfo": {"kubeletVersion": n["version"]},
                "conditions": [{"type": "Ready", "status": "True" if n.get("ready", True) else "False"}],
            },
        }
        for n in nodes
        if n.get("version")
    ]
    return {"items": items}


def cli_refusals(data: dict[str, Any]) -> tuple[str, ...]:
    states = [
        NodeState(
            name=n["name"],
            role=n["role"],
            version=K3sVersion.parse(n["version"]) if n.get("version") else None,
            ready=n.get("ready", True),
            reachable=n.get("reachable", True),
            binary_version=K3sVersion.parse(n["binary_version"]) if n.get("binary_version") else None,
            unfinished=n.get("unfinished", False),
        )
        for n in data["nodes"]
    ]
    datastore = data.get("datastore", "sqlite")
    return plan_upgrade(states, K3sVersion.parse(data["target"]), datastore, data.get("max_unavailable", 1)).refusals


@pytest.mark.parametrize("case", sorted(CASES.glob("*.json")), ids=lambda p: p.stem)
def test_role_filters_refuse_what_the_cli_refuses(case: Path) -> None:
    data = json.loads(case.read_text())
    nodes = data["nodes"]
    role = filters.upgrade_refusals(
        node_list(nodes),
        data["target"],
        [n["name"] for n in nodes if n["role"] == "server"],
        [n["name"] for n in nodes if n["role"] == "agent"],
        data.get("datastore", "sqlite") == "embedded-etcd",
    )
    assert kinds(role) == kinds(cli_refusals(data)), role


@pytest.mark.parametrize("row", TABLES["quorum"], ids=lambda r: f"{r['members']}m-{r['healthy']}h")
def test_role_quorum_arithmetic_is_the_cli_one(row: dict[str, Any]) -> None:
    assert filters.quorum(row["members"]) == row["quorum"]


@pytest.mark.parametrize("row", TABLES["order"], ids=lambda r: f"{r[0]}<{r[1]}")
def test_role_version_order_is_the_cli_one(row: list[str]) -> None:
    assert filters.version_key(row[0]) < filters.version_key(row[1])


def test_role_reads_the_version_out_of_k3s_version_output() -> None:
    output = "k3s version v1.28.4+k3s2 (6ba6c1b6)\ngo version go1.20.11"
    assert filters.version_key(output) == [1, 28, 4, 2]
    assert filters.version_key("no version here") == []
