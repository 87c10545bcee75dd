"""A first server that cannot be asked for the node list stops `up` in the membership phase (exit 3): it is never
taken for a server without a cluster (issue 18, "cannot ask is not no cluster")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.cli_runs import loopback_inventory, run

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("flags", [[], ["--check"]])
def test_unreachable_first_server_stops_the_run_in_membership(tmp_path: Path, flags: list[str]) -> None:
    loopback_inventory(tmp_path, "edge")  # port 1 on loopback: nothing answers
    result = run(tmp_path, "up", "--json", *flags)
    assert result.returncode == 3, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["error"]["message"].startswith("phase membership failed"), document["error"]
    assert any(line.startswith("s1: unreachable") for line in document["error"]["details"])
    assert "nothing was changed" in " ".join(document["error"]["details"])
    assert [p["name"] for p in document["phases"]] == ["settings"]


def test_limit_naming_an_unknown_host_is_refused_before_any_ssh(tmp_path: Path) -> None:
    loopback_inventory(tmp_path, "edge")
    result = run(tmp_path, "up", "--limit", "s1,nosuch")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--limit names hosts not in" in result.stderr and "nosuch" in result.stderr
    assert not list((tmp_path / "state").glob("edge/artifacts/*/*"))
