"""The Kubernetes part of the lab mirror: what the kubeadm flavor downloads, each under a host-named prefix.

Layout (relative to the mirror root, beside the K3s release tree; see tests/standin/kubeadm_contract.md)::

    dl.k8s.io/release/<v>/bin/linux/<arch>/{kubeadm,kubelet,kubectl}   stand-ins (tests/standin/build_kube.py)
    dl.k8s.io/release/<v>/bin/linux/<arch>/<tool>.sha256              the bare lowercase hex digest, no name
    dl.k8s.io/release/stable-1.<minor>.txt, stable-1.txt, stable.txt  one version, no line end (as upstream)
    pkgs.k8s.io/core:/stable:/v1.<minor>/deb/...                      a signed flat apt repository (apt_repo.py)
    github.com/flannel-io/flannel/releases/download/v0.25.5/kube-flannel.yml
    github.com/projectcalico/calico/releases/download/v3.28.1/calico.yaml
    github.com/cilium/cilium/releases/download/v1.16.1/cilium.yaml

The CNI manifests are the lab's own (tests/lab/cni/), with the object structure of the upstream assets. Upstream
publishes no checksum beside kube-flannel.yml or calico.yaml, so neither does the lab. Cilium publishes no manifest at
all, only a Helm chart: the lab serves a pre-rendered manifest at the path a manifest release asset would have, so the
product can fetch every CNI the same way (with real upstream, point ``kubeadm_github_url`` at a mirror holding such a
rendering).

The binaries come from a builder ``(tool, version, arch, dest) -> Path``; the default one is the stand-in builder of
tests/standin (another helper's), imported only when a mirror is built. Unit tests inject a placeholder.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

KUBE_VERSIONS: tuple[str, ...] = ("v1.30.2", "v1.31.1")
KUBE_ARCHES: tuple[str, ...] = ("amd64", "arm64", "arm")
KUBE_TOOLS: tuple[str, ...] = ("kubeadm", "kubelet", "kubectl")

#: Mirror paths of the upstream hosts (the product's URL variables point at <mirror>/<prefix>).
RELEASE_PREFIX = "dl.k8s.io/release"
APT_PREFIX = "pkgs.k8s.io/core:/stable:"
GITHUB_PREFIX = "github.com"

CNI_SOURCES = Path(__file__).with_name("cni")

KubeBuilder = Callable[[str, str, str, Path], Path]


@dataclass(frozen=True)
class CniManifest:
    """A CNI's release manifest: where upstream publishes it and which lab file stands for it."""

    name: str
    repo: str
    version: str
    asset: str

    @property
    def path(self) -> str:
        """Path under the github.com prefix, as on GitHub's release download server."""
        return f"{self.repo}/releases/download/{self.version}/{self.asset}"

    @property
    def source(self) -> Path:
        return CNI_SOURCES / self.asset


CNI_MANIFESTS: tuple[CniManifest, ...] = (
    CniManifest("flannel", "flannel-io/flannel", "v0.25.5", "kube-flannel.yml"),
    CniManifest("calico", "projectcalico/calico", "v3.28.1", "calico.yaml"),
    CniManifest("cilium", "cilium/cilium", "v1.16.1", "cilium.yaml"),
)


def default_kube_builder() -> KubeBuilder:
    """``build_kube_standin`` from tests/standin (owned by another helper), looked up only when needed."""
    try:
        from tests.standin.build_kube import build_kube_standin  # noqa: PLC0415 - lazy: another helper's module
    except ImportError:
        try:
            from tests.standin.build import build_kube_standin  # type: ignore[attr-defined,no-redef]  # noqa: PLC0415
        except ImportError as error:
            raise RuntimeError(
                "no kubeadm/kubelet/kubectl stand-in builder: tests/standin/build_kube.py (or build.py) must define "
                "build_kube_standin(tool, version, arch, dest); pass kube_versions=() to build a K3s-only mirror"
            ) from error
    return build_kube_standin


def minor_of(version: str) -> int:
    """30 for 'v1.30.2'."""
    match = re.fullmatch(r"v1\.(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"not a Kubernetes release version: {version!r} (expected v1.MINOR.PATCH)")
    return int(match.group(1))


def patch_key(version: str) -> tuple[int, ...]:
    return tuple(int(number) for number in re.findall(r"\d+", version))


def stable_markers(versions: Sequence[str]) -> dict[str, str]:
    """stable.txt and stable-1.txt name the newest version; stable-1.<minor>.txt the newest patch of each minor."""
    ordered = sorted(versions, key=patch_key)
    markers = {"stable.txt": ordered[-1], "stable-1.txt": ordered[-1]}
    for version in ordered:
        markers[f"stable-1.{minor_of(version)}.txt"] = version
    return markers


def build_kube_tree(
    root: Path,
    versions: Sequence[str] = KUBE_VERSIONS,
    builder: KubeBuilder | None = None,
    *,
    apt: bool = True,
    gpg_home: Path | None = None,
) -> None:
    """Add the dl.k8s.io, github.com (CNI manifests) and, with ``apt``, pkgs.k8s.io trees under ``root``."""
    if not versions:
        return
    build = builder or default_kube_builder()
    release = root / RELEASE_PREFIX
    for version in versions:
        publish_release(release, version, build)
    for name, version in stable_markers(versions).items():
        (release / name).write_text(version, encoding="utf-8")  # upstream's markers have no line end
    publish_cni_manifests(root / GITHUB_PREFIX)
    publish_cri_tools(root / GITHUB_PREFIX, versions, build)
    if apt:
        from tests.lab.apt_repo import publish_apt_repos  # noqa: PLC0415 - needs dpkg-deb and gpg; only when asked

        publish_apt_repos(root / APT_PREFIX, release, versions, gpg_home=gpg_home)


def release_dir(release: Path, version: str, arch: str) -> Path:
    return release / version / "bin" / "linux" / arch


def publish_release(release: Path, version: str, build: KubeBuilder) -> None:
    """kubeadm, kubelet, kubectl and their ``.sha256`` for every lab arch of one version."""
    for arch in KUBE_ARCHES:
        folder = release_dir(release, version, arch)
        folder.mkdir(parents=True, exist_ok=True)
        for tool in KUBE_TOOLS:
            target = folder / tool
            built = build(tool, version, arch, target)
            if built != target:
                shutil.copyfile(built, target)
            target.chmod(0o755)
            # dl.k8s.io's .sha256 holds only the digest (no file name, no line end): the installer docs check it with
            # echo "$(cat kubectl.sha256)  kubectl" | sha256sum --check
            digest = hashlib.sha256(target.read_bytes()).hexdigest()
            (folder / f"{tool}.sha256").write_text(digest, encoding="utf-8")


def crictl_versions() -> dict[int, str]:
    """cri-tools release per Kubernetes minor, as the kubeadm role picks it (read from the role, not restated)."""
    role_vars = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "kubeadm" / "vars" / "main.yml"
    table = yaml.safe_load(role_vars.read_text(encoding="utf-8"))["_kubeadm_crictl_versions"]
    return {int(minor): str(version) for minor, version in table.items()}


def publish_cri_tools(github: Path, versions: Sequence[str], build: KubeBuilder) -> None:
    """crictl release archives like kubernetes-sigs/cri-tools publishes them: crictl-<v>-linux-<arch>.tar.gz holding
    the one file `crictl`, and `<archive>.sha256` (bare hex digest), for the minors of the lab's versions."""
    table = crictl_versions()
    for crictl_version in sorted({table[minor_of(v)] for v in versions if minor_of(v) in table}):
        folder = github / "kubernetes-sigs/cri-tools/releases/download" / crictl_version
        folder.mkdir(parents=True, exist_ok=True)
        for arch in KUBE_ARCHES:
            with tempfile.TemporaryDirectory() as scratch:
                binary = build("crictl", crictl_version, arch, Path(scratch) / "crictl")
                archive = folder / f"crictl-{crictl_version}-linux-{arch}.tar.gz"
                with archive.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
                        tarfile.open(fileobj=gz, mode="w") as tar:
                    info = tar.gettarinfo(str(binary), arcname="crictl")
                    info.uid = info.gid = 0
                    info.uname = info.gname = "root"
                    info.mtime = 0
                    info.mode = 0o755
                    with Path(binary).open("rb") as handle:
                        tar.addfile(info, handle)
            digest = hashlib.sha256(archive.read_bytes()).hexdigest()
            (folder / f"{archive.name}.sha256").write_text(digest, encoding="utf-8")


def publish_cni_manifests(github: Path) -> None:
    """The lab's CNI manifests at their release-asset paths (no checksum files: upstream publishes none)."""
    for manifest in CNI_MANIFESTS:
        target = github / manifest.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(manifest.source, target)
