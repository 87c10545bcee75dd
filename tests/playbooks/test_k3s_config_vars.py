"""config.yaml as the k3s role composes it (vars/main.yml `_k3s_config`), rendered by ansible-playbook on this
machine with the role's defaults and vars, for a server and an agent of a small inventory."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.playbook_code import PLAYBOOKS

pytestmark = pytest.mark.unit

ROLE = PLAYBOOKS / "roles" / "k3s"
BIN_DIR = Path(sys.executable).parent


def render_config(
    tmp_path: Path, cluster_vars: dict[str, Any], host_vars: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """host -> the config.yaml mapping the role would write (servers s1, s2 on embedded etcd; agent a1)."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    more = host_vars or {}
    inventory = {"all": {"children": {
        "server": {"hosts": {"s1": local | {"ansible_host": "10.0.0.11"} | more.get("s1", {}),
                             "s2": local | {"ansible_host": "10.0.0.12"} | more.get("s2", {})}},
        "agent": {"hosts": {"a1": local | {"ansible_host": "10.0.0.21"} | more.get("a1", {})}},
    }}}
    out = tmp_path / "out"
    out.mkdir()
    play = [{
        "name": "Compose config.yaml as the k3s role does",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {"name": "Role defaults", "ansible.builtin.include_vars": str(ROLE / "defaults" / "main.yml")},
            {"name": "Role vars", "ansible.builtin.include_vars": str(ROLE / "vars" / "main.yml")},
            {"name": "Write", "ansible.builtin.copy": {"content": "{{ _k3s_config | to_json }}",
                                                       "dest": f"{out}/{{{{ inventory_hostname }}}}.json",
                                                       "mode": "0600"}},
        ],
    }]
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    # As extra vars: above include_vars, which loads the role's defaults here (a role would load them below).
    (tmp_path / "vars.json").write_text(json.dumps({"provision_cluster_name": "edge", **cluster_vars}))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="False")
    result = subprocess.run(
        [str(BIN_DIR / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"), "-e", f"@{tmp_path / 'vars.json'}",
         str(tmp_path / "play.yml")],
        capture_output=True, text=True, env=env, timeout=300, check=False, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


def test_user_tls_san_adds_to_the_endpoint_san(tmp_path: Path) -> None:
    configs = render_config(tmp_path, {
        "provision_api_endpoint": "10.0.0.100",
        "k3s_server_config": {"tls-san": ["k8s.example.com", "10.0.0.100"], "disable": ["traefik"]},
        "k3s_agent_config": {"node-ip": "10.0.0.21"},
    })
    assert configs["s1"]["tls-san"] == ["10.0.0.100", "k8s.example.com"]
    assert configs["s1"]["cluster-init"] is True and configs["s1"]["disable"] == ["traefik"]
    assert configs["s2"]["server"] == "https://10.0.0.100:6443" and "cluster-init" not in configs["s2"]
    assert "tls-san" not in configs["a1"] and configs["a1"]["node-ip"] == "10.0.0.21"


def test_single_tls_san_name_and_no_user_san(tmp_path: Path) -> None:
    configs = render_config(tmp_path, {"k3s_server_config": {"tls-san": "k8s.example.com"}})
    assert configs["s1"]["tls-san"] == ["10.0.0.11", "k8s.example.com"]  # the endpoint defaults to the first server
    (tmp_path / "none").mkdir()
    configs = render_config(tmp_path / "none", {})
    assert configs["s2"]["tls-san"] == ["10.0.0.11"]


def _data_on(*servers: str) -> dict[str, Any]:
    """install.yml's look at every server: which hold /var/lib/rancher/k3s/server/token."""
    return {"_k3s_cluster_data": {"results": [
        {"item": h, "stat": {"exists": h in servers}} for h in ("s1", "s2")]}}


def _config_before(config: dict[str, Any]) -> dict[str, Any]:
    """The host's current config.yaml as configure.yml reads it (slurp)."""
    return {"_k3s_current_config": {"content": base64.b64encode(yaml.safe_dump(config).encode()).decode()}}


def test_a_new_cluster_starts_on_the_first_server_and_the_others_join_it(tmp_path: Path) -> None:
    configs = render_config(tmp_path, _data_on())
    assert configs["s1"].get("cluster-init") is True and "server" not in configs["s1"]
    assert configs["s2"]["server"] == "https://10.0.0.11:6443" and "cluster-init" not in configs["s2"]


def test_a_rebuilt_first_server_joins_the_server_holding_the_cluster_and_running_members_keep_their_config(
    tmp_path: Path,
) -> None:
    # s1 was removed and reset; s2 holds the cluster and joined s1 long ago (its config says so).
    s2_before = {"node-name": "s2", "server": "https://10.0.0.11:6443", "tls-san": ["10.0.0.11"]}
    configs = render_config(tmp_path, _data_on("s2"), {"s2": _config_before(s2_before)})
    assert "cluster-init" not in configs["s1"]
    assert configs["s1"]["server"] == "https://10.0.0.12:6443"  # the seed, not the endpoint that is s1 itself
    assert configs["s2"]["server"] == "https://10.0.0.11:6443" and "cluster-init" not in configs["s2"]

    # The next run: s1 holds data too and is the first server again; its config.yaml keeps the join it has.
    s1_now = {"node-name": "s1", "server": "https://10.0.0.12:6443", "tls-san": ["10.0.0.11"]}
    (tmp_path / "again").mkdir()
    again = render_config(tmp_path / "again", _data_on("s1", "s2"),
                          {"s1": _config_before(s1_now), "s2": _config_before(s2_before)})
    assert again["s1"]["server"] == "https://10.0.0.12:6443" and "cluster-init" not in again["s1"]
