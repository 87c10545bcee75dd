"""Load Python that Ansible runs (modules under library/, filter plugins) as a module a test can call.

The files live in the playbook tree, not in an importable package: Ansible loads them by path, and so do the tests.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks"


def load(relative: str) -> ModuleType:
    """The module at ``playbooks/<relative>``, executed once per call."""
    path = PLAYBOOKS / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
