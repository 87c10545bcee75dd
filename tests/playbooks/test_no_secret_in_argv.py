"""No task hands a secret to a process through its command line or its environment (both show in `ps`, sudo's log
and verbose or AWX output): secrets travel in 0600 files. A static check over every task of the playbook tree."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.playbook_code import PLAYBOOKS, iter_tasks

pytestmark = pytest.mark.unit

SECRET_WORD = re.compile(r"token|password|passwd|secret", re.IGNORECASE)
COMMAND_MODULES = ("ansible.builtin.command", "ansible.builtin.shell", "ansible.builtin.raw")
# On a command line a secret would follow one of these; naming a file that holds it is the allowed way.
SECRET_OPTION = re.compile(r"--(?:agent-)?token(?!-file)\b|--password\b|K3S_(?:AGENT_)?TOKEN=", re.IGNORECASE)


def _texts(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [str(k) for k in value] + [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return [str(value)]


def _templates(text: str) -> list[str]:
    return re.findall(r"\{\{(.*?)\}\}", text, re.DOTALL)


def test_no_task_environment_carries_a_secret() -> None:
    found = []
    for path, task in iter_tasks():
        for text in _texts(task.get("environment") or {}):
            if SECRET_WORD.search(text):
                found.append(f"{path.relative_to(PLAYBOOKS)}: {task.get('name')!r}: environment {text[:80]!r}")
    assert found == []


def test_no_command_line_carries_a_secret() -> None:
    found = []
    for path, task in iter_tasks():
        for module in COMMAND_MODULES:
            if module not in task:
                continue
            for text in _texts(task[module]):
                secret_templates = [t for t in _templates(text) if SECRET_WORD.search(t) and "file" not in t]
                if SECRET_OPTION.search(text) or secret_templates:
                    found.append(f"{path.relative_to(PLAYBOOKS)}: {task.get('name')!r}: {text[:100]!r}")
    assert found == []
