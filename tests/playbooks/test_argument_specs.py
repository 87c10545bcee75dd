"""The roles' public variables and the inventory model agree, so no role variable is flagged as unknown."""

from pathlib import Path

import pytest
import yaml

from provisioner.inventory.loader import KNOWN_VARS

ROLES = Path(__file__).resolve().parents[2] / "playbooks" / "roles"

pytestmark = pytest.mark.unit


def _spec_options() -> set[str]:
    names: set[str] = set()
    for spec in ROLES.glob("*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec.read_text())["argument_specs"].values():
            names.update(entry.get("options", {}))
    return names


def test_every_role_option_is_known_to_the_inventory_model() -> None:
    assert _spec_options() - KNOWN_VARS == set()


def test_every_role_default_is_documented_in_its_argument_specs() -> None:
    for role in ROLES.iterdir():
        defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
        spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
        assert set(defaults) - set(spec) == set(), role.name
