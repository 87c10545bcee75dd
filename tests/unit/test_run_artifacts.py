"""Runner artifacts are kept per command run, the last PROVISION_KEEP_RUNS runs whole (default 20): the folder an
error names still exists after later runs, however many playbooks each ran (ansible-runner's own rotation counted
playbooks, so a path from four runs ago was gone)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit


def _status(tmp_path: Path, keep: str) -> subprocess.CompletedProcess[str]:
    inventory = tmp_path / "edge.yml"
    inventory.write_text(
        "all:\n  vars: {provision_cluster_name: arts, k3s_version: v1.28.4+k3s2, ansible_port: 1}\n"
        "  children:\n    server:\n      hosts:\n        s1: {ansible_host: 127.0.0.1}\n"
    )
    (tmp_path / "known_hosts").touch()
    env = os.environ | {"PROVISION_STATE_DIR": str(tmp_path / "state"), "PROVISION_KEEP_RUNS": keep}
    return subprocess.run(
        [sys.executable, "-m", "provisioner.cli.main", "reset", "--yes", "--inventory", str(inventory),
         "--known-hosts", str(tmp_path / "known_hosts")],
        capture_output=True, text=True, env=env, timeout=300, check=False, cwd=tmp_path,
    )


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
    for run in seen[2]:
        assert list((runs / run).rglob("command")), "each kept run has its playbooks' artifacts"
