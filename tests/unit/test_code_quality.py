"""The product package stays clean under the project's own ruff rules and mypy --strict (pyproject settings)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.unit


def test_ruff_passes_on_the_product() -> None:
    result = subprocess.run(
        [BIN / "ruff", "check", "provisioner"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_mypy_strict_passes_on_the_product() -> None:
    result = subprocess.run([BIN / "mypy"], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
