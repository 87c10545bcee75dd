"""The shipped playbooks and roles need ansible-core alone: every task's module is in ansible.builtin or is one of
the content's own modules (a library/ folder in the playbook tree). `pip install provision` brings ansible-core, not
the `ansible` package with its collections, so a module from any other collection would fail on a real host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ansible
import pytest
from ansible.playbook.block import Block
from ansible.playbook.play import Play
from ansible.playbook.task import Task

from tests.playbook_code import PLAYBOOKS, iter_tasks

pytestmark = pytest.mark.unit

TASK_KEYWORDS = set(Task.fattributes) | set(Block.fattributes) | {"local_action"}
OWN_MODULES = {p.stem for p in PLAYBOOKS.rglob("library/*.py")}
# ansible-core's own modules and actions (include_tasks, meta, set_fact... have a documentation stub under modules/).
CORE = Path(ansible.__file__).parent
CORE_MODULES = {p.stem for folder in ("modules", "plugins/action") for p in (CORE / folder).glob("*.py")}


def _action(task: dict[str, Any]) -> str | None:
    actions = [key for key in task if key not in TASK_KEYWORDS and not key.startswith("with_")]
    return actions[0] if actions else None


def test_playbooks_are_plays_and_roles_use_builtin_or_own_modules() -> None:
    assert {"up.yml", "upgrade.yml", "reset.yml"} <= {p.name for p in PLAYBOOKS.glob("*.yml")}
    assert "import_playbook" not in Play.fattributes  # keys the walk must treat as plays, not tasks
    seen: dict[str, list[str]] = {}
    for path, task in iter_tasks():
        action = _action(task)
        assert action is not None, f"{path}: task {task.get('name')!r} has no module"
        seen.setdefault(action, []).append(str(path.relative_to(PLAYBOOKS)))
    assert len(seen) > 10  # the walk found the content's tasks
    foreign = {
        action: files[:3]
        for action, files in seen.items()
        if not (action.startswith("ansible.builtin.") or action in OWN_MODULES)
    }
    assert foreign == {}, "modules outside ansible-core and the content's library/ folders"
    builtin = [a for a in seen if a.startswith("ansible.builtin.")]
    unknown = [a for a in builtin if a.removeprefix("ansible.builtin.") not in CORE_MODULES]
    assert unknown == []
