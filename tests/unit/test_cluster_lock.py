"""One run at a time per cluster: a second command that would change the cluster refuses (exit 4) naming the run
that holds it and since when; a run that died is detected and said, and its lock is gone with it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.unit.cli_runs import loopback_inventory, run

pytestmark = pytest.mark.unit


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from provisioner.state import ClusterState, lock_cluster
    state = ClusterState.for_cluster("locked", root=Path(sys.argv[1]))
    lock = lock_cluster(state, "locked", "upgrade")
    print("held", flush=True)
    time.sleep(300)
""")


def _provision(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    loopback_inventory(tmp_path, "locked")
    return run(tmp_path, *args, "--json")


def test_a_second_run_refuses_then_a_dead_holder_is_detected(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "state")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        busy = _provision(tmp_path, "up")
        assert busy.returncode == 4, busy.stdout + busy.stderr
        error = json.loads(busy.stdout)["error"]
        assert "cluster 'locked' is busy" in error and f"pid {holder.pid}" in error and "provision upgrade" in error
        assert not (tmp_path / "state" / "locked" / "runner").exists() or not any(
            (tmp_path / "state" / "locked" / "runner").iterdir()), "the refused run reached ansible-runner"
        # status only reads: it does not wait for the lock (it fails here only because nothing listens on port 1)
        assert "busy" not in _provision(tmp_path, "status").stdout
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)

    after = _provision(tmp_path, "reset", "--yes")
    document = json.loads(after.stdout)
    assert "busy" not in document.get("error", "")
    assert any("ended without finishing" in w and str(holder.pid) in w for w in document["warnings"]), document
    # A run that ends (even failing) releases cleanly: the next one has nothing to report.
    again = json.loads(_provision(tmp_path, "reset", "--yes").stdout)
    assert not any("ended without finishing" in w for w in again["warnings"]), again
