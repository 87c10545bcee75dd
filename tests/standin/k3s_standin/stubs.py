"""``crictl`` and ``ctr``: the stand-in runs no containers, so these print empty but well-formed output.

``ctr images import FILE`` (air-gap image loading) checks that the file exists and
reports it as imported, so air-gap flows can be exercised without a container runtime.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from . import _buildinfo


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
        out.write("IMAGE               TAG                 IMAGE ID            SIZE\n")
    elif cmd == "info":
        out.write('{"status": {"conditions": [{"type": "RuntimeReady", "status": true}]}}\n')
    elif cmd in ("", "help", "--help", "-h"):
        out.write("crictl (k3s stand-in): version, ps, pods, images, info print empty results\n")
    else:
        sys.stderr.write(f'crictl: "{cmd}" is not modelled by the k3s stand-in\n')
        return 1
    return 0


def ctr(args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    out = sys.stdout
    if words[:1] == ["version"]:
        out.write(f"Client:\n  Version:  v1.7.7-k3s1\n  Revision:\n  Go version: {_buildinfo.GO_VERSION}\n")
        return 0
    if words[:2] in (["images", "import"], ["image", "import"], ["i", "import"]):
        for name in words[2:]:
            path = Path(name)
            if not path.is_file():
                sys.stderr.write(f"ctr: open {name}: no such file or directory\n")
                return 1
            digest = hashlib.sha256(path.read_bytes()[:1 << 20]).hexdigest()
            out.write(f"unpacking {path.name} (sha256:{digest})...done\n")
        return 0
    if words[:2] in (["images", "ls"], ["images", "list"], ["image", "ls"], ["i", "ls"]):
        out.write("REF TYPE DIGEST SIZE PLATFORMS LABELS\n")
        return 0
    if words[:2] in (["containers", "ls"], ["c", "ls"], ["containers", "list"]):
        out.write("CONTAINER    IMAGE    RUNTIME\n")
        return 0
    sys.stderr.write(f"ctr: {' '.join(words) or '(no command)'} is not modelled by the k3s stand-in\n")
    return 1
