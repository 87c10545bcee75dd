"""The sample inventories load cleanly, and json_schema() accepts good inventories and rejects bad ones."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from provisioner.errors import InventoryError
from provisioner.inventory import json_schema, load_inventory, to_ansible_vars
from provisioner.inventory.k3s_checks import MANAGED_KEYS, UNSUPPORTED_KEYS, config_keys

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "inventories").glob("*.yml"))
CASES = Path(__file__).parent / "cases"
VALID_CASES = sorted(p / "inventory.yml" for p in CASES.iterdir() if (p / "expected.json").exists())


class _AnsibleYaml(yaml.SafeLoader):
    """SafeLoader that reads Ansible's !vault and !unsafe tags as plain strings, like an editor would."""


_AnsibleYaml.add_constructor("!vault", lambda loader, node: loader.construct_scalar(node))
_AnsibleYaml.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def _read(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_AnsibleYaml)  # noqa: S506 - SafeLoader subclass


def _validator() -> jsonschema.protocols.Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.unit
def test_samples_exist() -> None:
    assert {p.name for p in SAMPLES} >= {"rpi-edge.yml", "vm-site.yml"}


@pytest.mark.unit
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_sample_loads_without_problems(sample: Path) -> None:
    try:
        cluster = load_inventory(sample)
    except InventoryError as error:  # show every problem, not just "raised"
        pytest.fail("\n".join(error.details()))
    assert cluster.warnings == ()
    assert cluster.servers, "a sample needs a server"
    assert to_ansible_vars(cluster)["provision_cluster_name"] == cluster.name


@pytest.mark.unit
def test_rpi_edge_topology() -> None:
    cluster = load_inventory(ROOT / "inventories" / "rpi-edge.yml")
    assert [h.name for h in cluster.servers] == ["pi-server"]
    assert [h.name for h in cluster.agents] == ["pi-agent-1", "pi-agent-2", "pi-agent-3"]
    assert cluster.first_server.hardware.board == "rpi5"
    assert {h.hardware.board for h in cluster.agents} == {"rpi4"}
    assert {h.hardware.arch for h in cluster.hosts} == {"arm64"}
    assert cluster.datastore == "sqlite"


@pytest.mark.unit
def test_vm_site_topology() -> None:
    cluster = load_inventory(ROOT / "inventories" / "vm-site.yml")
    assert len(cluster.servers) == 3
    assert cluster.datastore == "embedded-etcd"
    assert cluster.api_endpoint == "10.20.0.10"
    assert {h.hardware.arch for h in cluster.hosts} == {"amd64"}
    assert cluster.host("worker-3").node_taints == ("dedicated=storage:NoSchedule",)


@pytest.mark.unit
@pytest.mark.parametrize("path", SAMPLES + VALID_CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_schema_accepts_valid_inventories(path: Path) -> None:
    errors = [e.message for e in _validator().iter_errors(_read(path))]
    assert errors == []


def _minimal() -> dict[str, Any]:
    return {
        "all": {
            "vars": {"provision_cluster_name": "edge", "k3s_version": "v1.28.4+k3s2"},
            "children": {"server": {"hosts": {"s1": {"ansible_host": "10.0.0.1"}}}},
        }
    }


def _with_vars(**variables: Any) -> dict[str, Any]:
    data = _minimal()
    data["all"]["vars"].update(variables)
    return data


def _with_host_vars(**variables: Any) -> dict[str, Any]:
    data = _minimal()
    data["all"]["children"]["server"]["hosts"]["s1"].update(variables)
    return data


def _hosts_as_list() -> dict[str, Any]:
    data = _minimal()
    data["all"]["children"]["server"]["hosts"] = ["s1"]
    return data


def _typo_section() -> dict[str, Any]:
    data = copy.deepcopy(_minimal())
    data["all"]["children"]["server"] = {"host": {"s1": None}}
    return data


BAD = {
    "hosts-as-list": _hosts_as_list(),
    "group-key-typo": _typo_section(),
    "version-without-v": _with_vars(k3s_version="1.28.4"),
    "version-dash": _with_vars(k3s_version="v1.28.4-k3s1"),
    "channel": _with_vars(k3s_channel="v1.28.4"),
    "cluster-name": _with_vars(provision_cluster_name="Edge_1"),
    "flavor": _with_vars(provision_flavor="k3d"),
    "release-url": _with_vars(k3s_release_url="ftp://mirror/k3s"),
    "server-config-typo": _with_vars(k3s_server_config={"tls-sans": ["x"]}),
    "server-config-managed": _with_vars(k3s_server_config={"cluster-init": True}),
    "agent-config-server-key": _with_vars(k3s_agent_config={"disable": ["traefik"]}),
    "registries": _with_vars(k3s_registries={"mirror": {}}),
    "arch": _with_host_vars(provision_hardware={"arch": "riscv64"}),
    "board": _with_host_vars(provision_hardware={"board": "rpi9"}),
    "memory": _with_host_vars(provision_hardware={"memory_mb": -1}),
    "taint": _with_host_vars(k3s_node_taints=["a=b:Sometimes"]),
    "label": _with_host_vars(k3s_node_labels={"-bad": "x"}),
    "port": _with_host_vars(ansible_port=70000),
}


@pytest.mark.unit
def test_schema_accepts_the_minimal_base() -> None:
    assert list(_validator().iter_errors(_minimal())) == []


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(BAD))
def test_schema_rejects_bad_inventory(name: str) -> None:
    assert list(_validator().iter_errors(BAD[name])) != []


@pytest.mark.unit
def test_schema_config_keys_follow_the_flag_list() -> None:
    server_keys = set(json_schema()["$defs"]["variables"]["properties"]["k3s_server_config"]["propertyNames"]["enum"])
    assert "tls-san" in server_keys
    assert "tls-san+" in server_keys
    refused = MANAGED_KEYS | UNSUPPORTED_KEYS
    assert not server_keys & set(refused)
    assert {k for k in config_keys("server") if config_keys("server")[k].name not in refused} <= server_keys
