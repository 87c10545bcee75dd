"""Build the lab's release mirror: the K3s GitHub release download tree, filled with stand-ins, plus the Kubernetes
trees the kubeadm flavor downloads (kube_mirror.py).

Layout (the root of the tree is the root of the mirror URL)::

    <version>/k3s, k3s-arm64, k3s-armhf                 stand-in executables (tests/standin)
    <version>/sha256sum-amd64.txt, -arm64.txt, -arm.txt  "<sha256>  <asset>" per asset of that arch
    <version>/k3s-airgap-images-<arch>.tar[.gz|.zst]     small real docker-save archives
    <version>/k3s-airgap-images-<arch>.sha256sum
    <version>/k3s-images.txt                             images the air-gap archives hold
    v1-release/channels/<stable|latest|v1.28|v1.29>      the version a channel points to
    dl.k8s.io/release/...                                kubeadm/kubelet/kubectl stand-ins, .sha256, stable*.txt
    pkgs.k8s.io/core:/stable:/v1.<minor>/deb/...         signed flat apt repositories (apt_repo.py)
    github.com/<org>/<repo>/releases/download/<v>/...    the lab's flannel, Calico and Cilium manifests; Cilium
                                                         has no upstream manifest (only a Helm chart): the lab
                                                         publishes a pre-rendered one where an asset would be

The mirror server (mirror_server.py) turns the channel files into update.k3s.io-style redirects.
Everything but the apt signatures is deterministic: the same versions and stand-in sources give the same bytes and
sums.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.lab.kube_mirror import KUBE_VERSIONS, KubeBuilder, build_kube_tree

DEFAULT_VERSIONS = ("v1.28.4+k3s2", "v1.29.0+k3s1")

#: arch -> (binary asset, checksum file suffix); as the official installer maps `uname -m`.
ASSETS: dict[str, tuple[str, str]] = {
    "amd64": ("k3s", "amd64"),
    "arm64": ("k3s-arm64", "arm64"),
    "arm": ("k3s-armhf", "arm"),
}

#: Images a k3s release's air-gap archive carries (names only; contents are stand-ins).
AIRGAP_IMAGES = (
    "docker.io/rancher/klipper-helm:v0.8.2-build20230815",
    "docker.io/rancher/klipper-lb:v0.4.4",
    "docker.io/rancher/local-path-provisioner:v0.0.24",
    "docker.io/rancher/mirrored-coredns-coredns:1.10.1",
    "docker.io/rancher/mirrored-library-busybox:1.36.1",
    "docker.io/rancher/mirrored-library-traefik:2.10.5",
    "docker.io/rancher/mirrored-metrics-server:v0.6.3",
    "docker.io/rancher/mirrored-pause:3.6",
)

Builder = Callable[[str, str, Path], Path]


def default_builder() -> Builder:
    """The stand-in builder from tests/standin (owned by another helper)."""
    from tests.standin.build import build_standin  # noqa: PLC0415 - lazy: the stand-in is another helper's package

    return build_standin


def channels_for(versions: Sequence[str]) -> dict[str, str]:
    """stable = latest = newest version; v1.MM = newest patch of each minor."""
    ordered = sorted(versions, key=version_key)
    channels = {"stable": ordered[-1], "latest": ordered[-1]}
    for version in ordered:
        major, minor = version_key(version)[:2]
        channels[f"v{major}.{minor}"] = version
    return channels


def version_key(version: str) -> tuple[int, ...]:
    """Sortable numbers of 'v1.28.4+k3s2' -> (1, 28, 4, 2)."""
    return tuple(int(number) for number in re.findall(r"\d+", version))


def build_mirror(
    dest: Path,
    versions: Sequence[str] = DEFAULT_VERSIONS,
    builder: Builder | None = None,
    *,
    kube_versions: Sequence[str] = KUBE_VERSIONS,
    kube_builder: KubeBuilder | None = None,
    apt: bool = True,
    gpg_home: Path | None = None,
) -> Path:
    """Fill ``dest`` with the K3s release tree for ``versions`` and the Kubernetes trees for ``kube_versions``
    (none with ``kube_versions=()``; no apt repositories with ``apt=False``), and return ``dest``."""
    build = builder or default_builder()
    dest.mkdir(parents=True, exist_ok=True)
    for version in versions:
        publish_version(dest / version, version, build)
    channel_dir = dest / "v1-release" / "channels"
    channel_dir.mkdir(parents=True, exist_ok=True)
    for name, version in channels_for(versions).items():
        (channel_dir / name).write_text(version + "\n", encoding="utf-8")
    build_kube_tree(dest, kube_versions, kube_builder, apt=apt, gpg_home=gpg_home)
    return dest


def publish_version(folder: Path, version: str, build: Builder) -> None:
    """One release: binaries, air-gap archives, checksum files."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "k3s-images.txt").write_text("\n".join(AIRGAP_IMAGES) + "\n", encoding="utf-8")
    for arch, (asset, suffix) in ASSETS.items():
        built = build(version, arch, folder / asset)
        if built != folder / asset:
            shutil.copyfile(built, folder / asset)
        (folder / asset).chmod(0o755)
        airgap = write_airgap_archives(folder, version, arch)
        write_sums(folder / f"k3s-airgap-images-{suffix}.sha256sum", folder, airgap)
        write_sums(folder / f"sha256sum-{suffix}.txt", folder, [asset, *airgap, "k3s-images.txt"])


def write_sums(path: Path, folder: Path, names: Sequence[str]) -> None:
    """``sha256sum`` format: ``<hex>  <name>`` per line."""
    lines = [f"{sha256_file(folder / name)}  {name}" for name in names]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_airgap_archives(folder: Path, version: str, arch: str) -> list[str]:
    """The .tar, .tar.gz and (when zstd is installed) .tar.zst air-gap archives; returns their names."""
    base = f"k3s-airgap-images-{arch}.tar"
    raw = docker_save_archive(AIRGAP_IMAGES, version, arch)
    (folder / base).write_bytes(raw)
    names = [base]
    with (
        (folder / f"{base}.gz").open("wb") as handle,
        gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0) as compressed,
    ):
        compressed.write(raw)
    names.append(f"{base}.gz")
    if shutil.which("zstd"):
        zst = subprocess.run(["zstd", "-q", "-3", "-c"], input=raw, capture_output=True, check=True).stdout
        (folder / f"{base}.zst").write_bytes(zst)
        names.append(f"{base}.zst")
    return names


def docker_save_archive(images: Sequence[str], version: str, arch: str) -> bytes:
    """A minimal but valid `docker save` archive: one tiny layer and one config per image.

    containerd's and docker's importers accept it; what matters for the product is that the file
    exists, has the right name, checksum and `manifest.json` naming the images.
    """
    buffer = io.BytesIO()
    manifest = []
    repositories: dict[str, dict[str, str]] = {}
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for image in images:
            layer = layer_tar(f"stand-in image {image} for k3s {version} ({arch})\n".encode())
            layer_id = hashlib.sha256(layer).hexdigest()
            config = json.dumps(
                {
                    "architecture": arch,
                    "os": "linux",
                    "config": {"Cmd": ["/standin-image"], "Labels": {"provision.lab.standin": "1"}},
                    "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_id}"]},
                    "history": [{"created_by": "provision lab stand-in"}],
                },
                sort_keys=True,
            ).encode()
            config_id = hashlib.sha256(config).hexdigest()
            add_member(archive, f"{layer_id}/", None)
            add_member(archive, f"{layer_id}/VERSION", b"1.0")
            add_member(archive, f"{layer_id}/layer.tar", layer)
            add_member(archive, f"{config_id}.json", config)
            manifest.append({"Config": f"{config_id}.json", "RepoTags": [image], "Layers": [f"{layer_id}/layer.tar"]})
            repo, _, tag = image.rpartition(":")
            repositories.setdefault(repo, {})[tag] = layer_id
        add_member(archive, "manifest.json", json.dumps(manifest, sort_keys=True).encode())
        add_member(archive, "repositories", json.dumps(repositories, sort_keys=True).encode())
    return buffer.getvalue()


def layer_tar(content: bytes) -> bytes:
    """A one-file filesystem layer."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as layer:
        add_member(layer, "standin-image", content)
    return buffer.getvalue()


def add_member(archive: tarfile.TarFile, name: str, content: bytes | None) -> None:
    """Add a file (or, with ``content=None``, a directory) with fixed owner and time, for determinism."""
    info = tarfile.TarInfo(name.rstrip("/"))
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    if content is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(info)
    else:
        info.size, info.mode = len(content), 0o644
        archive.addfile(info, io.BytesIO(content))
