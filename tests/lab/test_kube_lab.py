"""Lab hosts for the kubeadm flavor: Debian's containerd starts on demand, etcd stays off, the mirror's Kubernetes trees
are usable from a host exactly as the install docs use dl.k8s.io and pkgs.k8s.io."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.fixtures import new_lab_id, require_docker
from tests.lab.inventory import kubeadm_specs
from tests.lab.lab import Lab, docker, lxcfs_running

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab-module-kube")]

# apt on a lab host reads only the repository under test: the image's sources.list names Debian's mirror.
APT = "apt-get -q -o Dir::Etc::sourcelist=/dev/null"


@pytest.fixture(scope="module")
def kube_lab(lab_image: str, mirror_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """server1 (2 CPUs, 2048 MB) and agent1, both with /var/lib/containerd on its own volume, plus the mirror."""
    require_docker()
    lab_id = new_lab_id("k")
    lab = Lab.create(lab_id, kubeadm_specs(1, 1), tmp_path_factory.mktemp(lab_id), mirror_dir)
    yield lab
    lab.destroy()


def test_containerd_starts_and_answers_while_etcd_stays_off(kube_lab: Lab) -> None:
    before = kube_lab.ssh("server1", "systemctl is-enabled containerd etcd; systemctl is-active containerd etcd")
    assert before.stdout.split() == ["disabled", "disabled", "inactive", "inactive"], before.stdout + before.stderr
    script = """
        set -e
        systemctl start containerd
        ctr version
        ctr plugins ls
        # A layered snapshot really mounts (overlay cannot stack on the container's overlay root; the volume can).
        ctr snapshots prepare lab-base >/dev/null && ctr snapshots commit lab-layer lab-base
        ctr snapshots prepare lab-top lab-layer >/dev/null
        mkdir -p /tmp/lab-top && ctr snapshots mounts /tmp/lab-top lab-top | sh
        findmnt -n -o FSTYPE /tmp/lab-top
        umount /tmp/lab-top
        ctr snapshots rm lab-top lab-layer
    """
    result = kube_lab.ssh("server1", script)
    assert result.returncode == 0, result.stdout + result.stderr
    server = result.stdout.split("Server:", 1)[1]
    assert "Version:" in server and "1.6." in server
    plugins = {
        tuple(line.split()[:2]): line.split()[-1] for line in result.stdout.splitlines() if "io.containerd" in line
    }
    assert plugins[("io.containerd.grpc.v1", "cri")] == "ok"
    assert plugins[("io.containerd.snapshotter.v1", "overlayfs")] == "ok"
    assert result.stdout.rstrip().endswith("overlay")
    assert kube_lab.ssh("server1", "pgrep -x etcd").returncode == 1, "etcd must not run until a kubelet starts it"
    assert kube_lab.ssh("server1", "systemctl stop containerd").returncode == 0


def test_host_downloads_kubeadm_binaries_and_checks_them_like_the_docs(kube_lab: Lab) -> None:
    release = f"{kube_lab.mirror_url}/dl.k8s.io/release"
    script = f"""
        set -e; rm -rf /tmp/dl; mkdir /tmp/dl; cd /tmp/dl
        version=$(curl -fsS {release}/stable-1.30.txt)
        for tool in kubeadm kubelet kubectl; do
          curl -fsSLO {release}/$version/bin/linux/amd64/$tool
          curl -fsSLO {release}/$version/bin/linux/amd64/$tool.sha256
          echo "$(cat $tool.sha256)  $tool" | sha256sum --check
        done
        echo "$version"
    """
    result = kube_lab.ssh("agent1", script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kubeadm: OK" in result.stdout and "kubectl: OK" in result.stdout
    assert result.stdout.split()[-1] == "v1.30.2"


def test_host_installs_from_the_signed_apt_repository(kube_lab: Lab) -> None:
    repo = f"{kube_lab.mirror_url}/pkgs.k8s.io/core:/stable:/v1.30/deb"
    script = f"""
        set -e
        key=/etc/apt/keyrings/kubernetes-apt-keyring.asc
        mkdir -p /etc/apt/keyrings
        curl -fsSL {repo}/Release.key -o $key
        echo "deb [signed-by=$key] {repo}/ /" > /etc/apt/sources.list.d/kubernetes.list
        {APT} update
        DEBIAN_FRONTEND=noninteractive {APT} install -y kubeadm=1.30.2-1.1 kubelet=1.30.2-1.1 kubectl=1.30.2-1.1
        dpkg-query -W -f='${{Package}} ${{Version}}\\n' kubeadm kubelet kubectl cri-tools kubernetes-cni
        systemctl is-enabled kubelet
        systemctl cat kubelet | grep -c '^ExecStart=/usr/bin/kubelet'
        readlink /opt/cni/bin/bridge
    """
    try:
        result = kube_lab.ssh("agent1", script, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert "kubeadm 1.30.2-1.1" in lines and "cri-tools 1.30.1-1.1" in lines and "kubernetes-cni 1.4.0-1.1" in lines
        assert lines[-3:] == ["enabled", "2", "/usr/lib/cni/bridge"]  # the unit's and the drop-in's ExecStart
    finally:
        cleanup = (
            f"systemctl disable --now kubelet; DEBIAN_FRONTEND=noninteractive {APT} purge -y kubeadm kubelet kubectl"
        )
        kube_lab.ssh("agent1", cleanup + " cri-tools kubernetes-cni; rm -f /etc/apt/sources.list.d/kubernetes.list")


def test_control_plane_host_is_sized_for_kubeadm_preflight(kube_lab: Lab) -> None:
    limits = docker("inspect", "-f", "{{.HostConfig.CpusetCpus}} {{.HostConfig.Memory}}", kube_lab.container("server1"))
    assert limits.split() == ["0-1", str(2048 * 1024 * 1024)]
    if lxcfs_running():  # then the host also sees them, as kubeadm's NumCPU and Mem checks read them
        seen = kube_lab.ssh("server1", "nproc; awk '/^MemTotal/ {print $2}' /proc/meminfo").stdout.split()
        assert seen == ["2", str(2048 * 1024)]
