"""The flavor is the unit: the CLI, the phase manager, the runner and the state hold no distribution's playbook
or variable names; they ask the flavor (provisioner/flavors). A K3s word creeping back into them fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from provisioner.flavors import FlavorOptions, get_flavor
from provisioner.inventory.model import FLAVORS
from provisioner.ssh_config import SshSettings

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "provisioner"
GENERIC = [
    *sorted((PACKAGE / "cli").glob("*.py")),
    *sorted((PACKAGE / "phases").glob("*.py")),
    PACKAGE / "runner.py",
    PACKAGE / "state.py",
    PACKAGE / "session.py",
]
# Extra vars of the K3s roles (k3s_backup_dir, ...) and playbook file names ("reset.yml").
LEAKS = re.compile(r"""["']k3s_\w+["']|["'][\w-]+\.yml["']""")


@pytest.mark.parametrize("path", GENERIC, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_generic_modules_name_no_playbook_and_no_flavor_variable(path: Path) -> None:
    leaks = [
        f"{path.name}:{number}: {line.strip()}"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if LEAKS.search(line)
    ]
    assert leaks == []


def test_every_flavor_name_is_installable_or_refused_with_the_ones_that_are() -> None:
    options = FlavorOptions(ssh=SshSettings())
    assert get_flavor("k3s", options).name == "k3s"
    for name in FLAVORS:
        try:
            flavor = get_flavor(name, options)
        except Exception as exc:  # noqa: BLE001 - a planned flavor must say which ones are available
            assert "not available in this release yet" in str(exc) and "k3s" in str(exc)
        else:
            assert flavor.name == name
