"""An air-gapped kubeadm `up`: kubeadm_package_source: artifacts, from a folder on the control machine.

The lab has no release mirror here, so the hosts can reach nothing but SSH from the control machine; containerd,
runc and the CNI plugins are Debian's packages already in the lab image (an air-gapped site's local apt mirror stands
behind those). The artifact folder holds the layouts of dl.k8s.io/release and github.com side by side, as the docs
tell users to lay it out: the binaries with their .sha256 files, crictl's release archive, the CNI manifest.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.e2e.harness import LabCluster, node_ready
from tests.lab.kube_mirror import GITHUB_PREFIX, RELEASE_PREFIX
from tests.lab.lab import HostSpec

pytestmark = pytest.mark.lab

VERSION = "v1.30.2"


def artifact_folder(mirror_dir: Path, dest: Path) -> Path:
    """What a user copies in: the version's release tree and the GitHub release files, one folder."""
    shutil.copytree(mirror_dir / RELEASE_PREFIX / VERSION, dest / VERSION)
    for repo in ("kubernetes-sigs/cri-tools", "flannel-io/flannel"):
        shutil.copytree(mirror_dir / GITHUB_PREFIX / repo, dest / repo)
    return dest


def test_artifact_folder_installs_without_any_mirror_and_a_bad_checksum_is_refused_first(
    make_lab, mirror_dir: Path, tmp_path: Path,
) -> None:
    lab = make_lab([HostSpec("cp1", cpus=2, memory_mb=2048), "w1"], mirror=False)
    folder = artifact_folder(mirror_dir, tmp_path / "k8s-artifacts")
    kubelet = folder / VERSION / "bin" / "linux" / "amd64" / "kubelet"
    good = kubelet.read_bytes()
    kubelet.write_bytes(good + b"\n# altered on the way\n")

    cluster = LabCluster(lab, tmp_path / "cluster", servers=["cp1"], agents=["w1"], flavor="kubeadm",
                         extra_vars={"kubeadm_version": VERSION, "kubeadm_package_source": "artifacts",
                                     "kubeadm_artifact_dir": str(folder)})
    refused = cluster.up()
    assert refused.rc != 0
    text = refused.stdout + refused.stderr
    assert f"{kubelet} does not match its .sha256 file" in text, text[-4000:]
    for host in ("cp1", "w1"):  # checked on the control machine before any copy
        assert lab.exec(host, "test -e /usr/local/bin/kubelet || test -e /usr/local/bin/kubeadm").returncode == 1

    kubelet.write_bytes(good)
    first = cluster.up()
    assert first.rc == 0, first.stdout[-4000:] + first.stderr[-4000:]
    nodes = cluster.nodes()
    assert set(nodes) == {"cp1", "w1"} and all(node_ready(n) for n in nodes.values())
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes.values()} == {VERSION}
    digest = lab.exec("w1", "sha256sum /usr/local/bin/kubelet", check=True).stdout.split()[0]
    assert digest == hashlib.sha256(good).hexdigest()
    assert lab.exec("w1", "crictl --version", check=True).returncode == 0

    again = cluster.up()
    assert again.rc == 0, again.stdout[-4000:]
    assert again.changed_total() == 0, again.changed_by_host()
