"""The kubeadm flavor's reset and remove-node steps: what they run, what they refuse, what they report as kept."""

from __future__ import annotations

import pytest
import yaml

from provisioner.errors import RefusedError
from provisioner.flavors.base import FlavorOptions
from provisioner.flavors.k3s import K3sFlavor
from provisioner.flavors.kubeadm import KubeadmFlavor
from provisioner.lifecycle_plan import RemovalPlan
from provisioner.paths import playbook_dir
from provisioner.ssh_config import SshSettings

pytestmark = pytest.mark.unit


@pytest.fixture
def flavor() -> KubeadmFlavor:
    return KubeadmFlavor(FlavorOptions(ssh=SshSettings()))


def plan(host: str, role: str, *, reachable: bool) -> RemovalPlan:
    return RemovalPlan(host=host, role=role, control_server="cp1", etcd_member=role == "server",
                       in_cluster=True, reset_host=reachable)


def test_remove_node_runs_the_kubeadm_playbook_with_the_node_and_the_control_plane(flavor: KubeadmFlavor) -> None:
    step = flavor.removal_step(plan("w1", "agent", reachable=True))
    assert step.playbook == "kubeadm_remove_node.yml" and (playbook_dir() / step.playbook).is_file()
    assert dict(step.extravars) == {"kubeadm_remove_node": "w1", "kubeadm_remove_force": False,
                                    "kubeadm_remove_via": "cp1"}
    forced = flavor.removal_step(plan("w1", "agent", reachable=False))
    assert forced.extravars["kubeadm_remove_force"] is True


def test_an_unreachable_control_plane_is_refused_because_its_etcd_member_leaves_from_its_host(
    flavor: KubeadmFlavor,
) -> None:
    with pytest.raises(RefusedError, match=r"cp2 is a control plane and unreachable.*etcdctl member remove"):
        flavor.removal_step(plan("cp2", "server", reachable=False))
    assert flavor.removal_step(plan("cp2", "server", reachable=True)).extravars["kubeadm_remove_force"] is False


def test_reset_runs_the_kubeadm_playbook_and_reports_the_runtime_packages_as_kept(flavor: KubeadmFlavor) -> None:
    step = flavor.reset_step()
    assert step.playbook == "kubeadm_reset.yml" and (playbook_dir() / step.playbook).is_file()
    kept = flavor.kept_packages()
    # node_prep's own packages plus what kubeadm_prepare.yml adds, read from those files (not restated here).
    assert {"iptables", "containerd", "runc", "containernetworking-plugins"} <= set(kept)
    assert not {"kubeadm", "kubelet", "kubectl"} & set(kept)
    assert set(K3sFlavor(FlavorOptions(ssh=SshSettings())).kept_packages()) >= {"iptables", "curl"}


def test_every_playbook_that_changes_hosts_refuses_the_other_flavor_first() -> None:
    expected = {"prepare.yml": "k3s", "reset.yml": "k3s", "remove_node.yml": "k3s",
                "kubeadm_prepare.yml": "kubeadm", "kubeadm_reset.yml": "kubeadm", "kubeadm_remove_node.yml": "kubeadm"}
    for name, flavor_name in expected.items():
        first = yaml.safe_load((playbook_dir() / name).read_text())[0]
        assert first["ansible.builtin.import_playbook"] == "flavor_check.yml", name
        assert first["vars"] == {"flavor_check_expected": flavor_name}, name
