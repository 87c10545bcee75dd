"""Grammars the playbooks and the CLI must agree on, loaded from the one file each lives in.

The K3s version grammar is written in the k3s role (roles/k3s/filter_plugins/k3s_version.py, standard library only):
the role's tasks use its filters, the k3s_upgrade role's rules file loads it, and the CLI loads it here for the
inventory check, the JSON Schema and the upgrade plan. The kubeadm flavor's grammar lives the same way in the kubeadm
role (roles/kubeadm/filter_plugins/kubeadm_version.py). Loaded on first use, never at import.
"""

from __future__ import annotations

from types import ModuleType

from provisioner.paths import role_code


def k3s_version() -> ModuleType:
    """The module with VERSION (a compiled pattern), VERSION_BODY, VERSION_FORM, version_key, k3s_version_valid."""
    return role_code("k3s", "filter_plugins", "k3s_version.py")


def kubeadm_version() -> ModuleType:
    """The kubeadm flavor's grammar: VERSION, VERSION_FORM, OLDEST_MINOR, kubeadm_version_valid, kubeadm_minor."""
    return role_code("kubeadm", "filter_plugins", "kubeadm_version.py")


def k3s_version_valid(text: object) -> bool:
    return bool(k3s_version().k3s_version_valid(text))


def k3s_version_form() -> str:
    return str(k3s_version().VERSION_FORM)


def k3s_version_pattern() -> str:
    return str(k3s_version().VERSION.pattern)
