"""The kubeadm flavor's version grammar: the one place it is written.

A Kubernetes release is v1.MINOR.PATCH (v1.30.2); release candidates and builds (v1.31.0-rc.1, +build) are not
installed by provision. The oldest minor provision installs is OLDEST_MINOR (pkgs.k8s.io starts at v1.24, kubeadm's
config API v1beta3 covers it; older releases are out of support). Read by the kubeadm role (filters below) and by the
provision CLI (inventory check, JSON Schema), which loads this file by path. Standard library only, on purpose.
"""

from __future__ import annotations

import re
from typing import Any

#: The version inside a longer text (`kubeadm version -o short`, `kubelet --version`, a node's kubeletVersion).
VERSION_BODY = r"v1\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
#: A whole kubeadm_version value.
VERSION = re.compile(rf"^{VERSION_BODY}$")
#: How the form is shown in messages.
VERSION_FORM = "v1.MINOR.PATCH, e.g. v1.30.2"
OLDEST_MINOR = 28


def kubeadm_version_valid(text: object) -> bool:
    """Whether a value is exactly a Kubernetes release name."""
    return isinstance(text, str) and VERSION.match(text) is not None


def kubeadm_minor(text: object) -> int:
    """The minor of a Kubernetes release name; ValueError for anything else."""
    match = VERSION.match(str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes release ({VERSION_FORM})")
    return int(match.group(1))


def version_in(text: str) -> str:
    """The first Kubernetes version found in a command's output, or ''."""
    match = re.search(VERSION_BODY, text or "")
    return match.group(0) if match else ""


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"kubeadm_minor": kubeadm_minor, "kubeadm_version_in": version_in}
