"""The K3s version grammar is written once (roles/k3s/filter_plugins/k3s_version.py) and every reader agrees:
the inventory check, the JSON Schema, `upgrade --version`, the role's filters and the upgrade rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from provisioner import grammar
from provisioner.inventory.schema import json_schema
from provisioner.plan import K3sVersion
from tests.playbook_code import PLAYBOOKS, load

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
VALID = ["v1.28.4+k3s2", "v1.30.10+k3s1", "v2.0.0+k3s12"]
INVALID = ["v1.28.4", "1.28.4+k3s2", "v1.30.0-rc1+k3s1", "v1.28+k3s1", "v1.28.4+k3s", " v1.28.4+k3s2x", "stable"]


@pytest.mark.parametrize("text", VALID + INVALID)
def test_every_reader_agrees(text: str) -> None:
    expected = text in VALID
    role_filters = load("roles/k3s/filter_plugins/k3s_version.py").FilterModule().filters()
    assert role_filters["k3s_version_valid"](text) is expected
    assert grammar.k3s_version_valid(text) is expected
    pattern = json_schema()["$defs"]["variables"]["properties"]["k3s_version"]["pattern"]
    assert (re.search(pattern, text) is not None) is expected
    try:
        K3sVersion.parse(text.strip() if expected else text)
        parsed = True
    except ValueError:
        parsed = False
    assert parsed is (expected or text.strip() in VALID)
    rules = load("roles/k3s_upgrade/filter_plugins/k3s_upgrade_filters.py")
    assert (rules.version_key(text) != []) is (re.search(r"v\d+\.\d+\.\d+\+k3s\d+", text) is not None)


def test_the_grammar_is_written_in_one_file() -> None:
    """No other K3s version pattern in the product; syntax.version_fix only parses near-misses to suggest a fix."""
    pattern = re.compile(r"k3s\(?\\{1,2}d")  # k3s\d, k3s(\d, and YAML's escaped k3s\\d
    allowed = {PLAYBOOKS / "roles/k3s/filter_plugins/k3s_version.py", REPO / "provisioner/inventory/syntax.py"}
    files = [*REPO.joinpath("provisioner").rglob("*.py"), *PLAYBOOKS.rglob("*.py"), *PLAYBOOKS.rglob("*.yml")]
    found = [str(p.relative_to(REPO)) for p in files if p not in allowed and pattern.search(p.read_text())]
    assert found == []
    assert pattern.search((PLAYBOOKS / "roles/k3s/filter_plugins/k3s_version.py").read_text())
