"""Real PostgreSQL, MariaDB and etcd on this machine, bound ONLY to one lab network's gateway address.

The lab hosts reach the gateway address of their Docker network (it is an address of this machine), so a
datastore bound there is a real network datastore for them, and nothing outside this machine can reach it.
Each server runs as its own process (stopped by its pid), keeps its data in a temporary directory and accepts
one application account with a random password. Binaries come from Debian's postgresql, mariadb-server and
etcd-server packages; without them the test is skipped with the package to install.
"""

# ruff: noqa: PLC0415 - drivers are imported only by the fixture that needs them
from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.lab.lab import Lab
from tests.standin.datastore_servers import (
    TestPKI,
    _chown_tree,
    _find_binary,
    _popen,
    _run,
    _service_user,
    free_port,
    stop_process,
    wait_for_port,
)

# The database servers run as their own accounts, which must reach their data directory; /tmp may be root-only.
SERVICE_ROOT = Path("/var/tmp/provision-ha")


@contextlib.contextmanager
def _service_dir(prefix: str, account: pwd.struct_passwd | None) -> Iterator[Path]:
    SERVICE_ROOT.mkdir(mode=0o755, exist_ok=True)
    SERVICE_ROOT.chmod(0o755)
    base = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=SERVICE_ROOT))
    try:
        if account is not None:
            os.chown(base, account.pw_uid, account.pw_gid)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def gateway_of(lab: Lab) -> str:
    """The lab network's gateway: Docker gives the bridge the subnet's first address."""
    return str(next(ipaddress.ip_network(lab.subnet).hosts()))


@dataclass(frozen=True)
class LabDatastore:
    """A datastore the lab hosts can use: its k3s endpoint without password, and the password apart."""

    kind: str  # postgres | mysql | etcd
    address: str
    port: int
    user: str = "k3s"
    password: str = field(default="", repr=False)
    database: str = "kubernetes"
    # etcd over TLS with client certificates: the CA and a client certificate/key (PEM files on this machine).
    tls: tuple[Path, Path, Path] | None = None

    @property
    def endpoint(self) -> str:
        """k3s_datastore_endpoint as a user writes it: no password inside."""
        if self.kind == "postgres":
            return f"postgres://{self.user}@{self.address}:{self.port}/{self.database}?sslmode=disable"
        if self.kind == "mysql":
            return f"mysql://{self.user}@tcp({self.address}:{self.port})/{self.database}"
        return f"{'https' if self.tls else 'http'}://{self.address}:{self.port}"

    def kine_rows(self) -> int:
        """Rows in kine's table: proof that K3s keeps its state in this datastore."""
        if self.kind == "postgres":
            import psycopg2

            conn = psycopg2.connect(host=self.address, port=self.port, user=self.user, password=self.password,
                                    dbname=self.database)
            with conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM kine")
                count = int(cur.fetchone()[0])
            conn.close()
            return count
        import pymysql

        conn = pymysql.connect(host=self.address, port=self.port, user=self.user, password=self.password,
                               database=self.database)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM kine")
            count = int(cur.fetchone()[0])
        conn.close()
        return count

    def etcd_keys(self) -> list[str]:
        """Keys in the external etcd (v3 API through the JSON gateway, no etcdctl needed)."""
        import base64
        import json

        body = json.dumps({"key": base64.b64encode(b"\0").decode(), "range_end": base64.b64encode(b"\0").decode(),
                           "keys_only": True}).encode()
        request = urllib.request.Request(f"{self.endpoint}/v3/kv/range", data=body, method="POST")  # noqa: S310
        context = None
        if self.tls:
            import ssl

            context = ssl.create_default_context(cafile=str(self.tls[0]))
            context.load_cert_chain(str(self.tls[1]), str(self.tls[2]))
        with urllib.request.urlopen(request, timeout=5, context=context) as resp:  # noqa: S310 - our own etcd
            kvs = json.loads(resp.read()).get("kvs", [])
        return [base64.b64decode(kv["key"]).decode("utf-8", "replace") for kv in kvs]


@contextlib.contextmanager
def postgres_on(address: str, subnet: str) -> Iterator[LabDatastore]:
    postgres = _find_binary(["/usr/lib/postgresql/*/bin/postgres"])
    if postgres is None:
        pytest.skip("PostgreSQL server binary not found (apt-get install postgresql)")
    import psycopg2

    initdb = str(Path(postgres).with_name("initdb"))
    account = _service_user("postgres")
    with _service_dir("ha-postgres", account) as base:
        data, sockets, log = base / "data", base / "sock", base / "postgres.log"
        data.mkdir()
        sockets.mkdir()
        _chown_tree(base, account)
        _run([initdb, "-D", str(data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256"], log,
             account)
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {subnet} scram-sha-256\nhost all all samehost scram-sha-256\n")
        port = free_port(address)
        proc = _popen([postgres, "-D", str(data), "-h", address, "-p", str(port), "-k", str(sockets),
                       "-c", "fsync=off"], log, account)
        try:
            wait_for_port(port, proc, address=address)
            password = secrets.token_hex(12)
            admin = psycopg2.connect(host=str(sockets), port=port, user="postgres", dbname="postgres")
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute("CREATE ROLE k3s LOGIN CREATEDB PASSWORD %s", (password,))
                cur.execute("CREATE DATABASE kubernetes OWNER k3s")
            admin.close()
            yield LabDatastore("postgres", address, port, password=password)
        finally:
            stop_process(proc)


@contextlib.contextmanager
def mariadb_on(address: str) -> Iterator[LabDatastore]:
    mariadbd = _find_binary(["/usr/sbin/mariadbd", "/usr/sbin/mysqld"])
    install_db = _find_binary(["mariadb-install-db", "mysql_install_db"])
    if mariadbd is None or install_db is None:
        pytest.skip("MariaDB server binaries not found (apt-get install mariadb-server)")
    import pymysql

    account = _service_user("mysql")
    with _service_dir("ha-mariadb", account) as base:
        data, log, sock, tmp = base / "data", base / "mariadb.log", base / "mysqld.sock", base / "tmp"
        data.mkdir()
        tmp.mkdir()  # /tmp may be root-only; MariaDB needs a temporary directory its account can write
        _chown_tree(base, account)
        user_args = [f"--user={account.pw_name}"] if account else []
        _run([install_db, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
              "--skip-test-db", f"--tmpdir={tmp}", *user_args], log, None)
        port = free_port(address)
        proc = _popen([mariadbd, "--no-defaults", f"--datadir={data}", f"--socket={sock}", f"--port={port}",
                       f"--bind-address={address}", f"--pid-file={base / 'mysqld.pid'}", "--skip-log-bin",
                       "--skip-name-resolve", "--innodb-flush-log-at-trx-commit=0", f"--tmpdir={tmp}", *user_args],
                      log, None)
        try:
            wait_for_port(port, proc, address=address)
            password = secrets.token_hex(12)
            admin = pymysql.connect(unix_socket=str(sock), user="root", autocommit=True)
            with admin.cursor() as cur:
                cur.execute("CREATE USER 'k3s'@'%%' IDENTIFIED BY %s", (password,))
                cur.execute("CREATE DATABASE kubernetes")
                cur.execute("GRANT ALL PRIVILEGES ON kubernetes.* TO 'k3s'@'%'")
            admin.close()
            yield LabDatastore("mysql", address, port, password=password)
        finally:
            stop_process(proc)


@contextlib.contextmanager
def etcd_on(address: str, workdir: Path, pki: TestPKI | None = None) -> Iterator[LabDatastore]:
    """Debian's etcd on the gateway address; with `pki`, over TLS requiring a client certificate of that CA (the
    datastore's `tls` then names the CA and a client certificate for the tests and the product)."""
    etcd = _find_binary(["/usr/bin/etcd"])
    if etcd is None:
        pytest.skip("etcd binary not found (apt-get install etcd-server)")
    workdir.mkdir(parents=True, exist_ok=True)
    port, peer_port = free_port(address), free_port("127.0.0.1")
    scheme = "https" if pki else "http"
    client_url, peer_url = f"{scheme}://{address}:{port}", f"http://127.0.0.1:{peer_port}"
    args = [
        etcd, "--name", "ha", "--data-dir", str(workdir / "data"),
        "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"ha={peer_url}", "--initial-cluster-state", "new",
    ]  # fmt: skip
    tls = None
    if pki is not None:
        server_cert, server_key = pki.issue("etcd-server", ips=(address, "127.0.0.1"))
        client_cert, client_key = pki.issue("etcd-client")
        args += ["--cert-file", str(server_cert), "--key-file", str(server_key), "--client-cert-auth",
                 "--trusted-ca-file", str(pki.ca_cert)]
        tls = (pki.ca_cert, client_cert, client_key)
    with (workdir / "etcd.log").open("ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, address=address)
        yield LabDatastore("etcd", address, port, tls=tls)
    finally:
        stop_process(proc)
