"""Real PostgreSQL, MariaDB and etcd servers on loopback for datastore tests.

Why real servers: the stand-in must fail exactly where k3s fails (wrong password,
refused port, missing database), and only a real server produces those answers.
The servers come from Debian packages (``postgresql``, ``mariadb-server``,
``etcd-server``). This module installs nothing: a missing binary makes the fixture
skip with the package name to install. Every server binds 127.0.0.1 on a free port,
keeps its data in a pytest temp dir and is stopped (by its own pid) at the end.

Also holds a throwaway CA helper (``TestPKI``) used for etcd TLS in the tests.

Use from a test module (or conftest) with::

    from tests.standin.datastore_servers import postgres_server, mariadb_server, etcd_server, test_pki  # noqa: F401
"""

# ruff: noqa: PLC0415, S310, PTH117, PTH118, PTH207 - optional imports per fixture; loopback https only; os.walk/glob are clearer here
from __future__ import annotations

import contextlib
import datetime
import glob
import importlib.util
import ipaddress
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 60.0


# --------------------------------------------------------------------------- helpers


def free_port(address: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now on ``address`` (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes], timeout: float = START_TIMEOUT, address: str = LOOPBACK
) -> None:
    """Wait until ``address:port`` accepts connections; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with rc={proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=0.5):
            return
        time.sleep(0.2)
    raise RuntimeError(f"server did not listen on {address}:{port} within {timeout:.0f}s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM the server we started (by pid), SIGKILL if it does not stop."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def _find_binary(candidates: list[str]) -> str | None:
    for pattern in candidates:
        if os.path.isabs(pattern):
            matches = sorted(glob.glob(pattern), reverse=True)
            if matches and os.access(matches[0], os.X_OK):
                return matches[0]
        else:
            found = shutil.which(pattern)
            if found:
                return found
    return None


def _service_user(name: str) -> pwd.struct_passwd | None:
    """The account a server should run as when we are root (postgres refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _chown_tree(path: Path, account: pwd.struct_passwd | None) -> None:
    if account is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, account.pw_uid, account.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), account.pw_uid, account.pw_gid)


def _popen(args: list[str], log: Path, account: pwd.struct_passwd | None) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    kwargs: dict[str, object] = {}
    if account is not None:
        kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    return subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]


@contextlib.contextmanager
def _service_dir(prefix: str, account: pwd.struct_passwd | None) -> Iterator[Path]:
    """A temp dir the service account can reach (pytest's tmp tree is 0700 root), removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix=f"provision-{prefix}-"))
    try:
        if account is not None:
            os.chown(base, account.pw_uid, account.pw_gid)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run(args: list[str], log: Path, account: pwd.struct_passwd | None) -> None:
    proc = _popen(args, log, account)
    if proc.wait(timeout=180) != 0:
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        raise RuntimeError(f"{args[0]} failed (rc={proc.returncode}); log tail:\n{tail}")


# --------------------------------------------------------------------------- PKI


@dataclass
class TestPKI:
    """A throwaway CA that issues leaf certificates for 127.0.0.1 (server and client use)."""

    __test__ = False  # not a test class despite the name

    directory: Path
    ca_cert: Path = field(init=False)
    ca_key: Path = field(init=False)

    def __post_init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test-ca@{self.directory.name}")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        self._key = key
        self._cert = cert
        self.ca_cert = self.directory / "ca.crt"
        self.ca_key = self.directory / "ca.key"
        self.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.ca_key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.ca_key.chmod(0o600)

    def issue(
        self, name: str, ips: tuple[str, ...] = (LOOPBACK,), dns: tuple[str, ...] = ("localhost",)
    ) -> tuple[Path, Path]:
        """Write ``<name>.crt``/``<name>.key`` valid for server and client auth; return their paths."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        cert_path = self.directory / f"{name}.crt"
        key_path = self.directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)
        return cert_path, key_path


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class SQLServer:
    """A running SQL server and one application account on it."""

    kind: str  # "postgres" | "mysql"
    port: int
    user: str
    password: str = field(repr=False)

    def endpoint(self, database: str = "kubernetes", password: str | None = None, port: int | None = None) -> str:
        """The k3s ``datastore-endpoint`` for this server."""
        pw = self.password if password is None else password
        p = self.port if port is None else port
        if self.kind == "postgres":
            return f"postgres://{self.user}:{pw}@{LOOPBACK}:{p}/{database}?sslmode=disable"
        return f"mysql://{self.user}:{pw}@tcp({LOOPBACK}:{p})/{database}"


@dataclass(frozen=True)
class EtcdServer:
    """A running single-member etcd with client TLS (mutual)."""

    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path

    @property
    def endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"


def _postgres_binaries() -> tuple[str, str]:
    postgres = _find_binary(["/usr/lib/postgresql/*/bin/postgres", "postgres"])
    if postgres is None:
        pytest.skip("PostgreSQL server binary not found (apt-get install postgresql)")
    initdb = str(Path(postgres).with_name("initdb"))
    if not os.access(initdb, os.X_OK):
        pytest.skip("initdb not found beside postgres (apt-get install postgresql)")
    return postgres, initdb


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLServer]:
    """PostgreSQL on 127.0.0.1:<free port>, user ``k3s`` (CREATEDB) with a random password."""
    postgres, initdb = _postgres_binaries()
    if importlib.util.find_spec("psycopg2") is None:
        pytest.skip("psycopg2 not installed (pip install psycopg2-binary / apt-get install python3-psycopg2)")
    account = _service_user("postgres")
    with _service_dir("postgres", account) as base:
        yield from _run_postgres(postgres, initdb, base, account)


def _run_postgres(postgres: str, initdb: str, base: Path, account: pwd.struct_passwd | None) -> Iterator[SQLServer]:
    import psycopg2

    data, sockets, log = base / "data", base / "sock", base / "postgres.log"
    data.mkdir()
    sockets.mkdir()
    _chown_tree(base, account)
    _run([initdb, "-D", str(data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256"], log, account)
    port = free_port()
    proc = _popen(
        [postgres, "-D", str(data), "-h", LOOPBACK, "-p", str(port), "-k", str(sockets), "-c", "fsync=off"],
        log,
        account,
    )
    try:
        wait_for_port(port, proc)
        password = secrets.token_hex(12)
        admin = psycopg2.connect(host=str(sockets), port=port, user="postgres", dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("CREATE ROLE k3s LOGIN CREATEDB PASSWORD %s", (password,))
        admin.close()
        yield SQLServer("postgres", port, "k3s", password)
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLServer]:
    """MariaDB on 127.0.0.1:<free port>, user ``k3s``@``%`` with all privileges and a random password."""
    mariadbd = _find_binary(["/usr/sbin/mariadbd", "mariadbd", "/usr/sbin/mysqld"])
    install_db = _find_binary(["mariadb-install-db", "mysql_install_db"])
    if mariadbd is None or install_db is None:
        pytest.skip("MariaDB server binaries not found (apt-get install mariadb-server)")
    if importlib.util.find_spec("pymysql") is None:
        pytest.skip("pymysql not installed (pip install pymysql / apt-get install python3-pymysql)")
    account = _service_user("mysql")
    with _service_dir("mariadb", account) as base:
        yield from _run_mariadb(mariadbd, install_db, base, account)


def _run_mariadb(mariadbd: str, install_db: str, base: Path, account: pwd.struct_passwd | None) -> Iterator[SQLServer]:
    import pymysql

    data, log, sock = base / "data", base / "mariadb.log", base / "mysqld.sock"
    data.mkdir()
    # A private temporary directory: with the default (/tmp) the bootstrap once failed in CI because a temporary
    # table file vanished from the shared /tmp under a parallel run ("Could not remove temporary table ... error: 2").
    scratch = base / "tmp"
    scratch.mkdir()
    _chown_tree(base, account)
    user_args = [f"--user={account.pw_name}"] if account else []
    _run(
        [
            install_db,
            "--no-defaults",
            f"--datadir={data}",
            f"--tmpdir={scratch}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *user_args,
        ],
        log,
        None,
    )
    port = free_port()
    proc = _popen(
        [
            mariadbd,
            "--no-defaults",
            f"--datadir={data}",
            f"--tmpdir={scratch}",
            f"--socket={sock}",
            f"--port={port}",
            f"--bind-address={LOOPBACK}",
            f"--pid-file={base / 'mysqld.pid'}",
            "--skip-log-bin",
            "--innodb-flush-log-at-trx-commit=0",
            *user_args,
        ],
        log,
        None,
    )
    try:
        wait_for_port(port, proc)
        password = secrets.token_hex(12)
        admin = pymysql.connect(unix_socket=str(sock), user="root", autocommit=True)
        with admin.cursor() as cur:
            cur.execute("CREATE USER 'k3s'@'%%' IDENTIFIED BY %s", (password,))
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'k3s'@'%'")
        admin.close()
        yield SQLServer("mysql", port, "k3s", password)
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """One throwaway CA for the session."""
    pytest.importorskip("cryptography")
    return TestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory, test_pki: TestPKI) -> Iterator[EtcdServer]:
    """etcd (Debian's etcd-server) on https://127.0.0.1:<free port> with --client-cert-auth."""
    etcd = _find_binary(["/usr/bin/etcd", "etcd"])
    if etcd is None:
        pytest.skip("etcd binary not found (apt-get install etcd-server)")
    base = tmp_path_factory.mktemp("etcd")
    server_cert, server_key = test_pki.issue("etcd-server")
    client_cert, client_key = test_pki.issue("etcd-client")
    port, peer_port = free_port(), free_port()
    client_url = f"https://{LOOPBACK}:{port}"
    peer_url = f"http://{LOOPBACK}:{peer_port}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ETCD_UNSUPPORTED_ARCH": os.environ.get("ETCD_UNSUPPORTED_ARCH", ""),
    }
    log = base / "etcd.log"
    args = [
        etcd, "--name", "test", "--data-dir", str(base / "data"),
        "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"test={peer_url}", "--initial-cluster-state", "new",
        "--cert-file", str(server_cert), "--key-file", str(server_key),
        "--trusted-ca-file", str(test_pki.ca_cert), "--client-cert-auth",
    ]  # fmt: skip
    handle = log.open("ab")
    proc = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        wait_for_port(port, proc)
        server = EtcdServer(port, test_pki.ca_cert, client_cert, client_key)
        _wait_etcd_healthy(server, proc)
        yield server
    finally:
        stop_process(proc)


def _wait_etcd_healthy(server: EtcdServer, proc: subprocess.Popen[bytes]) -> None:
    import ssl

    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    ctx.load_cert_chain(str(server.cert_file), str(server.key_file))
    deadline = time.monotonic() + START_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"etcd exited early with rc={proc.returncode}")
        try:
            with urllib.request.urlopen(f"{server.endpoint}/health", context=ctx, timeout=2) as resp:
                if b'"true"' in resp.read():
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise RuntimeError(f"etcd not healthy: {last}")
