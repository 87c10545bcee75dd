"""Datastore contract shared by the stand-in's server and its backends.

The server only ever talks to a :class:`Datastore`; SQLite (this module), external
SQL/etcd (``datastore_external``) and embedded etcd (``etcd_embedded``) implement it.
Keys look like kine/Kubernetes keys (``/registry/minions/<node>``, ``/bootstrap/<id>``).
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class DatastoreError(Exception):
    """Fatal/connect error; str() is the log message k3s/kine would print."""


class DatastoreUnavailable(DatastoreError):
    """Temporarily unavailable, e.g. embedded etcd without quorum."""


class Datastore(Protocol):
    """Minimal key/value view of a kine-like store."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...  # create or replace

    def create(self, key: str, value: bytes) -> bool: ...  # only if absent; False if it existed

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> dict[str, bytes]: ...

    def healthy(self) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class PeerTLS:
    """Files for embedded etcd's mutual TLS, issued by standin-core's PKI.

    ``ca_cert`` is the etcd peer CA (also trusted for client traffic), ``cert``/``key``
    the node's peer certificate, valid as server and client, with the node's
    advertise IP, name, 127.0.0.1 and localhost as SANs. Defined here so both the
    server and ``etcd_embedded`` can import it without a cycle.
    """

    ca_cert: Path
    cert: Path
    key: Path


KINE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kine ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT,"
    " created INTEGER,"
    " deleted INTEGER,"
    " create_revision INTEGER,"
    " prev_revision INTEGER,"
    " lease INTEGER,"
    " value BLOB,"
    " old_value BLOB)"
)


def _wrap_sqlite(method: Callable[..., T]) -> Callable[..., T]:
    """Turn sqlite3 errors into DatastoreError so callers handle one exception family."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise DatastoreError(f"sqlite: {exc}") from exc

    return wrapper


class SQLiteDatastore:
    """kine-style append-only table in ``<data-dir>/server/db/state.db``.

    Every write appends a row; the newest row for a name wins and a row with
    ``deleted=1`` hides the key. This mirrors kine closely enough that a copy of
    ``server/db/`` is a faithful backup, which is what the product's backup path does.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(KINE_SCHEMA)
            self._conn.execute("CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)")
        except sqlite3.Error as exc:
            raise DatastoreError(f"failed to open sqlite database {path}: {exc}") from exc
        try:
            path.chmod(0o600)
        except OSError:
            pass

    def _latest(self, key: str) -> tuple[int, int, bytes | None] | None:
        row = self._conn.execute(
            "SELECT id, deleted, value FROM kine WHERE name = ? ORDER BY id DESC LIMIT 1", (key,)
        ).fetchone()
        if row is None:
            return None
        return int(row[0]), int(row[1] or 0), row[2]

    def _append(self, key: str, value: bytes | None, deleted: bool) -> None:
        latest = self._latest(key)
        prev_rev = latest[0] if latest else 0
        old_value = latest[2] if latest else None
        create_rev = 0 if (latest is None or latest[1]) else prev_rev
        self._conn.execute(
            "INSERT INTO kine(name, created, deleted, create_revision, prev_revision, lease, value, old_value)"
            " VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
            (key, 1 if create_rev == 0 else 0, 1 if deleted else 0, create_rev, prev_rev, value, old_value),
        )

    @_wrap_sqlite
    def get(self, key: str) -> bytes | None:
        with self._lock:
            latest = self._latest(key)
        if latest is None or latest[1]:
            return None
        return bytes(latest[2]) if latest[2] is not None else b""

    @_wrap_sqlite
    def put(self, key: str, value: bytes) -> None:
        with self._lock:
            self._append(key, value, deleted=False)

    @_wrap_sqlite
    def create(self, key: str, value: bytes) -> bool:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                latest = self._latest(key)
                if latest is not None and not latest[1]:
                    self._conn.execute("COMMIT")
                    return False
                self._append(key, value, deleted=False)
                self._conn.execute("COMMIT")
                return True
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    @_wrap_sqlite
    def delete(self, key: str) -> None:
        with self._lock:
            latest = self._latest(key)
            if latest is None or latest[1]:
                return
            self._append(key, None, deleted=True)

    @_wrap_sqlite
    def list(self, prefix: str) -> dict[str, bytes]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT k.name, k.deleted, k.value FROM kine k"
                " JOIN (SELECT MAX(id) AS mid FROM kine WHERE name LIKE ? ESCAPE '\\' GROUP BY name) m"
                " ON k.id = m.mid",
                (_like_prefix(prefix),),
            ).fetchall()
        return {str(r[0]): bytes(r[2] or b"") for r in rows if not r[1]}

    def healthy(self) -> bool:
        try:
            with self._lock:
                self._conn.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass


def _like_prefix(prefix: str) -> str:
    """Escape LIKE wildcards so a key prefix matches literally."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def now_ts() -> int:
    """Seconds since the epoch; separate so tests could patch it."""
    return int(time.time())
