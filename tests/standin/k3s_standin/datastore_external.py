"""External datastores for the stand-in: PostgreSQL, MySQL/MariaDB and etcd.

k3s hands ``--datastore-endpoint`` to kine (SQL) or straight to the etcd client (http/https).
This module does the same with real client libraries so that the stand-in succeeds and
fails exactly where k3s would: it really connects, creates the database and the ``kine``
table when it can, and turns every failure into a :class:`DatastoreError` whose text is
what k3s logs. Reference behaviour (restated, not copied) from k3s-io/kine:

* ``pkg/endpoint``: ``http://``/``https://`` mean etcd, otherwise ``<driver>://<dsn>``;
  kine wraps driver errors as ``building kine: <err>`` and k3s adds
  ``creating storage endpoint: `` (then logs it at fatal level).
* ``pkg/drivers/pgsql``: ping the target database; SQLSTATE 3D000 (missing database) makes
  kine connect to ``postgres`` and ``CREATE DATABASE``; any other error is returned as is
  (lib/pq renders server errors as ``pq: <message>``). Default database ``kubernetes``.
* ``pkg/drivers/mysql``: ``create database if not exists``; error 1049 (unknown database)
  retries without a database. go-sql-driver renders ``Error 1045 (28000): <message>``.
* Network errors keep Go's wording: ``dial tcp 127.0.0.1:5432: connect: connection refused``.

Passwords never appear in a message: every message is passed through :func:`redact`.
Imports of psycopg2/pymysql are lazy so the zipapp runs where they are not needed.
"""

# ruff: noqa: PLC0415, S310 - drivers are imported lazily (optional in the zipapp); URLs are checked http(s)
from __future__ import annotations

import base64
import contextlib
import errno
import json
import re
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import log
from .datastore import Datastore, DatastoreError, DatastoreUnavailable

CONNECT_TIMEOUT = 5.0
STORAGE_PREFIX = "creating storage endpoint: building kine: "
REDACTED = "*****"

# SQLSTATE for the MySQL error numbers a user is likely to meet (go-sql-driver prints both).
_MYSQL_SQLSTATE = {1044: "42000", 1045: "28000", 1049: "42000", 1130: "HY000", 1142: "42000", 1698: "28000"}


# --------------------------------------------------------------------------- entry point


def open_external(endpoint: str, cafile: str | None, certfile: str | None, keyfile: str | None) -> Datastore:
    """Open the datastore named by a k3s ``datastore-endpoint``; raise DatastoreError like k3s would."""
    tls = TLSFiles(cafile, certfile, keyfile)
    scheme = endpoint.split("://", 1)[0] if "://" in endpoint else ""
    opener = _OPENERS.get(scheme)
    if opener is None:
        raise DatastoreError(STORAGE_PREFIX + "storage backend is not defined")
    return opener(endpoint, tls)


@dataclass(frozen=True)
class TLSFiles:
    """``datastore-cafile``/``-certfile``/``-keyfile`` as given (any may be absent)."""

    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    @property
    def any(self) -> bool:
        return bool(self.cafile or self.certfile or self.keyfile)


def redact(text: str, *secrets: str | None) -> str:
    """Replace each non-empty secret (raw and URL-encoded) in ``text``."""
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, urllib.parse.quote(secret, safe="")}:
            text = text.replace(form, REDACTED)
    return text


# --------------------------------------------------------------------------- Go-style dialing


def _go_addr(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def dial_error(host: str, port: int, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """Try a TCP connect; return Go's ``net.Dial`` error text, or None if it connected."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return f"dial tcp: lookup {host}: no such host"
    message = f"dial tcp: lookup {host}: no such host"
    for family, socktype, proto, _, sockaddr in infos:
        addr = _go_addr(str(sockaddr[0]), port)
        try:
            with socket.socket(family, socktype, proto) as sock:
                sock.settimeout(timeout)
                sock.connect(sockaddr)
            return None
        except TimeoutError:
            message = f"dial tcp {addr}: i/o timeout"
        except ConnectionRefusedError:
            message = f"dial tcp {addr}: connect: connection refused"
        except OSError as exc:
            reason = {
                errno.EHOSTUNREACH: "no route to host",
                errno.ENETUNREACH: "network is unreachable",
            }.get(exc.errno or 0, (exc.strerror or str(exc)).lower())
            message = f"dial tcp {addr}: connect: {reason}"
    return message


# --------------------------------------------------------------------------- SQL (kine table)


@dataclass
class _Dialect:
    """What differs between PostgreSQL and MySQL for the kine table."""

    driver: str
    schema: list[str]
    is_unique_violation: Callable[[BaseException], bool]
    is_connection_error: Callable[[BaseException], bool]
    connect: Callable[[], Any]
    describe_error: Callable[[BaseException], str]
    secrets: tuple[str, ...] = field(default=(), repr=False)


class SQLKineDatastore:
    """kine's append-only ``kine`` table on a DB-API connection (``%s`` placeholders).

    The newest row per name wins; delete appends a row with ``deleted=1``. The unique
    index on ``(name, prev_revision)`` (as in kine) makes concurrent writers from several
    servers safe: the loser of a race gets a unique violation and retries (put) or
    reports "exists" (create).
    """

    def __init__(self, dialect: _Dialect) -> None:
        self._dialect = dialect
        self._lock = threading.RLock()
        self._conn: Any = None
        self._closed = False
        self._connect()
        self._setup()

    # -- connection handling

    def _connect(self) -> None:
        self._conn = self._dialect.connect()

    def _setup(self) -> None:
        log.info("Configuring database table schema and indexes, this may take a moment...")
        with self._cursor() as cur:
            for stmt in self._dialect.schema:
                cur.execute(stmt)
        log.info("Database tables and indexes are up to date")

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        cur = self._conn.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def _run(self, action: Callable[[Any], Any]) -> Any:
        """Run ``action(cursor)`` under the lock; reconnect once if the server dropped us."""
        with self._lock:
            if self._closed:
                raise DatastoreUnavailable("sql: database is closed")
            for attempt in (1, 2):
                try:
                    if self._conn is None:
                        self._connect()
                    with self._cursor() as cur:
                        return action(cur)
                except DatastoreError:
                    raise
                except Exception as exc:
                    if not self._dialect.is_connection_error(exc):
                        raise DatastoreError(self._describe(exc)) from exc
                    self._drop_connection()
                    if attempt == 2:
                        raise DatastoreUnavailable(self._describe(exc)) from exc
        raise AssertionError("unreachable")

    def _describe(self, exc: BaseException) -> str:
        return redact(self._dialect.describe_error(exc), *self._dialect.secrets)

    def _drop_connection(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection may fail in any way
            if self._conn is not None:
                self._conn.close()
        self._conn = None

    # -- kine rows

    @staticmethod
    def _latest(cur: Any, key: str) -> tuple[int, int, bytes | None] | None:
        cur.execute("SELECT id, deleted, value FROM kine WHERE name = %s ORDER BY id DESC LIMIT 1", (key,))
        row = cur.fetchone()
        if row is None:
            return None
        value = bytes(row[2]) if row[2] is not None else None
        return int(row[0]), int(row[1] or 0), value

    def _append(self, cur: Any, key: str, value: bytes | None, deleted: bool, only_if_absent: bool) -> bool:
        """Insert the next row for ``key``; False when ``only_if_absent`` and it exists."""
        for _ in range(20):
            latest = self._latest(cur, key)
            exists = latest is not None and not latest[1]
            if only_if_absent and exists:
                return False
            if deleted and not exists:
                return True
            prev_rev = latest[0] if latest else 0
            old_value = latest[2] if latest else None
            created = 0 if exists else 1
            create_rev = prev_rev if exists else 0
            stored = old_value if deleted else value
            try:
                cur.execute(
                    "INSERT INTO kine(name, created, deleted, create_revision, prev_revision, lease, value, old_value)"
                    " VALUES (%s, %s, %s, %s, %s, 0, %s, %s)",
                    (key, created, 1 if deleted else 0, create_rev, prev_rev, stored, old_value),
                )
                return True
            except Exception as exc:
                if not self._dialect.is_unique_violation(exc):
                    raise
                # another server wrote the same key first; re-read and decide again
        raise DatastoreUnavailable(f"too many concurrent writes to key {key}")

    # -- Datastore protocol

    def get(self, key: str) -> bytes | None:
        latest = self._run(lambda cur: self._latest(cur, key))
        if latest is None or latest[1]:
            return None
        return latest[2] if latest[2] is not None else b""

    def put(self, key: str, value: bytes) -> None:
        self._run(lambda cur: self._append(cur, key, value, deleted=False, only_if_absent=False))

    def create(self, key: str, value: bytes) -> bool:
        return bool(self._run(lambda cur: self._append(cur, key, value, deleted=False, only_if_absent=True)))

    def delete(self, key: str) -> None:
        self._run(lambda cur: self._append(cur, key, None, deleted=True, only_if_absent=False))

    def list(self, prefix: str) -> dict[str, bytes]:
        def query(cur: Any) -> list[Any]:
            cur.execute(
                "SELECT kv.name, kv.deleted, kv.value FROM kine kv"
                " JOIN (SELECT MAX(id) AS id FROM kine WHERE name LIKE %s GROUP BY name) AS maxkv"
                " ON maxkv.id = kv.id ORDER BY kv.name",
                (_like_prefix(prefix),),
            )
            return list(cur.fetchall())

        rows = self._run(query)
        return {str(r[0]): bytes(r[2]) if r[2] is not None else b"" for r in rows if not r[1]}

    def healthy(self) -> bool:
        try:
            self._run(lambda cur: (cur.execute("SELECT 1"), cur.fetchone()))
            return True
        except DatastoreError:
            return False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop_connection()


def _like_prefix(prefix: str) -> str:
    """Escape LIKE wildcards (backslash is the default escape in both PostgreSQL and MySQL)."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# --------------------------------------------------------------------------- PostgreSQL

_PG_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS kine (id SERIAL PRIMARY KEY, name VARCHAR(630), created INTEGER,"
    " deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER,"
    " value bytea, old_value bytea)",
    "CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)",
    "CREATE INDEX IF NOT EXISTS kine_name_id_index ON kine (name,id)",
    "CREATE INDEX IF NOT EXISTS kine_id_deleted_index ON kine (id,deleted)",
    "CREATE INDEX IF NOT EXISTS kine_prev_revision_index ON kine (prev_revision)",
    "CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine (name, prev_revision)",
]


@dataclass(frozen=True)
class PostgresDSN:
    """A parsed ``postgres://user:pass@host:port/db?opts`` endpoint."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    options: dict[str, str]

    @classmethod
    def parse(cls, endpoint: str, tls: TLSFiles) -> PostgresDSN:
        parts = urllib.parse.urlsplit(endpoint)
        try:
            port = parts.port or 5432
        except ValueError as exc:
            raise DatastoreError(STORAGE_PREFIX + redact(f"parse {endpoint!r}: invalid port", parts.password)) from exc
        database = parts.path.lstrip("/") or "kubernetes"
        options = dict(urllib.parse.parse_qsl(parts.query))
        for option, value in (("sslrootcert", tls.cafile), ("sslcert", tls.certfile), ("sslkey", tls.keyfile)):
            if value and option not in options:
                options[option] = value
                options.setdefault("sslmode", "verify-full")
        return cls(
            host=parts.hostname or "localhost",
            port=port,
            user=urllib.parse.unquote(parts.username or "postgres"),
            password=urllib.parse.unquote(parts.password or ""),
            database=database,
            options=options,
        )


def _pg_message(exc: BaseException) -> str:
    """lib/pq style: ``pq: <server message>`` (psycopg2 adds a libpq preamble we strip)."""
    text = str(exc).strip()
    fatal = re.search(r"(?:FATAL|ERROR):\s+(.*)", text)
    if fatal:
        return "pq: " + fatal.group(1).strip()
    text = re.sub(r'^connection to server at "[^"]*"(?: \([^)]*\))?, port \d+ failed:\s*', "", text)
    return "pq: " + text.splitlines()[0] if text else "pq: unknown error"


def open_postgres(endpoint: str, tls: TLSFiles) -> Datastore:
    """kine's pgsql driver: ping, create the database on 3D000, then the schema."""
    dsn = PostgresDSN.parse(endpoint, tls)
    try:
        import psycopg2
        import psycopg2.errors
    except ImportError as exc:
        raise DatastoreError(STORAGE_PREFIX + "postgres driver (psycopg2) is not available") from exc

    def fail(message: str) -> DatastoreError:
        return DatastoreError(STORAGE_PREFIX + redact(message, dsn.password))

    dial = dial_error(dsn.host, dsn.port)
    if dial is not None:
        raise fail(dial)

    def connect(database: str) -> Any:
        conn = psycopg2.connect(
            host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password, dbname=database,
            connect_timeout=int(CONNECT_TIMEOUT), application_name="kine", **dsn.options,
        )  # fmt: skip
        conn.autocommit = True
        return conn

    try:
        connect(dsn.database).close()
    except psycopg2.Error as exc:
        message = _pg_message(exc)
        if not re.search(r'database ".*" does not exist', message):
            raise fail(message) from exc
        _pg_create_database(connect, dsn.database, fail)

    def is_unique(exc: BaseException) -> bool:
        return isinstance(exc, psycopg2.errors.UniqueViolation)

    def is_connection(exc: BaseException) -> bool:
        return isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError)

    log.info("Configuring postgres database connection pooling: maxIdleConns=2, maxOpenConns=0, connMaxLifetime=0s")
    dialect = _Dialect(
        driver="postgres", schema=_PG_SCHEMA, is_unique_violation=is_unique, is_connection_error=is_connection,
        connect=lambda: connect(dsn.database), describe_error=_pg_message, secrets=(dsn.password,),
    )  # fmt: skip
    try:
        return SQLKineDatastore(dialect)
    except DatastoreError as exc:
        raise fail(str(exc)) from exc
    except psycopg2.Error as exc:
        raise fail(_pg_message(exc)) from exc


def _pg_create_database(connect: Callable[[str], Any], database: str, fail: Callable[[str], DatastoreError]) -> None:
    from psycopg2 import Error, sql

    try:
        conn = connect("postgres")
    except Error as exc:
        raise fail(_pg_message(exc)) from exc
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    except Error as exc:
        raise fail(_pg_message(exc)) from exc
    finally:
        conn.close()


# --------------------------------------------------------------------------- MySQL / MariaDB

_MYSQL_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS kine (id INTEGER AUTO_INCREMENT, name VARCHAR(630), created INTEGER,"
    " deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER,"
    " value MEDIUMBLOB, old_value MEDIUMBLOB, PRIMARY KEY (id))",
]
_MYSQL_INDEXES = [
    "CREATE INDEX kine_name_index ON kine (name)",
    "CREATE INDEX kine_name_id_index ON kine (name,id)",
    "CREATE UNIQUE INDEX kine_name_prev_revision_uindex ON kine (name, prev_revision)",
]
_MYSQL_DSN = re.compile(r"^(?:(?P<net>[a-z0-9]*)(?:\((?P<addr>[^)]*)\))?)?/(?P<db>[^?]*)(?:\?(?P<query>.*))?$")


@dataclass(frozen=True)
class MySQLDSN:
    """A parsed go-sql-driver DSN: ``user:pass@tcp(host:3306)/db?params``."""

    host: str
    port: int
    unix_socket: str | None
    user: str
    password: str = field(repr=False)
    database: str
    options: dict[str, str]

    @classmethod
    def parse(cls, endpoint: str) -> MySQLDSN:
        dsn = endpoint.split("://", 1)[1]
        slash = dsn.rfind("/")
        at = dsn.rfind("@", 0, slash) if slash >= 0 else -1
        creds, rest = (dsn[:at], dsn[at + 1 :]) if at >= 0 else ("", dsn)
        user, _, password = creds.partition(":")
        match = _MYSQL_DSN.match(rest)
        if slash < 0 or match is None:
            raise DatastoreError(STORAGE_PREFIX + "invalid DSN: missing the slash separating the database name")
        net = match.group("net") or "tcp"
        addr = match.group("addr") or ("127.0.0.1:3306" if net == "tcp" else "/tmp/mysql.sock")
        host, port, unix_socket = "127.0.0.1", 3306, None
        if net == "unix":
            unix_socket = addr
        else:
            host, _, port_text = addr.rpartition(":") if ":" in addr else (addr, "", "3306")
            host = host.strip("[]") or "127.0.0.1"
            port = int(port_text or 3306)
        return cls(
            host=host, port=port, unix_socket=unix_socket, user=user or "root", password=password,
            database=match.group("db") or "kubernetes",
            options=dict(urllib.parse.parse_qsl(match.group("query") or "")),
        )  # fmt: skip


def _mysql_message(exc: BaseException) -> str:
    """go-sql-driver style: ``Error 1045 (28000): Access denied ...``."""
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int):
        code, text = args[0], str(args[1])
        state = _MYSQL_SQLSTATE.get(code)
        return f"Error {code} ({state}): {text}" if state else f"Error {code}: {text}"
    return str(exc)


def open_mysql(endpoint: str, tls: TLSFiles) -> Datastore:
    """kine's mysql driver: ``create database if not exists`` (retry without db on 1049), then schema."""
    dsn = MySQLDSN.parse(endpoint)
    try:
        import pymysql
    except ImportError as exc:
        raise DatastoreError(STORAGE_PREFIX + "mysql driver (pymysql) is not available") from exc

    def fail(message: str) -> DatastoreError:
        return DatastoreError(STORAGE_PREFIX + redact(message, dsn.password))

    if dsn.unix_socket is None:
        dial = dial_error(dsn.host, dsn.port)
        if dial is not None:
            raise fail(dial)

    ssl_options: dict[str, str] | None = None
    if tls.any:
        ssl_options = {k: v for k, v in (("ca", tls.cafile), ("cert", tls.certfile), ("key", tls.keyfile)) if v}

    def connect(database: str | None) -> Any:
        return pymysql.connect(
            host=dsn.host, port=dsn.port, unix_socket=dsn.unix_socket, user=dsn.user, password=dsn.password,
            database=database, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT), read_timeout=30,
            write_timeout=30, ssl=ssl_options, charset="utf8mb4",
        )  # fmt: skip

    create = f"CREATE DATABASE IF NOT EXISTS `{dsn.database.replace('`', '``')}`"
    try:
        _mysql_exec(connect(dsn.database), create)
    except pymysql.MySQLError as exc:
        if getattr(exc, "args", (None,))[0] != 1049:
            raise fail(_mysql_message(exc)) from exc
        try:
            _mysql_exec(connect(None), create)
        except pymysql.MySQLError as exc2:
            raise fail(_mysql_message(exc2)) from exc2

    def is_unique(exc: BaseException) -> bool:
        return isinstance(exc, pymysql.IntegrityError) and exc.args[0] == 1062

    def is_connection(exc: BaseException) -> bool:
        return isinstance(exc, pymysql.OperationalError | pymysql.InterfaceError) and exc.args[:1] != (1062,)

    log.info("Configuring mysql database connection pooling: maxIdleConns=2, maxOpenConns=0, connMaxLifetime=0s")
    dialect = _Dialect(
        driver="mysql", schema=_MYSQL_SCHEMA, is_unique_violation=is_unique, is_connection_error=is_connection,
        connect=lambda: connect(dsn.database), describe_error=_mysql_message, secrets=(dsn.password,),
    )  # fmt: skip
    try:
        store = SQLKineDatastore(dialect)
        for index in _MYSQL_INDEXES:
            _mysql_create_index(store, index)
        return store
    except DatastoreError as exc:
        raise fail(str(exc)) from exc
    except pymysql.MySQLError as exc:
        raise fail(_mysql_message(exc)) from exc


def _mysql_exec(conn: Any, statement: str) -> None:
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def _mysql_create_index(store: SQLKineDatastore, statement: str) -> None:
    """MySQL has no CREATE INDEX IF NOT EXISTS; like kine, ignore 1061 (duplicate key name)."""

    def create(cur: Any) -> None:
        try:
            cur.execute(statement)
        except Exception as exc:
            if getattr(exc, "args", (None,))[0] != 1061:
                raise

    store._run(create)


# --------------------------------------------------------------------------- external etcd (JSON gateway)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _prefix_end(prefix: bytes) -> bytes:
    """etcd's range_end for "all keys with this prefix": increment the last byte < 0xff."""
    trimmed = bytearray(prefix)
    while trimmed:
        if trimmed[-1] < 0xFF:
            trimmed[-1] += 1
            return bytes(trimmed)
        trimmed.pop()
    return b"\0"


_GRPC_CODES = {
    1: "Canceled",
    2: "Unknown",
    3: "InvalidArgument",
    4: "DeadlineExceeded",
    5: "NotFound",
    6: "AlreadyExists",
    7: "PermissionDenied",
    8: "ResourceExhausted",
    9: "FailedPrecondition",
    14: "Unavailable",
    16: "Unauthenticated",
}


def _grpc_unavailable(detail: str) -> str:
    return f'rpc error: code = Unavailable desc = connection error: desc = "transport: {detail}"'


class EtcdGatewayDatastore:
    """etcd v3 through its JSON gRPC gateway (``/v3/kv/...``) with urllib.

    Endpoints are tried in order and the last good one is preferred, as the etcd client
    balancer does. etcd 3.4 serves ``/v3/`` (and the deprecated ``/v3beta/``); older
    servers only ``/v3beta/``/``/v3alpha/``, so the prefix is probed once at open.
    """

    PREFIXES = ("/v3", "/v3beta", "/v3alpha")

    def __init__(self, endpoints: list[str], tls: TLSFiles, timeout: float = CONNECT_TIMEOUT) -> None:
        self._endpoints = endpoints
        self._timeout = timeout
        self._context = self._ssl_context(tls) if any(e.startswith("https://") for e in endpoints) else None
        self._preferred = 0
        self._prefix = self.PREFIXES[0]
        self._lock = threading.Lock()
        self._closed = False
        self._probe()

    @staticmethod
    def _ssl_context(tls: TLSFiles) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=tls.cafile or None)
            if tls.certfile:
                context.load_cert_chain(tls.certfile, tls.keyfile or None)
        except (OSError, ssl.SSLError) as exc:
            raise DatastoreError(f"failed to load datastore TLS files: {exc}") from exc
        return context

    def _probe(self) -> None:
        for prefix in self.PREFIXES:
            self._prefix = prefix
            try:
                self._call("/kv/range", {"key": _b64(b"/"), "limit": 1, "count_only": True}, fatal=True)
                return
            except _NotFoundError:
                continue
        raise DatastoreError("etcd: JSON gateway not found (tried /v3, /v3beta, /v3alpha)")

    def _call(self, path: str, body: dict[str, Any], fatal: bool = False) -> dict[str, Any]:
        if self._closed:
            raise DatastoreUnavailable("rpc error: code = Canceled desc = grpc: the client connection is closing")
        payload = json.dumps(body).encode()
        count = len(self._endpoints)
        last_error = "no endpoints"
        for offset in range(count):
            index = (self._preferred + offset) % count
            base = self._endpoints[index].rstrip("/")
            request = urllib.request.Request(
                base + self._prefix + path, data=payload, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=self._timeout, context=self._context) as response:
                    self._preferred = index
                    return dict(json.loads(response.read() or b"{}"))
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    raise _NotFoundError(path) from exc
                message, temporary = self._describe_http(exc)
                raise (DatastoreUnavailable if temporary and not fatal else DatastoreError)(message) from exc
            except (urllib.error.URLError, OSError) as exc:
                last_error = self._describe_network(base, exc)
        error_class = DatastoreError if fatal else DatastoreUnavailable
        raise error_class(last_error)

    @staticmethod
    def _describe_http(exc: urllib.error.HTTPError) -> tuple[str, bool]:
        """gRPC status text from the gateway's error body; True when the failure is temporary."""
        try:
            body = json.loads(exc.read() or b"{}")
        except ValueError:
            body = {}
        message = body.get("message") or body.get("error") or exc.reason
        code = int(body.get("code", 2)) if str(body.get("code", "")).isdigit() else 2
        name = _GRPC_CODES.get(code, "Unknown")
        return f"rpc error: code = {name} desc = {message}", code in (4, 14)

    @staticmethod
    def _describe_network(base: str, exc: BaseException) -> str:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, ssl.SSLCertVerificationError):
            detail = str(reason.verify_message or reason)
            if "unable to get local issuer" in detail or "self-signed" in detail or "self signed" in detail:
                detail = "x509: certificate signed by unknown authority"
            elif "mismatch" in detail:
                detail = f"x509: certificate is not valid for {urllib.parse.urlsplit(base).hostname}"
            return _grpc_unavailable(f"authentication handshake failed: {detail}")
        if isinstance(reason, ssl.SSLError):
            return _grpc_unavailable("authentication handshake failed: remote error: tls: bad certificate")
        parts = urllib.parse.urlsplit(base)
        port = parts.port or (80 if parts.scheme == "http" else 443)
        dial = dial_error(parts.hostname or "127.0.0.1", port, timeout=1.0)
        if dial is None:
            dial = f"read tcp {parts.hostname}:{port}: {reason}"
        return _grpc_unavailable(f"Error while dialing: {dial}")

    # -- Datastore protocol

    def get(self, key: str) -> bytes | None:
        reply = self._call("/kv/range", {"key": _b64(key.encode())})
        kvs = reply.get("kvs") or []
        return base64.b64decode(kvs[0].get("value", "")) if kvs else None

    def put(self, key: str, value: bytes) -> None:
        self._call("/kv/put", {"key": _b64(key.encode()), "value": _b64(value)})

    def create(self, key: str, value: bytes) -> bool:
        encoded = _b64(key.encode())
        reply = self._call(
            "/kv/txn",
            {
                "compare": [{"key": encoded, "result": "EQUAL", "target": "CREATE", "create_revision": "0"}],
                "success": [{"request_put": {"key": encoded, "value": _b64(value)}}],
            },
        )
        return bool(reply.get("succeeded", False))

    def delete(self, key: str) -> None:
        self._call("/kv/deleterange", {"key": _b64(key.encode())})

    def list(self, prefix: str) -> dict[str, bytes]:
        raw = prefix.encode()
        reply = self._call("/kv/range", {"key": _b64(raw or b"\0"), "range_end": _b64(_prefix_end(raw))})
        return {
            base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")) for kv in reply.get("kvs") or []
        }

    def healthy(self) -> bool:
        try:
            self._call("/kv/range", {"key": _b64(b"/"), "limit": 1, "count_only": True})
            return True
        except DatastoreError:
            return False

    def close(self) -> None:
        self._closed = True


class _NotFoundError(Exception):
    """The gateway path does not exist under this prefix."""


def open_etcd(endpoint: str, tls: TLSFiles) -> Datastore:
    """External etcd: a comma-separated list of http(s) client URLs."""
    endpoints = [e.strip() for e in endpoint.split(",") if e.strip()]
    for item in endpoints:
        if not item.startswith(("http://", "https://")):
            raise DatastoreError(f"etcd: invalid endpoint {item!r}: all endpoints must be http:// or https://")
    return EtcdGatewayDatastore(endpoints, tls)


_OPENERS: dict[str, Callable[[str, TLSFiles], Datastore]] = {
    "postgres": open_postgres,
    "postgresql": open_postgres,
    "mysql": open_mysql,
    "http": open_etcd,
    "https": open_etcd,
}
