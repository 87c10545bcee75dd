"""Where the playbooks are: next to the package, as in the repository (the CLI runs them and reads a few of their
files: role defaults, templates, the upgrade rules)."""

from __future__ import annotations

from pathlib import Path

PLAYBOOK_DIR = Path(__file__).resolve().parent.parent / "playbooks"
