"""`provision upgrade`, `backup` and `restore` on lab clusters running the K3s stand-in.

The order of the rolling upgrade is read from each host's own journal (the old process logging SIGTERM, the new
version logging its start; containers share the machine's clock), not from the CLI's output.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.lab.fixtures import MakeLab
from tests.upgrade.helpers import NEW, OLD, LabCluster, Restart, make_cluster, node_ready, restarts_to, wait_for

pytestmark = pytest.mark.lab


def _assert_rolling_order(cluster: LabCluster, restarts: dict[str, Restart]) -> None:
    """Servers one by one in inventory order (each back before the next stops), then agents."""
    order = sorted(restarts.values(), key=lambda r: r.started)
    assert [r.host for r in order][: len(cluster.servers)] == cluster.servers, order
    for before, after in zip(cluster.servers, cluster.servers[1:], strict=False):
        assert restarts[before].started < restarts[after].stopped, (before, after, restarts)
    last_server = max(restarts[s].started for s in cluster.servers)
    for agent in cluster.agents:
        assert restarts[agent].stopped > last_server, (agent, restarts)


def _single_restart(cluster: LabCluster, host: str) -> Restart:
    found = restarts_to(cluster.lab, host, NEW)
    assert len(found) == 1, (host, found)  # upgraded exactly once: a rerun must not restart a finished node
    return found[0]


def _backup_restore_round_trip(cluster: LabCluster, tmp_path: Path) -> None:
    """Label a node, back up, change the label, restore: the backed-up state (nodes, label) comes back."""
    agent = cluster.agents[0]
    assert cluster.kubectl("label", "node", agent, "provision-test=kept").returncode == 0
    backup = cluster.provision("backup", "--name", "b1")
    assert backup.returncode == 0, backup.stderr
    where = cluster.state_dir / "lab" / "backups" / "b1"
    assert oct((where / "token").stat().st_mode & 0o777) == "0o600"
    token = (where / "token").read_text().strip()
    assert token and token not in backup.stdout + backup.stderr
    nodes_before = sorted(cluster.kubectl("get", "nodes", "-o", "name").stdout.split())
    assert cluster.kubectl("label", "node", agent, "provision-test-", "after=1").returncode == 0
    restore = cluster.provision("restore", "--from", str(where), "--yes")
    assert restore.returncode == 0, restore.stderr
    assert token not in restore.stdout + restore.stderr
    labels = cluster.kubectl("get", "node", agent, "-o", "jsonpath='{.metadata.labels}'").stdout
    assert '"provision-test":"kept"' in labels and '"after"' not in labels, labels
    assert sorted(cluster.kubectl("get", "nodes", "-o", "name").stdout.split()) == nodes_before
    for name in cluster.servers + cluster.agents:
        assert wait_for(lambda name=name: node_ready(cluster, name), 120), name


def test_sqlite_one_server_two_agents(make_lab: MakeLab, tmp_path: Path) -> None:
    lab = make_lab(["s1", "a1", "a2"])
    cluster = make_cluster(lab, ["s1"], ["a1", "a2"], tmp_path)
    up = cluster.provision("up")
    assert up.returncode == 0, up.stderr[-3000:]

    dry = cluster.provision("upgrade", "--version", NEW, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "dry run: nothing was changed" in dry.stderr
    assert all(cluster.binary_version(h) == OLD for h in ("s1", "a1", "a2"))

    upgrade = cluster.provision("upgrade", "--version", NEW, "--yes")
    assert upgrade.returncode == 0, upgrade.stderr[-4000:]
    assert all(cluster.binary_version(h) == NEW for h in ("s1", "a1", "a2"))
    versions = cluster.kubectl("get", "nodes", "-o", "jsonpath='{.items[*].status.nodeInfo.kubeletVersion}'").stdout
    assert versions.split() == [NEW] * 3
    restarts = {h: _single_restart(cluster, h) for h in ("s1", "a1", "a2")}
    _assert_rolling_order(cluster, restarts)
    assert list((cluster.state_dir / "lab" / "backups").glob("lab-pre-upgrade-*/state.db"))

    again = cluster.provision("upgrade", "--version", NEW, "--yes")
    assert again.returncode == 0 and "nothing to upgrade" in again.stderr, again.stderr[-3000:]
    down = cluster.provision("upgrade", "--version", OLD, "--yes")
    assert down.returncode == 4 and "downgrades are not supported" in down.stderr, down.stderr[-3000:]
    assert all(len(restarts_to(lab, h, NEW)) == 1 for h in ("s1", "a1", "a2"))  # nothing restarted since

    _backup_restore_round_trip(cluster, tmp_path)


def test_etcd_three_servers_fault_resume_and_restore(make_lab: MakeLab, tmp_path: Path) -> None:
    servers, agents = ["s1", "s2", "s3"], ["a1", "a2"]
    lab = make_lab(servers + agents)
    cluster = make_cluster(lab, servers, agents, tmp_path)
    up = cluster.provision("up")
    assert up.returncode == 0, up.stderr[-3000:]

    # Fault: as soon as s1 runs the new version, s2 is shut down, before its turn comes.
    running = cluster.start_provision("upgrade", "--version", NEW, "--yes")
    assert wait_for(lambda: restarts_to(lab, "s1", NEW), 900, interval=0.5), "s1 never started the new version"
    lab.stop("s2")
    _, stderr = running.communicate(timeout=900)
    assert running.returncode != 0, stderr[-3000:]
    assert "s2" in stderr and "rerun the same command" in stderr, stderr[-3000:]
    assert cluster.binary_version("s3") == OLD and not restarts_to(lab, "s3", NEW)
    assert all(cluster.binary_version(a) == OLD for a in agents)
    # Quorum held: the API answers through both remaining servers and writes succeed.
    for via in ("s1", "s3"):
        assert cluster.kubectl("get", "nodes", via=via).returncode == 0
    assert cluster.kubectl("label", "node", "a2", "during-fault=yes", via="s3").returncode == 0

    lab.start("s2")
    assert wait_for(lambda: node_ready(cluster, "s2"), 300, interval=2), "s2 did not come back"
    started = time.time()
    resumed = cluster.provision("upgrade", "--version", NEW, "--yes")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    # The plan table (a result: on stdout) shows s1, finished before the fault, as skipped.
    assert any(line.split()[1:2] == ["s1"] and "skip" in line.split() for line in resumed.stdout.splitlines()), (
        resumed.stdout
    )
    assert all(cluster.binary_version(h) == NEW for h in servers + agents)
    s1 = _single_restart(cluster, "s1")
    assert s1.started < started  # finished node skipped, not drained or restarted again
    restarts = {"s1": s1} | {h: _single_restart(cluster, h) for h in ["s2", "s3", *agents]}
    _assert_rolling_order(cluster, restarts)
    versions = cluster.kubectl("get", "nodes", "-o", "jsonpath='{.items[*].status.nodeInfo.kubeletVersion}'").stdout
    assert versions.split() == [NEW] * 5

    _backup_restore_round_trip(cluster, tmp_path)
