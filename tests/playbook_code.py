"""Load Python that Ansible runs (modules under library/, filter plugins) as a module a test can call.

The files live in the playbook tree, not in an importable package: Ansible loads them by path, and so do the tests.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks"
PLAY_TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers")


def load(relative: str) -> ModuleType:
    """The module at ``playbooks/<relative>``, executed once per call."""
    path = PLAYBOOKS / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tasks(items: Any) -> Iterator[dict[str, Any]]:
    for item in items or ():
        if not isinstance(item, dict):
            continue
        if any(key in item for key in ("block", "rescue", "always")):
            for key in ("block", "rescue", "always"):
                yield from _tasks(item.get(key))
            continue
        yield item


def iter_tasks() -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every task of the playbook tree with its file: plays' task lists and roles' tasks/ and handlers/ files,
    blocks opened."""
    for path in sorted(PLAYBOOKS.rglob("*.yml")):
        data = yaml.safe_load(path.read_text()) or []
        is_playbook = path.parent == PLAYBOOKS
        if is_playbook:
            for play in data:
                for key in PLAY_TASK_LISTS:
                    for task in _tasks(play.get(key)):
                        yield path, task
        elif path.parent.name in ("tasks", "handlers"):
            for task in _tasks(data):
                yield path, task
