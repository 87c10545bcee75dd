"""Stand-in datastores against real servers: PostgreSQL, MariaDB, etcd, and the embedded etcd model.

The SQL and etcd servers come from Debian packages and run on 127.0.0.1 (see
``datastore_servers``); tests skip with the package name when a binary is missing.
"""

# ruff: noqa: F811 - pytest fixtures are imported and then requested by name
from __future__ import annotations

import secrets
import threading
from collections.abc import Callable

import pytest
from datastore_servers import (  # noqa: F401 - fixtures are used by name
    EtcdServer,
    SQLServer,
    TestPKI,
    etcd_server,
    free_port,
    mariadb_server,
    postgres_server,
    test_pki,
)
from k3s_standin.datastore import Datastore, DatastoreError
from k3s_standin.datastore_external import open_external, redact

pytestmark = pytest.mark.datastore


def _roundtrip(store: Datastore) -> None:
    """put/get/create/list/delete semantics every backend must share."""
    run = secrets.token_hex(4)
    base = f"/registry/test-{run}"
    assert store.get(f"{base}/missing") is None
    store.put(f"{base}/a", b"one")
    store.put(f"{base}/b", b"\x00binary\xff")
    store.put(f"{base}_x/c", b"not under the prefix")  # '_' must not act as a wildcard
    assert store.get(f"{base}/a") == b"one"
    store.put(f"{base}/a", b"two")
    assert store.get(f"{base}/a") == b"two"
    assert store.create(f"{base}/a", b"three") is False
    assert store.get(f"{base}/a") == b"two"
    assert store.create(f"{base}/new", b"") is True
    assert store.get(f"{base}/new") == b""
    assert store.list(f"{base}/") == {f"{base}/a": b"two", f"{base}/b": b"\x00binary\xff", f"{base}/new": b""}
    store.delete(f"{base}/a")
    store.delete(f"{base}/never-existed")
    assert store.get(f"{base}/a") is None
    assert f"{base}/a" not in store.list(f"{base}/")
    assert store.create(f"{base}/a", b"again") is True
    assert store.get(f"{base}/a") == b"again"
    assert store.healthy() is True


def _concurrent_creates(store_factory: Callable[[], Datastore]) -> None:
    """Two clients race create() on one key: exactly one wins (kine's unique index / etcd txn)."""
    key = f"/bootstrap/race-{secrets.token_hex(4)}"
    stores = [store_factory() for _ in range(4)]
    results: list[bool] = []
    lock = threading.Lock()

    def worker(store: Datastore, n: int) -> None:
        won = store.create(key, str(n).encode())
        with lock:
            results.append(won)

    threads = [threading.Thread(target=worker, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for s in stores:
        s.close()
    assert sorted(results) == [False, False, False, True]


# --------------------------------------------------------------------------- PostgreSQL


def test_postgres_roundtrip_and_creates_database(postgres_server: SQLServer) -> None:
    database = f"k3s_{secrets.token_hex(4)}"  # does not exist yet: kine creates it
    store = open_external(postgres_server.endpoint(database), None, None, None)
    try:
        _roundtrip(store)
    finally:
        store.close()
    # a second open finds database and table in place and sees the data
    again = open_external(postgres_server.endpoint(database), None, None, None)
    try:
        assert again.list("/registry/") != {}
    finally:
        again.close()


def test_postgres_concurrent_create(postgres_server: SQLServer) -> None:
    _concurrent_creates(lambda: open_external(postgres_server.endpoint(), None, None, None))


def test_postgres_wrong_password(postgres_server: SQLServer) -> None:
    bad = "Wrong-" + secrets.token_hex(6)
    with pytest.raises(DatastoreError) as info:
        open_external(postgres_server.endpoint(password=bad), None, None, None)
    message = str(info.value)
    assert message == (
        "creating storage endpoint: building kine: "
        f'pq: password authentication failed for user "{postgres_server.user}"'
    )
    assert bad not in message and postgres_server.password not in message


def test_postgres_refused_port() -> None:
    port = free_port()
    with pytest.raises(DatastoreError) as info:
        open_external(f"postgres://k3s:Secret123@127.0.0.1:{port}/kubernetes?sslmode=disable", None, None, None)
    assert str(info.value) == (
        f"creating storage endpoint: building kine: dial tcp 127.0.0.1:{port}: connect: connection refused"
    )


def test_postgres_unknown_host() -> None:
    with pytest.raises(DatastoreError) as info:
        open_external("postgres://k3s:Secret123@no-such-host.invalid:5432/db", None, None, None)
    assert "dial tcp: lookup no-such-host.invalid" in str(info.value)
    assert "no such host" in str(info.value)
    assert "Secret123" not in str(info.value)


# --------------------------------------------------------------------------- MariaDB


def test_mysql_roundtrip_and_creates_database(mariadb_server: SQLServer) -> None:
    database = f"k3s_{secrets.token_hex(4)}"
    store = open_external(mariadb_server.endpoint(database), None, None, None)
    try:
        _roundtrip(store)
    finally:
        store.close()


def test_mysql_concurrent_create(mariadb_server: SQLServer) -> None:
    _concurrent_creates(lambda: open_external(mariadb_server.endpoint(), None, None, None))


def test_mysql_wrong_password(mariadb_server: SQLServer) -> None:
    bad = "Wrong-" + secrets.token_hex(6)
    with pytest.raises(DatastoreError) as info:
        open_external(mariadb_server.endpoint(password=bad), None, None, None)
    message = str(info.value)
    assert message.startswith("creating storage endpoint: building kine: Error 1045 (28000): Access denied for user")
    assert "(using password: YES)" in message
    assert bad not in message and mariadb_server.password not in message


def test_mysql_refused_port() -> None:
    port = free_port()
    with pytest.raises(DatastoreError) as info:
        open_external(f"mysql://k3s:Secret123@tcp(127.0.0.1:{port})/kubernetes", None, None, None)
    assert str(info.value) == (
        f"creating storage endpoint: building kine: dial tcp 127.0.0.1:{port}: connect: connection refused"
    )


# --------------------------------------------------------------------------- external etcd


def test_etcd_roundtrip(etcd_server: EtcdServer) -> None:
    refused = f"https://127.0.0.1:{free_port()}"
    # a dead first endpoint is skipped, as the etcd client balancer does
    endpoint = f"{refused},{etcd_server.endpoint}"
    store = open_external(endpoint, str(etcd_server.ca_file), str(etcd_server.cert_file), str(etcd_server.key_file))
    try:
        _roundtrip(store)
    finally:
        store.close()


def test_etcd_concurrent_create(etcd_server: EtcdServer) -> None:
    tls = (str(etcd_server.ca_file), str(etcd_server.cert_file), str(etcd_server.key_file))
    _concurrent_creates(lambda: open_external(etcd_server.endpoint, *tls))


def test_etcd_refused_port(etcd_server: EtcdServer) -> None:
    port = free_port()
    with pytest.raises(DatastoreError) as info:
        open_external(
            f"https://127.0.0.1:{port}", str(etcd_server.ca_file), str(etcd_server.cert_file), str(etcd_server.key_file)
        )
    assert str(info.value) == (
        "rpc error: code = Unavailable desc = connection error: desc = "
        f'"transport: Error while dialing: dial tcp 127.0.0.1:{port}: connect: connection refused"'
    )


def test_etcd_foreign_client_certificate(etcd_server: EtcdServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A client certificate from another CA is refused by --client-cert-auth."""
    other = TestPKI(tmp_path_factory.mktemp("other-ca"))
    cert, key = other.issue("intruder")
    with pytest.raises(DatastoreError) as info:
        open_external(etcd_server.endpoint, str(etcd_server.ca_file), str(cert), str(key))
    assert "authentication handshake failed" in str(info.value)


def test_etcd_unknown_server_ca(etcd_server: EtcdServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = TestPKI(tmp_path_factory.mktemp("wrong-ca"))
    with pytest.raises(DatastoreError) as info:
        open_external(etcd_server.endpoint, str(other.ca_cert), str(etcd_server.cert_file), str(etcd_server.key_file))
    assert "x509: certificate signed by unknown authority" in str(info.value)


# --------------------------------------------------------------------------- helpers


def test_redact_hides_raw_and_url_encoded_secret() -> None:
    assert redact("user p@ss:w and p%40ss%3Aw", "p@ss:w") == "user ***** and *****"
    assert redact("nothing", None, "") == "nothing"


def test_unknown_scheme() -> None:
    with pytest.raises(DatastoreError, match="storage backend is not defined"):
        open_external("mongodb://x", None, None, None)
