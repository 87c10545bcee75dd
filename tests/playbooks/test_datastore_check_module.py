"""The k3s_datastore_check module against real PostgreSQL / MariaDB / etcd on loopback (Debian's packages)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ha.datastores import LabDatastore, mariadb_on, postgres_on
from tests.playbook_code import load
from tests.standin.datastore_servers import etcd_server, free_port, test_pki  # noqa: F401 - pytest fixtures

# One xdist worker runs this whole module, so its module-scoped fixture starts once (scripts/test runs in parallel).
pytestmark = [pytest.mark.datastore, pytest.mark.xdist_group("datastore-check-servers")]



check_module = load("library/k3s_datastore_check.py")


def _params(endpoint: str, password: str = "", **extra: str) -> dict[str, object]:
    return {"endpoint": endpoint, "password": password, "ca_file": "", "cert_file": "", "key_file": "", "timeout": 3,
            **extra}


@pytest.fixture(scope="module", params=["postgres", "mariadb"])
def sql_server(request: pytest.FixtureRequest) -> Iterator[LabDatastore]:
    # The servers of tests/ha/datastores.py (data under /var/tmp, reachable by the database accounts), on loopback.
    starter = postgres_on("127.0.0.1", "127.0.0.1/32") if request.param == "postgres" else mariadb_on("127.0.0.1")
    with starter as server:
        yield server


def test_right_and_wrong_password(sql_server: LabDatastore) -> None:
    server = sql_server
    assert "accepted user 'k3s'" in check_module.check(_params(server.endpoint, server.password))
    with pytest.raises(check_module.DatastoreCheckError) as failure:
        check_module.check(_params(server.endpoint, "wrong-" + server.password))
    assert failure.value.kind == "auth"
    assert "wrong password" in str(failure.value)
    assert server.password not in str(failure.value)


def test_closed_port_is_unreachable_not_a_timeout() -> None:
    port = free_port()
    with pytest.raises(check_module.DatastoreCheckError) as failure:
        check_module.check(_params(f"postgres://k3s@127.0.0.1:{port}/k"))
    assert failure.value.kind == "unreachable"
    assert f"cannot connect to 127.0.0.1:{port}" in str(failure.value)


def test_external_etcd_with_client_certificates(etcd_server) -> None:  # noqa: F811 - fixture
    params = _params(etcd_server.endpoint, ca_file=str(etcd_server.ca_file), cert_file=str(etcd_server.cert_file),
                     key_file=str(etcd_server.key_file))
    assert check_module.check(params).startswith("etcd healthy at 127.0.0.1")
    with pytest.raises(check_module.DatastoreCheckError) as failure:
        check_module.check(_params(etcd_server.endpoint, ca_file=str(etcd_server.ca_file)))
    assert failure.value.kind in ("tls", "unreachable")
