"""Where the Ansible content is: the package `provisioner.playbooks` (the repository's `playbooks/` folder, shipped in
the wheel under that name; see pyproject.toml). The CLI runs those playbooks and reads a few of their files (role
defaults, templates, the upgrade rules). Found through the import system, so an installed wheel, an editable install
and a checkout all answer with a real folder that ansible-runner can use as its project directory.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

CONTENT_PACKAGE = "provisioner.playbooks"


@cache
def playbook_dir() -> Path:
    """The folder holding up.yml, upgrade.yml, ... and roles/ (a plain directory, never inside a zip)."""
    root = importlib.resources.files(CONTENT_PACKAGE)
    path = Path(str(root))
    if not (path / "up.yml").is_file():
        raise FileNotFoundError(
            f"provision's playbooks are missing from {path}; reinstall provision (the wheel carries them)"
        )
    return path


def role_file(role: str, *parts: str) -> Path:
    """A file of one of the shipped roles, e.g. role_file('node_prep', 'defaults', 'main.yml')."""
    return playbook_dir().joinpath("roles", role, *parts)


@cache
def role_code(role: str, *parts: str) -> ModuleType:
    """Python that a role ships for Ansible (a filter plugin holding rules or a grammar), loaded as a module so the
    CLI applies the very same code; loaded once, on first use."""
    path = role_file(role, *parts)
    spec = importlib.util.spec_from_file_location(f"provision_role_{role}_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
