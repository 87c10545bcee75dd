"""One architecture table (the k3s role's vars) for the role, the inventory check, the probe and the schema."""

from __future__ import annotations

import pytest
import yaml

from provisioner import arch
from provisioner.inventory.schema import json_schema
from provisioner.paths import role_file
from provisioner.probe import k3s_arch

pytestmark = pytest.mark.unit


def test_the_cli_reads_the_roles_table() -> None:
    role_vars = yaml.safe_load(role_file("k3s", "vars", "main.yml").read_text())
    assert set(arch.release_arches()) == set(role_vars["_k3s_asset_map"]) == {"amd64", "arm64", "arm", "s390x"}
    for uname, release in role_vars["_k3s_arch_map"].items():
        assert arch.release_arch(uname) == release == k3s_arch(uname)
    schema_arches = json_schema()["$defs"]["variables"]["properties"]["provision_hardware"]["properties"]["arch"]
    assert schema_arches["enum"] == ["amd64", "arm64", "armhf", "s390x", "arm"]


def test_armv6_is_refused_everywhere_and_armv8l_runs_the_armv7_build() -> None:
    assert arch.release_arch("armv6l") is None and k3s_arch("armv6l") == "armv6l"
    assert "ARMv6" in (arch.refused_reason("armv6l") or "")
    assert arch.release_arch("armv8l") == "arm" and arch.inventory_name("arm") == "armhf"
    assert arch.canonical("armhf") == arch.canonical("arm") == "arm"
