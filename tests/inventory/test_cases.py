"""Data-driven inventory tests: every folder under cases/ is one inventory and what loading it must give.

A case folder holds:
  inventory.yml            the input (another name via args.json {"file": ...}; {"flavor": ...} = --flavor)
  expected_errors.txt      for a bad inventory: the exact rendered problems, one per line, in order
  expected_warnings.txt    optional: the exact rendered warnings
  expected.json            for a good inventory: {"model": {...}, "ansible_vars": {...}}; each top-level key of
                           "model" is compared with cluster_to_dict(), "ansible_vars" with to_ansible_vars()
Paths are relative to the case folder (the test runs from a copy of it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from provisioner.errors import InventoryError
from provisioner.inventory import cluster_to_dict, load_inventory, to_ansible_vars

CASES_DIR = Path(__file__).parent / "cases"
CASES = sorted(p for p in CASES_DIR.iterdir() if p.is_dir())


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _relative(value: object, root: Path) -> object:
    """Absolute paths under the case copy become relative, so expected files do not depend on tmp_path."""
    text = json.dumps(value)
    text = text.replace(str(root) + "/", "").replace(str(root), ".")
    return json.loads(text)


@pytest.mark.unit
def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 25


@pytest.mark.unit
@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_case(case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / case.name
    shutil.copytree(case, work)
    monkeypatch.chdir(work)
    args = json.loads((work / "args.json").read_text()) if (work / "args.json").exists() else {}
    inventory = Path(args.get("file", "inventory.yml"))
    errors_file, warnings_file, expected_file = (
        case / "expected_errors.txt",
        case / "expected_warnings.txt",
        case / "expected.json",
    )
    assert errors_file.exists() != expected_file.exists(), "a case has expected_errors.txt or expected.json"

    if errors_file.exists():
        with pytest.raises(InventoryError) as caught:
            load_inventory(inventory, args.get("flavor"))
        assert _relative([p.render() for p in caught.value.problems], work.resolve()) == _lines(errors_file)
        warnings = caught.value.warnings
    else:
        cluster = load_inventory(inventory, args.get("flavor"))
        expected = json.loads(expected_file.read_text(encoding="utf-8"))
        model = _relative(cluster_to_dict(cluster), work.resolve())
        assert isinstance(model, dict)
        for key, value in expected["model"].items():
            assert model[key] == value, f"model[{key!r}]"
        assert _relative(to_ansible_vars(cluster), work.resolve()) == expected["ansible_vars"]
        warnings = list(cluster.warnings)
    expected_warnings = _lines(warnings_file) if warnings_file.exists() else []
    assert _relative([w.render() for w in warnings], work.resolve()) == expected_warnings
