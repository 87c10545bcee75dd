"""Grammars the playbooks and the CLI must agree on, loaded from the one file each lives in.

The K3s version grammar is written in the k3s role (roles/k3s/filter_plugins/k3s_version.py, standard library only):
the role's tasks use its filters, the k3s_upgrade role's rules file loads it, and the CLI loads it here for the
inventory check, the JSON Schema and the upgrade plan. Loaded on first use, never at import.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from types import ModuleType

from provisioner.paths import role_file


@cache
def k3s_version() -> ModuleType:
    """The module with VERSION (a compiled pattern), VERSION_BODY, VERSION_FORM, version_key, k3s_version_valid."""
    path = role_file("k3s", "filter_plugins", "k3s_version.py")
    spec = importlib.util.spec_from_file_location("provision_k3s_version_grammar", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the K3s version grammar from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def k3s_version_valid(text: object) -> bool:
    return bool(k3s_version().k3s_version_valid(text))


def k3s_version_form() -> str:
    return str(k3s_version().VERSION_FORM)


def k3s_version_pattern() -> str:
    return str(k3s_version().VERSION.pattern)
