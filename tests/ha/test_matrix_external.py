"""The K3s matrix's external-datastore columns (docs/k3s-matrix.md): PostgreSQL, MariaDB and etcd (Debian's
servers on the lab gateway), two servers and an agent, through every command of the matrix in one sequence:
up, no-op rerun, add an agent, add a server, remove the agent, remove the server, replace the first server,
reset --limit of an agent then up, a rolling upgrade, reset. Heavy: about six minutes per datastore; the default run
covers these columns with `ha::test_two_servers_on_*` and `mol:ha-external-db`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import diff, node_ready, snapshot
from tests.ha.datastores import LabDatastore, etcd_on, gateway_of, mariadb_on, postgres_on
from tests.ha.harness import HaCluster
from tests.upgrade.helpers import NEW

pytestmark = [pytest.mark.lab, pytest.mark.heavy]

HOSTS = ["s1", "s2", "s3", "a1", "a2"]


@contextlib.contextmanager
def datastore(kind: str, lab, tmp_path: Path) -> Iterator[LabDatastore]:
    gateway = gateway_of(lab)
    if kind == "postgres":
        with postgres_on(gateway, lab.subnet) as store:
            yield store
    elif kind == "mariadb":
        with mariadb_on(gateway) as store:
            yield store
    else:
        with etcd_on(gateway, tmp_path / "etcd") as store:
            yield store


def ok(outcome) -> None:
    assert outcome.rc == 0, outcome.stdout[-4000:] + outcome.stderr[-4000:]


@pytest.mark.parametrize("kind", ["postgres", "mariadb", "etcd"])
def test_every_command_on_two_servers_and_an_agent_over_an_external_datastore(
    make_lab, tmp_path: Path, kind: str,
) -> None:
    lab = make_lab(HOSTS)
    before = {h: snapshot(lab, h) for h in HOSTS}
    known = str(lab.known_hosts)
    with datastore(kind, lab, tmp_path) as store:
        cluster = HaCluster(lab, tmp_path / "c", servers=["s1", "s2"], agents=["a1"],
                            extra_vars={"k3s_datastore_endpoint": store.endpoint}, datastore_password=store.password)

        def ready(names: set[str]) -> None:
            nodes = cluster.nodes()
            assert set(nodes) == names and all(node_ready(n) for n in nodes.values()), nodes.keys()

        ok(cluster.up())
        ready({"s1", "s2", "a1"})
        rerun = cluster.up("--all")
        ok(rerun)
        assert rerun.changed_total() == 0, rerun.changed_by_host()

        # add an agent, then a server: each joins alone
        cluster.agents.append("a2")
        cluster.write_inventory()
        added = cluster.up()
        ok(added)
        assert added.changed_by_host().get("a1", 0) == 0 and added.changed_by_host().get("s2", 0) == 0
        cluster.servers.append("s3")
        cluster.write_inventory()
        grown = cluster.up()
        ok(grown)
        assert grown.changed_by_host().get("s2", 0) == 0 and grown.changed_by_host().get("a1", 0) == 0
        ready({"s1", "s2", "s3", "a1", "a2"})

        # remove the agent and the server: nodes gone, hosts as before
        for host, group in (("a2", cluster.agents), ("s3", cluster.servers)):
            ok(cluster.provision("remove-node", host, "--yes", "--json", "--known-hosts", known))
            group.remove(host)
            cluster.write_inventory()
            assert diff(before[host], snapshot(lab, host)) == {}, (host, diff(before[host], snapshot(lab, host)))
        ready({"s1", "s2", "a1"})

        # replace the first server: removed (host reset), then up brings it back with the cluster's token
        token = lab.exec("s2", "cat /var/lib/rancher/k3s/server/token", check=True).stdout.strip()
        ok(cluster.provision("remove-node", "s1", "--yes", "--json", "--known-hosts", known))
        ok(cluster.up())
        ready({"s1", "s2", "a1"})
        assert lab.exec("s1", "cat /var/lib/rancher/k3s/server/token", check=True).stdout.strip() == token

        # reset --limit an agent: it stays a node, keeps its node password, and the next up installs it again
        ok(cluster.provision("reset", "--limit", "a1", "--yes", "--json", "--known-hosts", known))
        ok(cluster.up())
        ready({"s1", "s2", "a1"})

        # a rolling upgrade (no backup: the state is in the datastore, said so)
        ok(cluster.provision("upgrade", "--version", NEW, "--yes", "--json", "--known-hosts", known))
        assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in cluster.nodes().values()} == {NEW}

        # reset: every host as before
        ok(cluster.provision("reset", "--yes", "--json", "--known-hosts", known))
        for host in ("s1", "s2", "a1"):
            assert diff(before[host], snapshot(lab, host)) == {}, (host, diff(before[host], snapshot(lab, host)))
