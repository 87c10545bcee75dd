"""A change to a setting K3s cannot change on a running cluster is refused from the state dir's record of the last
successful `up`, before any host is contacted (exit 4); without a record the servers' own check applies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.cli_runs import loopback_inventory, run

pytestmark = pytest.mark.unit


def test_critical_change_is_refused_before_any_host_is_contacted(tmp_path: Path) -> None:
    inventory = loopback_inventory(tmp_path, "edge")
    inventory.write_text(inventory.read_text().replace(
        "k3s_version: v1.28.4+k3s2}", "k3s_version: v1.28.4+k3s2, k3s_server_config: {cluster-cidr: 10.52.0.0/16}}"
    ))
    state = tmp_path / "state" / "edge"
    state.mkdir(parents=True)
    (state / "critical-settings.json").write_text(json.dumps({"disable": ["traefik"]}))
    result = run(tmp_path, "up", "--json")
    assert result.returncode == 4, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert "cluster-cidr: 10.42.0.0/16 -> 10.52.0.0/16" in document["error"]["message"]
    assert not list(state.glob("artifacts/*/*")), "a playbook ran before the refusal"


def test_a_non_critical_change_goes_on_to_the_hosts(tmp_path: Path) -> None:
    inventory = loopback_inventory(tmp_path, "edge")
    inventory.write_text(inventory.read_text().replace(
        "k3s_version: v1.28.4+k3s2}", "k3s_version: v1.28.4+k3s2, k3s_server_config: {disable: [traefik]}}"
    ))
    state = tmp_path / "state" / "edge"
    state.mkdir(parents=True)
    (state / "critical-settings.json").write_text(json.dumps({}))
    result = run(tmp_path, "up", "--json")
    assert result.returncode != 4, result.stdout + result.stderr  # it went on and failed at the unreachable host
    assert json.loads(result.stdout)["phases"][0] == json.loads(result.stdout)["phases"][0] | {"name": "settings",
                                                                                                 "status": "ok"}
