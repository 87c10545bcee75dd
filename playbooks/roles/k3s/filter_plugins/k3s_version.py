"""The K3s version grammar: the one place it is written.

A K3s release is vMAJOR.MINOR.PATCH+k3sBUILD (v1.28.4+k3s2): the Kubernetes version it packages plus K3s's build of
it. Release candidates (v1.30.0-rc1+k3s1) are not installed by provision: every reader refuses them alike.
Read by this role (filters below), by the k3s_upgrade role's rules file and by the provision CLI (inventory check,
JSON Schema, upgrade plan), which load this file by path. Standard library only, on purpose.
"""

from __future__ import annotations

import re
from typing import Any

#: The version inside a longer text (`k3s --version` output, a node's kubeletVersion).
VERSION_BODY = r"v(\d+)\.(\d+)\.(\d+)\+k3s(\d+)"
#: A whole k3s_version value.
VERSION = re.compile(rf"^{VERSION_BODY}$")
#: How the form is shown in messages.
VERSION_FORM = "vMAJOR.MINOR.PATCH+k3sN, e.g. v1.28.4+k3s2"


def version_key(text: str) -> list[int]:
    """[major, minor, patch, build] of the first K3s version in `text`; [] if there is none."""
    match = re.search(VERSION_BODY, text or "")
    return [int(g) for g in match.groups()] if match else []


def k3s_version_valid(text: object) -> bool:
    """Whether a value is exactly a K3s release name."""
    return isinstance(text, str) and VERSION.match(text) is not None


def k3s_version_in(text: object) -> str:
    """The first K3s release name inside `text` (e.g. `k3s --version` output), or ''."""
    match = re.search(VERSION_BODY, text if isinstance(text, str) else "")
    return match.group(0) if match else ""


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"k3s_version_valid": k3s_version_valid, "k3s_version_in": k3s_version_in}
