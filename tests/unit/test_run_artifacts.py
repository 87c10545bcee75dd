"""Runner artifacts are kept per command run, the last PROVISION_KEEP_RUNS runs whole (default 20): the folder an
error names still exists after later runs, however many playbooks each ran (ansible-runner's own rotation counted
playbooks, so a path from four runs ago was gone)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.unit.cli_runs import loopback_inventory, run

pytestmark = pytest.mark.unit


def _status(tmp_path: Path, keep: str) -> subprocess.CompletedProcess[str]:
    loopback_inventory(tmp_path, "arts")
    return run(tmp_path, "reset", "--yes", env={"PROVISION_KEEP_RUNS": keep})


def test_each_run_keeps_its_artifacts_and_the_oldest_runs_go(tmp_path: Path) -> None:
    runs = tmp_path / "state" / "arts" / "runner" / "artifacts"
    seen: list[set[str]] = []
    for _ in range(3):
        _status(tmp_path, keep="2")
        seen.append({p.name for p in runs.iterdir()})
    first = seen[0]
    assert len(first) == 1, first  # one folder for the whole command run
    assert first <= seen[1] and len(seen[1]) == 2  # kept while it is one of the two newest
    assert not first & seen[2] and len(seen[2]) == 2  # gone with the third run
    for kept in seen[2]:
        assert list((runs / kept).rglob("command")), "each kept run has its playbooks' artifacts"
