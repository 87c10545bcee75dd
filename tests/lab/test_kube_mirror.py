"""The Kubernetes part of the lab mirror, the mirror server's paths, the image recipe and kubeadm lab inventories.

No Docker: binaries come from a placeholder builder (the real stand-in builder is another helper's and is exercised by
the lab tests); apt repositories are built with dpkg-deb and signed with a throw-away key in the test's tmp dir.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import http.server
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab import image
from tests.lab.apt_repo import DEB_ARCH, SigningKey
from tests.lab.inventory import kubeadm_specs, lab_inventory
from tests.lab.kube_mirror import CNI_MANIFESTS, KUBE_ARCHES, KUBE_TOOLS, KUBE_VERSIONS, stable_markers
from tests.lab.lab import HostInfo, Lab
from tests.lab.mirror import build_mirror
from tests.lab.mirror_server import MirrorHandler

pytestmark = pytest.mark.unit

K3S_VERSIONS = ("v1.28.4+k3s2",)
APT = "pkgs.k8s.io/core:/stable:"


def placeholder_k3s(version: str, arch: str, dest: Path) -> Path:
    dest.write_text(f"#!/bin/sh\necho k3s {version} {arch}\n")
    return dest


def placeholder_kube(tool: str, version: str, arch: str, dest: Path) -> Path:
    dest.write_text(f"#!/bin/sh\necho {tool} {version} {arch}\n")
    return dest


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A whole mirror (K3s + Kubernetes + apt) from placeholders, signed with a key made for this module."""
    root = tmp_path_factory.mktemp("mirror")
    gpg_home = tmp_path_factory.mktemp("gpg")
    return build_mirror(
        root / "m", K3S_VERSIONS, placeholder_k3s, kube_builder=placeholder_kube, gpg_home=gpg_home / "home"
    )


def files_under(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_binaries_and_bare_hex_checksums_for_every_version_and_arch(tree: Path) -> None:
    for version in KUBE_VERSIONS:
        for arch in KUBE_ARCHES:
            folder = tree / "dl.k8s.io/release" / version / "bin/linux" / arch
            for tool in KUBE_TOOLS:
                binary = folder / tool
                assert binary.read_text() == f"#!/bin/sh\necho {tool} {version} {arch}\n"
                assert binary.stat().st_mode & 0o111
                digest = (folder / f"{tool}.sha256").read_text()
                assert re.fullmatch(r"[0-9a-f]{64}", digest), digest  # no file name, no line end
                assert digest == hashlib.sha256(binary.read_bytes()).hexdigest()


def test_stable_markers_name_the_newest_patch(tree: Path) -> None:
    release = tree / "dl.k8s.io/release"
    markers = {name: (release / name).read_text() for name in ("stable.txt", "stable-1.txt", "stable-1.30.txt")}
    assert markers == {"stable.txt": "v1.31.1", "stable-1.txt": "v1.31.1", "stable-1.30.txt": "v1.30.2"}
    assert (release / "stable-1.31.txt").read_text() == "v1.31.1"
    assert stable_markers(["v1.30.2", "v1.30.10", "v1.29.6"])["stable-1.30.txt"] == "v1.30.10"


def test_k3s_part_is_unchanged_by_the_kubernetes_trees(tree: Path, tmp_path: Path) -> None:
    k3s_only = build_mirror(tmp_path / "k3s", K3S_VERSIONS, placeholder_k3s, kube_versions=())
    expected = files_under(k3s_only)
    full = files_under(tree)
    assert {name: full[name] for name in expected} == expected
    extra_roots = {name.split("/")[0] for name in full if name not in expected}
    assert extra_roots == {"dl.k8s.io", "pkgs.k8s.io", "github.com"}


def manifest_docs(tree: Path, name: str) -> dict[tuple[str, str], dict[str, Any]]:
    manifest = next(item for item in CNI_MANIFESTS if item.name == name)
    path = tree / "github.com" / manifest.path
    assert not list(path.parent.glob("*.sha256*")), "upstream publishes no checksum for it: neither does the lab"
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(path.read_text()) if doc}


def test_flannel_manifest_has_the_upstream_structure(tree: Path) -> None:
    assert (tree / "github.com/flannel-io/flannel/releases/download/v0.25.5/kube-flannel.yml").is_file()
    docs = manifest_docs(tree, "flannel")
    namespace = docs[("Namespace", "kube-flannel")]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert ("ServiceAccount", "flannel") in docs and ("ClusterRole", "flannel") in docs
    assert docs[("ClusterRoleBinding", "flannel")]["subjects"][0]["namespace"] == "kube-flannel"
    config = docs[("ConfigMap", "kube-flannel-cfg")]["data"]
    cni = json.loads(config["cni-conf.json"])
    assert cni["name"] == "cbr0" and [plugin["type"] for plugin in cni["plugins"]] == ["flannel", "portmap"]
    net = json.loads(config["net-conf.json"])
    assert net == {"Network": "10.244.0.0/16", "EnableNFTables": False, "Backend": {"Type": "vxlan"}}
    pod = docs[("DaemonSet", "kube-flannel-ds")]["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert {"operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    init = {container["name"]: container for container in pod["initContainers"]}
    assert init["install-cni-plugin"]["image"] == "ghcr.io/flannel-io/flannel-cni-plugin:v1.5.1-flannel2"
    assert init["install-cni"]["image"] == "ghcr.io/flannel-io/flannel:v0.25.5"
    assert init["install-cni"]["args"][-1] == "/etc/cni/net.d/10-flannel.conflist"
    (main,) = pod["containers"]
    assert main["name"] == "kube-flannel" and main["args"] == ["--ip-masq", "--kube-subnet-mgr"]


def test_calico_and_cilium_manifests(tree: Path) -> None:
    calico = manifest_docs(tree, "calico")
    assert "cni_network_config" in calico[("ConfigMap", "calico-config")]["data"]
    node = calico[("DaemonSet", "calico-node")]
    assert node["metadata"]["namespace"] == "kube-system"
    env = {item["name"] for item in node["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "CALICO_IPV4POOL_CIDR" not in env  # commented out, as upstream ships it
    text = (tree / "github.com/projectcalico/calico/releases/download/v3.28.1/calico.yaml").read_text()
    assert re.search(r"# - name: CALICO_IPV4POOL_CIDR\n\s+#\s+value: \"192\.168\.0\.0/16\"", text)
    assert ("Deployment", "calico-kube-controllers") in calico
    cilium = manifest_docs(tree, "cilium")
    assert "cluster-pool-ipv4-cidr" in cilium[("ConfigMap", "cilium-config")]["data"]
    assert ("DaemonSet", "cilium") in cilium and ("Deployment", "cilium-operator") in cilium
    assert (tree / "github.com/cilium/cilium/releases/download/v1.16.1/cilium.yaml").is_file()


def deb_field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "--field", str(deb), name], capture_output=True, text=True, check=True).stdout


def test_apt_repository_per_minor_is_indexed_and_signed(tree: Path, tmp_path: Path) -> None:
    for minor, version in ((30, "1.30.2-1.1"), (31, "1.31.1-1.1")):
        repo = tree / APT / f"v1.{minor}/deb"
        packages = (repo / "Packages").read_text()
        assert gzip.decompress((repo / "Packages.gz").read_bytes()).decode() == packages
        stanzas = [dict(re.findall(r"^(\S+): (.*)$", block, re.M)) for block in packages.split("\n\n")]
        assert len(stanzas) == 5 * len(KUBE_ARCHES)
        for stanza in stanzas:
            deb = repo / stanza["Filename"]
            assert int(stanza["Size"]) == deb.stat().st_size
            assert stanza["SHA256"] == hashlib.sha256(deb.read_bytes()).hexdigest()
            assert stanza["Architecture"] in DEB_ARCH.values()
        kubeadm = next(s for s in stanzas if s["Package"] == "kubeadm" and s["Architecture"] == "amd64")
        assert kubeadm["Version"] == version and kubeadm["Depends"] == f"cri-tools (>= 1.{minor}.0)"
        kubelet = next(s for s in stanzas if s["Package"] == "kubelet" and s["Architecture"] == "armhf")
        assert kubelet["Depends"] == "kubernetes-cni (>= 1.2.0)"
        release = (repo / "Release").read_text()
        for name in ("Packages", "Packages.gz"):
            data = (repo / name).read_bytes()
            assert f" {hashlib.sha256(data).hexdigest()} {len(data):>8} {name}\n" in release
        keyring = tmp_path / f"key{minor}.gpg"
        armored = (repo / "Release.key").read_text()
        assert armored.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        keyring.write_bytes(
            subprocess.run(["gpg", "--dearmor"], input=armored.encode(), capture_output=True, check=True).stdout
        )
        for args in (["InRelease"], ["Release.gpg", "Release"]):
            verify = subprocess.run(
                ["gpgv", "--keyring", str(keyring), *args], cwd=repo, capture_output=True, text=True, check=False
            )
            assert verify.returncode == 0, verify.stderr


def test_debs_wrap_the_binaries_with_the_unit_and_the_kubeadm_dropin(tree: Path, tmp_path: Path) -> None:
    repo = tree / APT / "v1.30/deb"
    binary = tree / "dl.k8s.io/release/v1.30.2/bin/linux/arm64/kubelet"
    for package in ("kubeadm", "kubelet", "kubectl", "cri-tools", "kubernetes-cni"):
        (deb,) = repo.glob(f"arm64/{package}_*_arm64.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path / "root")], check=True)
    root = tmp_path / "root"
    assert (root / "usr/bin/kubelet").read_bytes() == binary.read_bytes()
    assert "ExecStart=/usr/bin/kubelet\n" in (root / "usr/lib/systemd/system/kubelet.service").read_text()
    dropin = (root / "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf").read_text()
    assert "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env" in dropin
    assert "ExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS" in dropin
    assert (root / "etc/default/kubelet").read_text() == "KUBELET_EXTRA_ARGS=\n"
    assert (root / "opt/cni/bin/portmap").readlink() == Path("/usr/lib/cni/portmap")
    assert (root / "usr/bin/crictl").stat().st_mode & 0o111
    kubelet_deb = next(repo.glob("arm64/kubelet_*.deb"))
    assert deb_field(kubelet_deb, "Version").strip() == "1.30.2-1.1"


@pytest.fixture
def served(tree: Path) -> Iterator[int]:
    """The mirror server on a loopback port, serving the placeholder tree."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(MirrorHandler, directory=str(tree)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def fetch(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "path",
    [
        "/pkgs.k8s.io/core:/stable:/v1.30/deb/Release",
        "/pkgs.k8s.io/core%3A/stable%3A/v1.30/deb/Release",
        "/pkgs.k8s.io/core%3a/stable:/v1.30/deb/Release",
    ],
    ids=["raw-colon", "percent-3A", "mixed"],
)
def test_server_serves_paths_with_colons(served: int, tree: Path, path: str) -> None:
    status, body = fetch(served, path)
    assert status == 200
    assert body == (tree / APT / "v1.30/deb/Release").read_bytes()


@pytest.mark.parametrize("version", ["v1.28.4+k3s2", "v1.28.4%2Bk3s2", "v1.28.4%2bk3s2"])
def test_server_serves_paths_with_plus(served: int, tree: Path, version: str) -> None:
    status, body = fetch(served, f"/{version}/sha256sum-amd64.txt")
    assert status == 200 and body == (tree / "v1.28.4+k3s2/sha256sum-amd64.txt").read_bytes()


def test_server_answers_head_and_missing_files(served: int) -> None:
    status, body = fetch(served, "/dl.k8s.io/release/v1.30.2/bin/linux/arm/kubeadm.sha256", "HEAD")
    assert (status, body) == (200, b"")
    assert fetch(served, "/dl.k8s.io/release/v1.29.0/bin/linux/amd64/kubeadm")[0] == 404
    assert fetch(served, "/pkgs.k8s.io/core:/stable:/v1.29/deb/Release")[0] == 404


def test_image_recipe_tag_changes_with_the_package_list(monkeypatch: pytest.MonkeyPatch) -> None:
    for package in ("containerd", "runc", "containernetworking-plugins", "etcd-server", "etcd-client", "conntrack"):
        assert package in image.PACKAGES
    assert {"containerd.service", "etcd.service"} <= set(image.DISABLED_UNITS)
    before = image.image_tags("amd64")
    monkeypatch.setattr(image, "PACKAGES", image.PACKAGES[:-1])
    after = image.image_tags("amd64")
    assert before[0] == after[0] and before[1] != after[1]


def test_disable_units_removes_enablement_and_aliases_only(tmp_path: Path) -> None:
    units = tmp_path / "etc/systemd/system"
    wants = units / "multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "containerd.service").symlink_to("/lib/systemd/system/containerd.service")
    (wants / "ssh.service").symlink_to("/lib/systemd/system/ssh.service")
    (units / "etcd2.service").symlink_to("/lib/systemd/system/etcd.service")
    (units / "getty.target").symlink_to("/dev/null")
    removed = image.disable_units(units, ("containerd.service", "etcd.service"))
    assert sorted(removed) == ["etcd2.service", "multi-user.target.wants/containerd.service"]
    assert (wants / "ssh.service").is_symlink() and (units / "getty.target").is_symlink()


def fake_lab(mirror: bool = True) -> Lab:
    """A Lab object as Lab.load would make it, without any container behind it."""
    lab = Lab("unit", Path("/nonexistent/unit"), "plab-unit", "172.30.0.0/24")
    lab.hosts = {
        "server1": HostInfo(ip="172.30.0.10", arch="amd64", board=None),
        "agent1": HostInfo(ip="172.30.0.11", arch="amd64", board=None),
    }
    lab.mirror_url = "http://172.30.0.2:8080" if mirror else None
    return lab


KUBEADM_ENV = (
    "PROVISION_LAB_KUBEADM_RELEASE_URL",
    "PROVISION_LAB_KUBEADM_APT_URL",
    "PROVISION_LAB_KUBEADM_GITHUB_URL",
    "PROVISION_LAB_KUBEADM_VERSION",
    "PROVISION_LAB_KUBEADM_PACKAGE_SOURCE",
)


def test_kubeadm_inventory_points_at_the_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KUBEADM_ENV:
        monkeypatch.delenv(name, raising=False)
    inventory = lab_inventory(fake_lab(), ["server1"], ["agent1"], flavor="kubeadm")
    variables = inventory["all"]["vars"]
    assert {key: value for key, value in variables.items() if key.startswith(("kubeadm_", "provision_"))} == {
        "provision_cluster_name": "lab",
        "provision_flavor": "kubeadm",
        "kubeadm_version": "v1.30.2",
        "kubeadm_package_source": "binaries",
        "kubeadm_release_url": "http://172.30.0.2:8080/dl.k8s.io/release",
        "kubeadm_apt_url": "http://172.30.0.2:8080/pkgs.k8s.io/core:/stable:",
        "kubeadm_github_url": "http://172.30.0.2:8080/github.com",
    }
    assert not any(key.startswith("k3s_") for key in variables)
    assert set(inventory["all"]["children"]) == {"server", "agent"}


def test_kubeadm_inventory_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISION_LAB_KUBEADM_RELEASE_URL", "https://dl.k8s.io/release")
    monkeypatch.setenv("PROVISION_LAB_KUBEADM_APT_URL", "https://pkgs.k8s.io/core:/stable:")
    monkeypatch.setenv("PROVISION_LAB_KUBEADM_GITHUB_URL", "https://github.com")
    monkeypatch.setenv("PROVISION_LAB_KUBEADM_VERSION", "v1.31.1")
    monkeypatch.setenv("PROVISION_LAB_KUBEADM_PACKAGE_SOURCE", "apt")
    variables = lab_inventory(fake_lab(mirror=False), ["server1"], [], flavor="kubeadm")["all"]["vars"]
    assert variables["kubeadm_release_url"] == "https://dl.k8s.io/release"
    assert variables["kubeadm_apt_url"] == "https://pkgs.k8s.io/core:/stable:"
    assert variables["kubeadm_github_url"] == "https://github.com"
    assert (variables["kubeadm_version"], variables["kubeadm_package_source"]) == ("v1.31.1", "apt")


def test_k3s_inventory_is_unchanged_and_unknown_flavors_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PROVISION_LAB_RELEASE_URL", "PROVISION_LAB_CHANNEL_URL", "PROVISION_LAB_K3S_VERSION"):
        monkeypatch.delenv(name, raising=False)
    variables = lab_inventory(fake_lab(), ["server1"], ["agent1"])["all"]["vars"]
    assert variables["provision_flavor"] == "k3s" and variables["k3s_version"] == "v1.28.4+k3s2"
    assert variables["k3s_release_url"] == "http://172.30.0.2:8080"
    assert variables["k3s_channel_url"] == "http://172.30.0.2:8080/v1-release/channels"
    with pytest.raises(ValueError, match="unknown flavor"):
        lab_inventory(fake_lab(), ["server1"], [], flavor="k0s")


def test_kubeadm_specs_size_control_planes_for_kubeadm_preflight() -> None:
    specs = kubeadm_specs(servers=1, agents=2)
    assert [spec.name for spec in specs] == ["server1", "agent1", "agent2"]
    assert (specs[0].cpus, specs[0].memory_mb) == (2, 2048)
    assert all(spec.containerd_volume for spec in specs)
    assert specs[1].memory_mb is None


def test_signing_key_is_made_once_and_reused(tmp_path: Path) -> None:
    key = SigningKey(tmp_path / "home")
    with key.session():
        first = key.ensure()
    again = SigningKey(tmp_path / "home")
    with again.session():
        assert again.ensure() == first


def test_crictl_archives_like_cri_tools_releases_for_each_minor_the_role_installs(tree: Path) -> None:
    import tarfile  # noqa: PLC0415 - only this test opens archives

    for crictl_version in ("v1.30.1", "v1.31.1"):  # the kubeadm role's choice for 1.30 and 1.31
        folder = tree / "github.com/kubernetes-sigs/cri-tools/releases/download" / crictl_version
        for arch in KUBE_ARCHES:
            archive = folder / f"crictl-{crictl_version}-linux-{arch}.tar.gz"
            with tarfile.open(archive) as tar:
                assert tar.getnames() == ["crictl"]
                member = tar.getmember("crictl")
                assert member.mode == 0o755 and member.uid == 0
                assert tar.extractfile(member).read() == f"#!/bin/sh\necho crictl {crictl_version} {arch}\n".encode()
            digest = (folder / f"{archive.name}.sha256").read_text()
            assert digest == hashlib.sha256(archive.read_bytes()).hexdigest()
