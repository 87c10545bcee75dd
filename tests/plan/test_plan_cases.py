"""Data-driven tests of provisioner.plan: one JSON file per case under cases/, one generic test walking them.

A case holds the cluster as the upgrade would find it (`nodes`), the `target`, the `datastore`,
`max_unavailable` and the `strategy` (rolling unless given), and what must come out: the `steps` (batches in
order), the `skipped` nodes, optionally the `drained` ones, and text each refusal must contain (`refusals`; an
empty list means the plan must be accepted). Every case is also planned with the other strategy: the safety
refusals do not depend on how the nodes get the new release.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provisioner.plan import (
    K3sVersion,
    NodeState,
    Strategy,
    UpgradePlan,
    batches,
    can_take_one_down,
    fault_tolerance,
    minor_chain,
    plan_upgrade,
    quorum,
)

pytestmark = pytest.mark.unit
CASES = Path(__file__).parent / "cases"
TABLES = json.loads((Path(__file__).parent / "tables.json").read_text())


def _node(raw: dict[str, Any]) -> NodeState:
    version = raw.get("version")
    binary = raw.get("binary_version")
    return NodeState(
        name=raw["name"],
        role=raw["role"],
        version=K3sVersion.parse(version) if version else None,
        ready=raw.get("ready", True),
        reachable=raw.get("reachable", True),
        binary_version=K3sVersion.parse(binary) if binary else None,
        unfinished=raw.get("unfinished", False),
    )


def _plan(data: dict[str, Any], strategy: Strategy) -> UpgradePlan:
    return plan_upgrade(
        [_node(n) for n in data["nodes"]],
        K3sVersion.parse(data["target"]),
        data.get("datastore", "sqlite"),
        data.get("max_unavailable", 1),
        strategy,
    )


@pytest.mark.parametrize("case", sorted(CASES.glob("*.json")), ids=lambda p: p.stem)
def test_plan_case(case: Path) -> None:
    data = json.loads(case.read_text())
    plan = _plan(data, data.get("strategy", "rolling"))
    assert plan.strategy == data.get("strategy", "rolling")
    expect = data["expect"]
    assert [list(step.nodes) for step in plan.steps] == expect["steps"]
    assert [step.phase for step in plan.steps] == [
        "servers" if name in {n["name"] for n in data["nodes"] if n["role"] == "server"} else "agents"
        for name in (step[0] for step in expect["steps"])
    ]
    assert sorted(n.name for n in plan.nodes if n.action == "skip") == sorted(expect.get("skipped", []))
    if "finish" in expect:
        assert sorted(n.name for n in plan.nodes if n.action == "finish") == sorted(expect["finish"])
    if "drained" in expect:
        assert sorted(n.name for n in plan.nodes if n.drain) == sorted(expect["drained"])
    wanted = expect["refusals"]
    assert len(plan.refusals) == len(wanted), plan.refusals
    for text, refusal in zip(wanted, plan.refusals, strict=True):
        assert text in refusal, refusal


@pytest.mark.parametrize("case", sorted(CASES.glob("*.json")), ids=lambda p: p.stem)
def test_both_strategies_refuse_alike(case: Path) -> None:
    data = json.loads(case.read_text())
    rolling, plans = _plan(data, "rolling"), _plan(data, "plan")
    assert rolling.refusals == plans.refusals
    assert rolling.steps == plans.steps
    # Plans cordon servers without draining them; agents are drained as in the rolling upgrade.
    assert [n.name for n in plans.nodes if n.drain] == [n.name for n in rolling.nodes if n.drain and n.role == "agent"]


@pytest.mark.parametrize("row", TABLES["parse"], ids=lambda r: r["text"])
def test_version_parsing(row: dict[str, Any]) -> None:
    if row["ok"] is None:
        with pytest.raises(ValueError, match=r"vMAJOR\.MINOR\.PATCH"):
            K3sVersion.parse(row["text"])
        return
    version = K3sVersion.parse(row["text"])
    assert list(version.key) == row["ok"]
    assert str(version) == row["text"].strip()


@pytest.mark.parametrize("row", TABLES["order"], ids=lambda r: f"{r[0]}<{r[1]}")
def test_version_order(row: list[str]) -> None:
    assert K3sVersion.parse(row[0]) < K3sVersion.parse(row[1])
    assert not K3sVersion.parse(row[1]) < K3sVersion.parse(row[0])


@pytest.mark.parametrize("row", TABLES["minor_chain"], ids=lambda r: f"{r['from']}->{r['to']}")
def test_minor_chain(row: dict[str, Any]) -> None:
    assert minor_chain(K3sVersion.parse(row["from"]), K3sVersion.parse(row["to"])) == row["chain"]


@pytest.mark.parametrize("row", TABLES["quorum"], ids=lambda r: f"{r['members']}m-{r['healthy']}h")
def test_quorum_arithmetic(row: dict[str, Any]) -> None:
    assert quorum(row["members"]) == row["quorum"]
    assert fault_tolerance(row["members"]) == row["tolerates"]
    assert can_take_one_down(row["members"], row["healthy"]) is row["can_take_one_down"]


@pytest.mark.parametrize("row", TABLES["batches"], ids=lambda r: f"{len(r['names'])}by{r['size']}")
def test_batches(row: dict[str, Any]) -> None:
    assert [list(b) for b in batches(row["names"], row["size"])] == row["batches"]
