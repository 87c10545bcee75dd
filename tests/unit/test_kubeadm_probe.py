"""The probe's kubeadm checks: a control plane kubeadm would refuse (CPUs, memory) is named before anything changes;
swap is a warning where the prepare phase can turn it off and an error in a container, where it cannot."""

from __future__ import annotations

import pytest

from provisioner.flavors.kubeadm.probe_checks import CHECKS
from provisioner.inventory.model import Hardware, Host
from provisioner.probe import HostFacts, compare

pytestmark = pytest.mark.unit


def host(name: str, role: str) -> Host:
    return Host(name=name, address="10.0.0.1", port=22, user=None, role=role, hardware=Hardware())


def facts(name: str, **values: object) -> HostFacts:
    base: dict[str, object] = {"reachable": True, "uid": 0, "sudo_ok": True, "arch": "amd64", "arch_raw": "x86_64",
                               "memory_mb": 4096, "cpus": 4, "systemd": True, "os_id": "debian", "swap_mb": 0}
    return HostFacts(name=name, **(base | values))  # type: ignore[arg-type]


def findings(role: str, **values: object) -> list[tuple[str, str, str]]:
    return [(f.check, f.severity, f.message) for f in compare([host("h", role)], {"h": facts("h", **values)}, CHECKS)]


def test_a_fitting_control_plane_has_no_finding() -> None:
    assert findings("server") == []


def test_one_cpu_control_plane_is_refused_in_kubeadms_words_and_a_worker_is_not() -> None:
    assert findings("server", cpus=1) == [(
        "cpus", "error",
        "kubeadm refuses a control-plane node with fewer than 2 CPUs ([ERROR NumCPU]); this host has 1")]
    assert findings("agent", cpus=1) == []


def test_control_plane_memory_below_kubeadms_minimum_is_an_error_below_the_advice_a_warning() -> None:
    assert [f[:2] for f in findings("server", memory_mb=1500)] == [("memory", "error")]
    assert [f[:2] for f in findings("server", memory_mb=1900)] == [("memory", "warning")]
    assert findings("agent", memory_mb=1500) == []


def test_swap_is_a_warning_on_a_machine_and_an_error_in_a_container() -> None:
    assert [f[:2] for f in findings("agent", swap_mb=512)] == [("swap", "warning")]
    assert [f[:2] for f in findings("agent", swap_mb=512, container="docker")] == [("swap", "error")]
