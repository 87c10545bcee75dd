"""The architecture table: which machines K3s is released for, under which names.

Written once, in the k3s role's vars (`_k3s_arch_map`, `_k3s_arch_refused`, `_k3s_arch_inventory_names`,
`_k3s_asset_map`), which the role uses to pick the binary; the CLI reads the same file for the inventory check, the
SSH probe and the JSON Schema. Three vocabularies meet here:
    uname -m      what a host reports (aarch64, armv7l, ...)
    release arch  K3s's name (amd64, arm64, arm, s390x)
    inventory     provision_hardware.arch (amd64, arm64, armhf, s390x): `armhf` is K3s's `arm`
"""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from provisioner.paths import role_file


@cache
def _table() -> dict[str, Any]:
    data = yaml.safe_load(role_file("k3s", "vars", "main.yml").read_text(encoding="utf-8"))
    return {key: data[key] for key in ("_k3s_arch_map", "_k3s_arch_refused", "_k3s_arch_inventory_names",
                                       "_k3s_asset_map")}


def release_arches() -> tuple[str, ...]:
    """K3s's release architectures (those with a binary asset)."""
    return tuple(_table()["_k3s_asset_map"])


def release_arch(uname_machine: str) -> str | None:
    """K3s's architecture for a `uname -m`, or None when K3s has no build for it."""
    found = _table()["_k3s_arch_map"].get(uname_machine)
    return str(found) if found else None


def refused_reason(uname_machine: str) -> str | None:
    """Why a machine K3s looks as if it could run (e.g. armv6l) cannot, or None."""
    reason = _table()["_k3s_arch_refused"].get(uname_machine)
    return str(reason) if reason else None


def inventory_name(arch: str) -> str:
    """provision_hardware.arch's name for a release architecture (armhf for arm)."""
    return str(_table()["_k3s_arch_inventory_names"].get(arch, arch))


def inventory_arches() -> tuple[str, ...]:
    """The values provision_hardware.arch takes."""
    return tuple(inventory_name(arch) for arch in release_arches())


def inventory_aliases() -> dict[str, str]:
    """Release names the inventory accepts too, mapped to the inventory's name (arm -> armhf)."""
    return {arch: inventory_name(arch) for arch in release_arches() if inventory_name(arch) != arch}


def canonical(arch: str) -> str:
    """One name for comparing an inventory arch with a probed one: the release name (armhf -> arm)."""
    names = {inventory_name(a): a for a in release_arches()}
    return names.get(arch, arch)
