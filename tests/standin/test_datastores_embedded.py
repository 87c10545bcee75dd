"""The embedded-etcd model: three members on 127.0.0.1, quorum loss and recovery, join, snapshots.

Every member runs in this process with its own data dir and ports; "stopping" a member
closes its servers exactly as a killed k3s would stop answering.
"""

# ruff: noqa: F811, S310 - fixtures requested by name; loopback https only
from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from datastore_servers import TestPKI, free_port, test_pki  # noqa: F401 - fixture used by name
from k3s_standin.datastore import DatastoreError, DatastoreUnavailable, PeerTLS
from k3s_standin.datastore_external import open_external
from k3s_standin.etcd_embedded import EmbeddedEtcd

pytestmark = pytest.mark.unit


def wait_until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def raises_unavailable(fn: Callable[[], Any]) -> bool:
    try:
        fn()
    except DatastoreUnavailable:
        return True
    return False


def works(fn: Callable[[], Any]) -> bool:
    try:
        fn()
    except DatastoreError:
        return False
    return True


class Lab:
    """Builds members that keep their data dir and ports (keyed by data dir) across 'restarts'."""

    def __init__(self, root: Path, pki: TestPKI) -> None:
        self.root = root
        self.pki = pki
        self.ports: dict[str, tuple[int, int]] = {}
        self.live: list[EmbeddedEtcd] = []

    def node(self, name: str, data: str | None = None, promote_interval: float = 0.5) -> EmbeddedEtcd:
        cert, key = self.pki.issue(f"{name}-peer")
        ports = self.ports.setdefault(data or name, (free_port(), free_port()))
        member = EmbeddedEtcd(
            self.root / (data or name), name, "127.0.0.1", PeerTLS(self.pki.ca_cert, cert, key),
            client_port=ports[0], peer_port=ports[1], promote_interval=promote_interval,
        )  # fmt: skip
        self.live.append(member)
        return member

    def close_all(self) -> None:
        for member in self.live:
            member.close()


@pytest.fixture
def lab(tmp_path: Path, test_pki: TestPKI) -> Iterator[Lab]:
    lab = Lab(tmp_path, test_pki)
    try:
        yield lab
    finally:
        lab.close_all()


def three_members(lab: Lab) -> tuple[EmbeddedEtcd, EmbeddedEtcd, EmbeddedEtcd]:
    a = lab.node("server-a")
    a.start_new_cluster()
    a.put("/registry/before-join", b"seed")
    b = lab.node("server-b")
    b.join([a.peer_url])
    wait_until(lambda: promoted(a, b), what="b promoted from learner")  # one learner at a time, as with k3s
    c = lab.node("server-c")
    c.join([f"https://127.0.0.1:{free_port()}", b.peer_url])  # a dead URL first; join via a non-leader
    for member in (a, b, c):
        wait_until(lambda m=member: all(x["healthy"] for x in m.members()), what=f"{member.name} sees all healthy")
    return a, b, c


def promoted(view: EmbeddedEtcd, member: EmbeddedEtcd) -> bool:
    return any(m["name"] == member.name and not m["isLearner"] for m in view.members())


def test_a_joined_member_is_a_learner_until_promoted_and_one_learner_at_a_time(lab: Lab) -> None:
    a = lab.node("server-a", promote_interval=3.0)
    a.start_new_cluster()
    b = lab.node("server-b")
    b.join([a.peer_url])
    assert {m["name"]: m["isLearner"] for m in a.members()} == {a.name: False, b.name: True}
    # a learner does not vote: a alone is the majority of the voters, so writes go on
    a.put("/registry/while-learner", b"ok")
    c = lab.node("server-c")
    with pytest.raises(DatastoreError, match="ETCD join failed: etcdserver: too many learner members in cluster"):
        c.join([a.peer_url])
    assert not c.etcd_dir.exists()
    wait_until(lambda: promoted(a, b), timeout=10, what="b promoted on a's ticker")
    assert b.get("/registry/while-learner") == b"ok"
    c = lab.node("server-c")
    c.join([a.peer_url])
    assert {m["name"]: m["isLearner"] for m in a.members()}[c.name] is True


def test_three_members_quorum_loss_and_recovery(lab: Lab) -> None:
    a, b, c = three_members(lab)
    assert sorted(m["name"] for m in a.members()) == sorted([a.name, b.name, c.name])
    assert c.get("/registry/before-join") == b"seed"  # state transferred on join

    # writes on one member are readable on the others right away
    a.put("/registry/k1", b"v1")
    assert c.get("/registry/k1") == b"v1"
    c.put("/registry/k2", b"v2")
    assert a.get("/registry/k2") == b"v2"
    assert b.list("/registry/k") == {"/registry/k1": b"v1", "/registry/k2": b"v2"}
    assert [b.create("/bootstrap/x", b"1"), c.create("/bootstrap/x", b"2")] == [True, False]
    assert a.get("/bootstrap/x") == b"1"

    # one of three down: still a majority
    c.close()
    wait_until(lambda: not {m["name"]: m["healthy"] for m in a.members()}[c.name], what="a sees c down")
    a.put("/registry/k3", b"v3")  # c misses this write
    b.delete("/registry/k1")
    assert b.get("/registry/k3") == b"v3" and a.get("/registry/k1") is None
    assert a.has_quorum() and a.healthy()

    # two of three down: no reads, no writes
    b.close()
    wait_until(lambda: raises_unavailable(lambda: a.get("/registry/k3")), what="a loses quorum")
    with pytest.raises(DatastoreUnavailable, match="etcdserver: request timed out"):
        a.put("/registry/k4", b"v4")
    with pytest.raises(DatastoreUnavailable, match="etcdserver: request timed out"):
        a.list("/registry/")
    assert not a.has_quorum() and not a.healthy()

    # restart the member that missed writes: quorum is back and it caught up
    c2 = lab.node("server-c")
    c2.start_existing()
    assert c2.name == c.name  # the member name persists in server/db/etcd/name
    wait_until(lambda: works(lambda: a.get("/registry/k3")), what="a regains quorum")
    assert c2.get("/registry/k3") == b"v3"
    assert c2.get("/registry/k1") is None
    a.put("/registry/k4", b"v4")
    assert c2.get("/registry/k4") == b"v4"

    # the third comes back too and catches up
    b2 = lab.node("server-b")
    b2.start_existing()
    wait_until(lambda: b2.get("/registry/k4") == b"v4", what="b catches up")
    wait_until(lambda: all(x["healthy"] for x in a.members()), what="all healthy again")


def test_member_remove_needs_quorum_and_tombstones(lab: Lab) -> None:
    a, b, c = three_members(lab)
    a.remove_member("server-c")  # by node name, as k3s does when a node is deleted
    assert sorted(m["name"] for m in b.members()) == sorted([a.name, b.name])
    wait_until(lambda: not works(lambda: c.get("/registry/before-join")), what="c notices removal")
    with pytest.raises(DatastoreError, match="permanently removed"):
        c.get("/registry/before-join")
    assert (c.etcd_dir / "tombstone").exists()
    # two members left: one down means no quorum (2 of 2 needed)
    b.close()
    wait_until(lambda: not a.has_quorum(), what="a loses quorum with 1 of 2")
    with pytest.raises(DatastoreUnavailable, match="unhealthy cluster"):
        a.remove_member(b.name)


def test_join_errors(lab: Lab) -> None:
    dead = free_port()
    lonely = lab.node("server-x")
    with pytest.raises(DatastoreError) as info:
        lonely.join([f"https://127.0.0.1:{dead}"])
    assert str(info.value) == f"ETCD join failed: dial tcp 127.0.0.1:{dead}: connect: connection refused"
    assert not lonely.etcd_dir.exists()  # nothing half-made is left behind

    a, b, c = three_members(lab)
    # same node name, fresh data dir: k3s refuses a duplicate node name
    twin = lab.node("server-b", data="server-b-reinstalled")
    with pytest.raises(DatastoreError, match="duplicate node name found"):
        twin.join([a.peer_url])
    b.close()
    c.close()
    wait_until(lambda: not a.has_quorum(), what="a loses quorum")
    late = lab.node("server-d")
    with pytest.raises(DatastoreError, match="ETCD join failed: etcdserver: unhealthy cluster"):
        late.join([a.peer_url])


def test_layout_and_files(lab: Lab) -> None:
    a = lab.node("server-a")
    assert not a.is_initialized()
    a.start_new_cluster()
    etcd_dir = lab.root / "server-a" / "server" / "db" / "etcd"
    name = (etcd_dir / "name").read_text()
    assert name.startswith("server-a-") and len(name) == len("server-a-") + 8
    assert (etcd_dir / "member" / "wal").is_dir() and a.is_initialized()
    db = etcd_dir / "member" / "snap" / "db"
    assert db.stat().st_mode & 0o777 == 0o600
    assert (etcd_dir.stat().st_mode & 0o777) == 0o700
    config = json.loads((etcd_dir / "config").read_text())
    assert config["listen-peer-urls"] == a.peer_url
    assert a.members() == [{"name": name, "peerURL": a.peer_url, "clientURL": a.client_url, "isLearner": False,
                            "healthy": True}]


def test_peer_port_requires_client_certificate_from_cluster_ca(lab: Lab, tmp_path: Path) -> None:
    a = lab.node("server-a")
    a.start_new_cluster()
    own = ssl.create_default_context(cafile=str(lab.pki.ca_cert))
    own.check_hostname = False
    cert, key = lab.pki.issue("checker")
    own.load_cert_chain(str(cert), str(key))
    with urllib.request.urlopen(a.peer_url + "/version", context=own, timeout=5) as resp:
        assert json.loads(resp.read())["etcdserver"]

    stranger = TestPKI(tmp_path / "stranger")
    s_cert, s_key = stranger.issue("stranger")
    foreign = ssl.create_default_context(cafile=str(lab.pki.ca_cert))
    foreign.check_hostname = False
    foreign.load_cert_chain(str(s_cert), str(s_key))
    no_cert = ssl.create_default_context(cafile=str(lab.pki.ca_cert))
    no_cert.check_hostname = False
    for context in (foreign, no_cert):
        with (
            pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)),
            urllib.request.urlopen(a.peer_url + "/version", context=context, timeout=5) as resp,
        ):
            resp.read()


def test_client_port_serves_etcd_gateway(lab: Lab) -> None:
    a = lab.node("server-a")
    a.start_new_cluster()
    cert, key = lab.pki.issue("apiserver-client")
    store = open_external(a.client_url, str(lab.pki.ca_cert), str(cert), str(key))
    store.put("/registry/services/x", b"svc")
    assert a.get("/registry/services/x") == b"svc"
    assert store.create("/registry/services/x", b"again") is False
    assert store.create("/registry/services/y", b"why") is True
    assert store.list("/registry/services/") == {"/registry/services/x": b"svc", "/registry/services/y": b"why"}
    store.delete("/registry/services/x")
    assert a.get("/registry/services/x") is None
    store.close()


def test_snapshot_save_and_restore_resets_membership(lab: Lab, tmp_path: Path) -> None:
    a, b, c = three_members(lab)
    a.put("/registry/keep", b"in snapshot")
    snapshot = tmp_path / "snapshots" / "on-demand-server-a-1700000000"
    b.snapshot_save(snapshot)  # any member can save
    assert snapshot.is_file() and snapshot.stat().st_mode & 0o777 == 0o600
    a.put("/registry/after", b"not in snapshot")
    a.delete("/registry/keep")
    old_name = a.name
    for member in (a, b, c):
        member.close()

    restored = lab.node("server-a")
    restored.snapshot_restore(snapshot)
    assert restored.moved_aside is not None and restored.moved_aside.name.startswith("etcd-old-")
    assert (lab.root / "server-a" / "server" / "db" / "reset-flag").exists()
    restored.close()

    again = lab.node("server-a")  # "restart without --cluster-reset"
    again.start_existing()
    assert again.name != old_name  # k3s gives the reset member a new name
    assert [m["name"] for m in again.members()] == [again.name]
    assert again.get("/registry/keep") == b"in snapshot"
    assert again.get("/registry/after") is None
    assert again.get("/registry/before-join") == b"seed"
    again.put("/registry/new", b"writable alone")  # one member: quorum of one

    # a new member can join the restored cluster
    d = lab.node("server-d")
    d.join([again.peer_url])
    assert d.get("/registry/keep") == b"in snapshot"


def test_reset_membership_keeps_data(lab: Lab) -> None:
    a, b, c = three_members(lab)
    a.put("/registry/data", b"kept")
    for member in (a, b, c):
        member.close()
    reset = lab.node("server-a")
    reset.reset_membership()
    reset.close()
    again = lab.node("server-a")
    again.start_existing()
    assert len(again.members()) == 1
    assert again.get("/registry/data") == b"kept"


def test_snapshot_restore_rejects_bad_paths(lab: Lab, tmp_path: Path) -> None:
    a = lab.node("server-a")
    with pytest.raises(DatastoreError, match="snapshot path does not exist"):
        a.snapshot_restore(tmp_path / "nope")
    with pytest.raises(DatastoreError, match="must be a file, not a directory"):
        a.snapshot_restore(tmp_path)
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a snapshot")
    with pytest.raises(DatastoreError, match="integrity check failed"):
        a.snapshot_restore(junk)
