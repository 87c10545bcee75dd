"""Air-gap image archives and the image store that ``crictl images`` / ``ctr images ls`` show.

Real K3s, once its containerd runs and before the kubelet starts, imports every image archive in
``<data-dir>/agent/images/`` (``.tar``, ``.tar.gz``/``.tgz``, ``.tar.zst``/``.tzst``, ...) into containerd's
``k8s.io`` namespace and pins the images. A broken archive is logged and skipped; the node still starts.

The stand-in runs no containerd. It reads the same archives (``docker save`` layout: ``manifest.json`` naming
each image's config and layers), computes each image's ID the way containerd does (sha256 of the config blob)
and records the images in ``<data-dir>/agent/containerd/standin-images.json``. That record survives restarts
like containerd's content store does; an image already known under a tag is replaced by a newer import.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import log

#: File suffix -> how to unpack it (None: plain tar). What the stand-in cannot unpack, k3s could (bz2, lz4):
#: those are reported as not modelled rather than silently skipped.
_COMPRESSION: dict[str, str | None] = {
    ".tar": None,
    ".tar.gz": "gzip",
    ".tgz": "gzip",
    ".tar.zst": "zstd",
    ".tzst": "zstd",
    ".tar.bz2": "bzip2",
    ".tbz": "bzip2",
    ".tar.lz4": "lz4",
}
STORE_NAME = "standin-images.json"


class ImageImportError(Exception):
    """An archive that containerd would refuse."""


@dataclass(frozen=True)
class Image:
    ref: str
    image_id: str
    size: int
    source: str

    def as_json(self) -> dict[str, object]:
        return {"id": self.image_id, "size": self.size, "source": self.source, "pinned": True}


def store_path(data_dir: Path) -> Path:
    return Path(data_dir) / "agent" / "containerd" / STORE_NAME


def load_store(data_dir: Path) -> dict[str, dict[str, object]]:
    try:
        return json.loads(store_path(data_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def save_store(data_dir: Path, images: dict[str, dict[str, object]]) -> None:
    path = store_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(images, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def compression_of(path: Path) -> str | None:
    """The archive's compression, or raise KeyError for a file k3s does not import."""
    name = path.name
    for suffix in sorted(_COMPRESSION, key=len, reverse=True):
        if name.endswith(suffix):
            return _COMPRESSION[suffix]
    raise KeyError(name)


def read_archive(path: Path, method: str | None = None, *, by_name: bool = True) -> list[Image]:
    """The images a ``docker save`` archive holds; ImageImportError when containerd would refuse it.

    ``by_name``: pick the decompression from the file name as k3s does; otherwise use ``method``.
    """
    if by_name:
        method = compression_of(path)
    raw = _unpack(path.read_bytes(), method)
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
            members = {member.name: member for member in archive.getmembers()}
            manifest = _json_member(archive, members, "manifest.json")
            images = []
            for entry in manifest:
                config = _member_bytes(archive, members, entry.get("Config", ""))
                size = sum(members[layer].size for layer in entry.get("Layers", []) if layer in members)
                image_id = "sha256:" + hashlib.sha256(config).hexdigest()
                refs = entry.get("RepoTags") or []
                images.extend(Image(ref, image_id, size + len(config), path.name) for ref in refs)
            return images
    except tarfile.TarError as exc:
        raise ImageImportError(f"unexpected EOF or not a tar archive: {exc}") from None


def _unpack(raw: bytes, method: str | None) -> bytes:
    if method == "gzip":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ImageImportError(f"gzip: invalid header or data: {exc}") from None
    if method == "zstd":
        if not shutil.which("zstd"):
            raise ImageImportError("zstd archives need the zstd command on this host (stand-in limitation)")
        done = subprocess.run(["zstd", "-q", "-d", "-c"], input=raw, capture_output=True, check=False)
        if done.returncode != 0:
            raise ImageImportError(f"zstd: invalid input: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout
    if method is not None:
        raise ImageImportError(f"{method} archives are not modelled by the k3s stand-in")
    return raw


def _json_member(archive: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> list[dict]:
    try:
        value = json.loads(_member_bytes(archive, members, name))
    except ValueError as exc:
        raise ImageImportError(f"{name}: {exc}") from None
    if not isinstance(value, list):
        raise ImageImportError(f"{name}: not a docker image manifest list")
    return value


def _member_bytes(archive: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> bytes:
    member = members.get(name)
    handle = archive.extractfile(member) if member is not None else None
    if handle is None:
        raise ImageImportError(f"{name}: not found in archive (not a docker or OCI image archive)")
    return handle.read()


def preload(data_dir: Path) -> int:
    """Import every archive in ``<data-dir>/agent/images``, as k3s does at agent start. Returns images imported."""
    images_dir = Path(data_dir) / "agent" / "images"
    if not images_dir.is_dir():
        return 0
    store = load_store(data_dir)
    count = 0
    for path in sorted(p for p in images_dir.iterdir() if p.is_file()):
        try:
            compression_of(path)
        except KeyError:
            continue  # k3s ignores files it has no importer for
        started = time.monotonic()
        log.info(f"Importing images from {path}")
        try:
            found = read_archive(path)
        except (ImageImportError, OSError) as exc:
            log.error(f"Error encountered while importing {path}: {exc}")
            continue
        for image in found:
            store[image.ref] = image.as_json()
        count += len(found)
        log.info(f"Imported images from {path} in {time.monotonic() - started:.3f}s")
    if count:
        save_store(data_dir, store)
    return count


def import_files(data_dir: Path, paths: list[Path]) -> list[Image]:
    """``ctr images import``: the same reading into the same store. ctr detects gzip by content and reads
    anything else as a plain tar. Raises ImageImportError or OSError."""
    imported: list[Image] = []
    for path in paths:
        method = "gzip" if path.read_bytes()[:2] == b"\x1f\x8b" else None
        imported.extend(read_archive(path, method, by_name=False))
    store = load_store(data_dir)
    for image in imported:
        store[image.ref] = image.as_json()
    save_store(data_dir, store)
    return imported


def listing(data_dir: Path) -> list[Image]:
    store = load_store(data_dir)
    return [
        Image(ref, str(info.get("id", "")), int(info.get("size", 0)), str(info.get("source", "")))
        for ref, info in sorted(store.items())
    ]


def human_size(size: int) -> str:
    """crictl's sizes: decimal units with three significant digits (``1.02kB``, ``16.1MB``)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.3g}{unit}"
        value /= 1000
    return f"{size}B"
