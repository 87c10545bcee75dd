"""``crictl`` and ``ctr``: the stand-in runs no containers, so containers and pods are always empty.

Images are modelled (module ``images``): the air-gap archives k3s imported at start and those loaded with
``ctr images import FILE`` are listed by ``crictl images`` and ``ctr images ls``. Both read the store of the
default data dir, as the real tools reach the containerd of the default data dir.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import _buildinfo, images
from .config import DEFAULT_DATA_DIR


def crictl(args: list[str]) -> int:
    cmd = next((a for a in args if not a.startswith("-")), "")
    out = sys.stdout
    if cmd == "version":
        out.write("Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  v1.7.7-k3s1\nRuntimeApiVersion:  v1\n")
    elif cmd == "ps":
        out.write("CONTAINER           IMAGE               CREATED             STATE               NAME                ATTEMPT             POD ID              POD\n")
    elif cmd == "pods":
        out.write("POD ID              CREATED             STATE               NAME                NAMESPACE           ATTEMPT             RUNTIME\n")
    elif cmd in ("images", "image", "img"):
        _crictl_images(out, quiet="-q" in args or "--quiet" in args)
    elif cmd == "info":
        out.write('{"status": {"conditions": [{"type": "RuntimeReady", "status": true}]}}\n')
    elif cmd in ("", "help", "--help", "-h"):
        out.write("crictl (k3s stand-in): version, ps, pods, images, info print empty results but images\n")
    else:
        sys.stderr.write(f'crictl: "{cmd}" is not modelled by the k3s stand-in\n')
        return 1
    return 0


def ctr(args: list[str]) -> int:  # noqa: PLR0911 - one return per subcommand
    words = [a for a in args if not a.startswith("-")]
    out = sys.stdout
    if words[:1] == ["version"]:
        out.write(f"Client:\n  Version:  v1.7.7-k3s1\n  Revision:\n  Go version: {_buildinfo.GO_VERSION}\n")
        return 0
    if words[:2] in (["images", "import"], ["image", "import"], ["i", "import"]):
        paths = [Path(name) for name in words[2:]]
        for path in paths:
            if not path.is_file():
                sys.stderr.write(f"ctr: open {path}: no such file or directory\n")
                return 1
        try:
            found = images.import_files(Path(DEFAULT_DATA_DIR), paths)
        except (images.ImageImportError, OSError) as exc:
            sys.stderr.write(f"ctr: {exc}\n")
            return 1
        for image in found:
            out.write(f"unpacking {image.ref} ({image.image_id})...done\n")
        return 0
    if words[:2] in (["images", "ls"], ["images", "list"], ["image", "ls"], ["i", "ls"]):
        quiet = "-q" in args or "--quiet" in args
        if not quiet:
            out.write("REF TYPE DIGEST SIZE PLATFORMS LABELS\n")
        platform = f"linux/{_buildinfo.ARCH or 'amd64'}"
        for image in images.listing(Path(DEFAULT_DATA_DIR)):
            size = images.human_size(image.size)
            out.write(f"{image.ref}\n" if quiet else (
                f"{image.ref} application/vnd.docker.distribution.manifest.v2+json {image.image_id} "
                f"{size} {platform} io.cri-containerd.pinned=pinned\n"))
        return 0
    if words[:2] in (["containers", "ls"], ["c", "ls"], ["containers", "list"]):
        out.write("CONTAINER    IMAGE    RUNTIME\n")
        return 0
    sys.stderr.write(f"ctr: {' '.join(words) or '(no command)'} is not modelled by the k3s stand-in\n")
    return 1


def _crictl_images(out, *, quiet: bool) -> None:
    listed = images.listing(Path(DEFAULT_DATA_DIR))
    if quiet:
        out.writelines(f"{image.image_id}\n" for image in listed)
        return
    rows = [("IMAGE", "TAG", "IMAGE ID", "SIZE")]
    for image in listed:
        repo, _, tag = image.ref.rpartition(":")
        rows.append((repo, tag, image.image_id.removeprefix("sha256:")[:13], images.human_size(image.size)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        out.write("   ".join([*cells, row[3]]) + "\n")
