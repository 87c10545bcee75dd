"""A small model of k3s's embedded etcd: members, quorum, replication, snapshots.

Why a model and not etcd: the lab must show what an operator sees with embedded etcd
(a second and third server join, losing one of three keeps the cluster up, losing two
stops it, a snapshot restores it) without shipping etcd. What is modelled, and how:

* **Layout** like k3s: ``<data-dir>/server/db/etcd/`` holds ``name`` (``<node>-<8 hex>``),
  ``config``, ``member/wal/`` (its existence means "initialized", as k3s checks) and the
  state in ``member/snap/db`` (a SQLite file: key/values, revision, cluster id, member list).
* **Peers** talk HTTPS with mutual TLS on the peer port (2380); the client port (2379)
  serves etcd's JSON gateway (``/v3/kv/...``, ``/health``) for local clients.
* **Quorum**: a background loop checks every peer about once a second with short timeouts.
  Reads and writes are refused with ``etcdserver: request timed out`` (what the apiserver
  and k3s log when etcd has no leader) unless a majority of members, self included, is
  reachable. Member changes need quorum too (``etcdserver: unhealthy cluster``).
* **Writes** go to one coordinator (the healthy member with the lowest name, standing in
  for the raft leader; others forward to it). It applies the write, sends it to every
  member and reports success only with a majority of acknowledgements. Each write has a
  cluster-wide revision; a member that missed writes is brought up to date with a full
  state transfer (members pull from a peer that is ahead, the coordinator pushes to a
  peer that is behind). On a timeout the write's outcome is unknown, as with etcd.
* **Snapshots** are a single SQLite file; restoring one resets the membership to this
  node alone under a new cluster id (``--cluster-reset --cluster-reset-restore-path``).
* **Learners** like k3s: a joining server is added as a learner (``isLearner`` in ``/db/info``), which
  neither votes nor counts for quorum; while one learner exists another join is refused
  (``etcdserver: too many learner members in cluster``). The coordinator promotes a learner that
  is reachable and caught up on a 15 s ticker (k3s's manageTickerTime), logging
  ``Promoted learner <name>``.

Not modelled: raft terms/log compaction, the eviction of a learner stalled for 5 minutes, leases, watches,
revision history.
"""

# ruff: noqa: S310 - peer URLs are https:// URLs built from the member list
from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import socket
import sqlite3
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from . import log
from .datastore import DatastoreError, DatastoreUnavailable, PeerTLS

__all__ = ["EmbeddedEtcd", "PeerTLS", "read_snapshot"]

TIMED_OUT = "etcdserver: request timed out"
UNHEALTHY = "etcdserver: unhealthy cluster"
REMOVED = "etcdserver: the member has been permanently removed from the cluster"
STOPPED = "etcdserver: server stopped"
ETCD_VERSION = "3.5.9"
TOO_MANY_LEARNERS = "etcdserver: too many learner members in cluster"
LEARNER = "isLearner"  # member flag ("true") while a joined member waits for promotion
PROMOTE_INTERVAL_S = 15.0  # k3s's manageTickerTime: how often the leader tries to promote a learner

Member = dict[str, str]
Routes = dict[tuple[str, str], Callable[[dict[str, Any]], tuple[int, Any]]]
State = dict[str, Any]


def server_context(tls: PeerTLS) -> ssl.SSLContext:
    """Require a client certificate from the same CA (etcd's ``--peer-client-cert-auth``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls.cert), str(tls.key))
    context.load_verify_locations(str(tls.ca_cert))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(tls: PeerTLS) -> ssl.SSLContext:
    """Verify the peer against the CA; names are not checked (peers are addressed by IP)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(tls.ca_cert))
    context.load_cert_chain(str(tls.cert), str(tls.key))
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def node_of(member_name: str) -> str:
    """``server-1-0a1b2c3d`` -> ``server-1`` (k3s appends a hyphen and 8 hex characters)."""
    head, sep, _ = member_name.rpartition("-")
    return head if sep and len(head) > 1 else member_name


# --------------------------------------------------------------------------- local state


class _Store:
    """The member's local copy of the cluster state in one SQLite file (thread-safe)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL,"
            " create_revision INTEGER NOT NULL, mod_revision INTEGER NOT NULL)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        path.chmod(0o600)

    # -- meta

    def _meta(self, key: str, default: str) -> str:
        row = self._db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(k, v) VALUES (?, ?)", (key, value))

    def position(self) -> tuple[int, str]:
        """(revision, id of the last applied entry): a total order used to pick the newest copy."""
        with self.lock:
            return int(self._meta("revision", "0")), self._meta("last_id", "")

    def cluster_id(self) -> str:
        with self.lock:
            return self._meta("cluster_id", "")

    def members(self) -> list[Member]:
        with self.lock:
            return list(json.loads(self._meta("members", "[]")))

    def initialized(self) -> bool:
        return bool(self.cluster_id())

    # -- key/value

    def get(self, key: str) -> bytes | None:
        with self.lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return bytes(row[0]) if row else None

    def list(self, prefix: str) -> dict[str, bytes]:
        with self.lock:
            rows = self._db.execute(
                "SELECT key, value FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
            ).fetchall()
        return {str(k): bytes(v) for k, v in rows}

    # -- changes

    def apply(self, entry: dict[str, Any], revision: int) -> None:
        """Apply one replicated entry as ``revision`` in a single transaction."""
        with self.lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                kind = entry["type"]
                if kind == "put":
                    self._db.execute(
                        "INSERT INTO kv(key, value, create_revision, mod_revision) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision",
                        (entry["key"], base64.b64decode(entry["value"]), revision, revision),
                    )
                elif kind == "delete":
                    self._db.execute("DELETE FROM kv WHERE key = ?", (entry["key"],))
                elif kind == "members":
                    self._set_meta("members", json.dumps(entry["members"]))
                else:
                    raise ValueError(f"unknown entry type {kind!r}")
                self._set_meta("revision", str(revision))
                self._set_meta("last_id", str(entry["id"]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def export_state(self) -> State:
        with self.lock:
            rows = self._db.execute("SELECT key, value, create_revision, mod_revision FROM kv ORDER BY key").fetchall()
            revision, last_id = self.position()
            return {
                "cluster_id": self.cluster_id(),
                "revision": revision,
                "last_id": last_id,
                "members": self.members(),
                "kv": [[k, _b64(bytes(v)), c, m] for k, v, c, m in rows],
            }

    def import_state(self, state: State) -> None:
        """Replace everything with a peer's (or a snapshot's) state."""
        with self.lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM kv")
                self._db.executemany(
                    "INSERT INTO kv(key, value, create_revision, mod_revision) VALUES (?, ?, ?, ?)",
                    [(k, base64.b64decode(v), c, m) for k, v, c, m in state["kv"]],
                )
                self._set_meta("cluster_id", str(state["cluster_id"]))
                self._set_meta("revision", str(int(state["revision"])))
                self._set_meta("last_id", str(state.get("last_id", "")))
                self._set_meta("members", json.dumps(state["members"]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def backup_to(self, path: Path) -> None:
        """A consistent single-file copy (SQLite online backup)."""
        with self.lock:
            target = sqlite3.connect(str(path))
            try:
                self._db.backup(target)
            finally:
                target.close()

    def close(self) -> None:
        with self.lock:
            self._db.close()


def read_snapshot(path: Path) -> State:
    """Load a snapshot file written by :meth:`EmbeddedEtcd.snapshot_save`."""
    if not path.exists():
        raise DatastoreError(f"etcd: snapshot path does not exist: {path}")
    if path.is_dir():
        raise DatastoreError(f"etcd: snapshot path must be a file, not a directory: {path}")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            meta = dict(db.execute("SELECT k, v FROM meta").fetchall())
            rows = db.execute("SELECT key, value, create_revision, mod_revision FROM kv").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise DatastoreError(f"snapshot file integrity check failed: {path}: {exc}") from exc
    return {
        "cluster_id": meta.get("cluster_id", ""),
        "revision": int(meta.get("revision", "0")),
        "last_id": meta.get("last_id", ""),
        "members": json.loads(meta.get("members", "[]")),
        "kv": [[k, _b64(bytes(v)), c, m] for k, v, c, m in rows],
        "snapshot_node": meta.get("snapshot_node", ""),
    }


# --------------------------------------------------------------------------- HTTPS servers


class _PeerError(Exception):
    """A peer could not be reached or refused the request."""


class _TLSServer(ThreadingHTTPServer):
    """HTTPS server whose TLS handshake runs in the request thread, so a slow client cannot stall accept."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        context: ssl.SSLContext,
        owner: EmbeddedEtcd,
        routes: Routes,
    ) -> None:
        self.context = context
        self.owner = owner
        self.routes = routes
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(5.0)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.close()


class _Handler(BaseHTTPRequestHandler):
    """Dispatch ``(method, path)`` to the owning server's route table; JSON in, JSON out."""

    server: _TLSServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _dispatch(self, method: str) -> None:
        route = self.server.routes.get((method, self.path.split("?", 1)[0]))
        if route is None:
            self._send(404, {"error": "Not Found", "code": 5, "message": "Not Found"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            status, payload = route(body)
        except DatastoreUnavailable as exc:
            status, payload = 503, {"error": str(exc), "code": 14, "message": str(exc)}
        except DatastoreError as exc:
            status, payload = 500, {"error": str(exc), "code": 2, "message": str(exc)}
        except (ValueError, KeyError, TypeError) as exc:
            status, payload = 400, {"error": str(exc), "code": 3, "message": str(exc)}
        self._send(status, payload)

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")


# --------------------------------------------------------------------------- the member


class EmbeddedEtcd:
    """One embedded-etcd member (implements the Datastore protocol); see the module docstring."""

    def __init__(self, data_dir: Path, node_name: str, advertise_ip: str, tls: PeerTLS, *,
                 client_port: int = 2379, peer_port: int = 2380, health_interval: float = 1.0,
                 request_timeout: float = 1.0, promote_interval: float = PROMOTE_INTERVAL_S) -> None:  # fmt: skip
        self.data_dir = Path(data_dir)
        self.node_name = node_name
        self.advertise_ip = advertise_ip
        self.tls = tls
        self.client_port = client_port
        self.peer_port = peer_port
        self.health_interval = health_interval
        self.request_timeout = request_timeout
        self.promote_interval = promote_interval
        self._next_promotion = 0.0
        self.etcd_dir = self.data_dir / "server" / "db" / "etcd"
        self.name = self._read_name() or self._new_name()
        self._store: _Store | None = None
        self._servers: list[_TLSServer] = []
        self._threads: list[threading.Thread] = []
        self._pool: ThreadPoolExecutor | None = None
        self._client_ssl: ssl.SSLContext | None = None
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._health_lock = threading.Lock()
        self._last_ok: dict[str, float] = {}
        self._peer_position: dict[str, tuple[int, str]] = {}
        self._running = False
        self._removed = False
        self.moved_aside: Path | None = None  # where snapshot_restore put the previous data (etcd-old-<ts>)

    # ------------------------------------------------------------------ identity and files

    @property
    def peer_url(self) -> str:
        return f"https://{_url_host(self.advertise_ip)}:{self.peer_port}"

    @property
    def client_url(self) -> str:
        return f"https://{_url_host(self.advertise_ip)}:{self.client_port}"

    def _self_member(self) -> Member:
        return {"name": self.name, "peerURL": self.peer_url, "clientURL": self.client_url}

    def _name_file(self) -> Path:
        return self.etcd_dir / "name"

    def _read_name(self) -> str:
        try:
            return self._name_file().read_text().strip()
        except OSError:
            return ""

    def _new_name(self) -> str:
        return f"{self.node_name}-{secrets.token_hex(4)}"

    def _write_files(self) -> None:
        """name, config and member/wal/ like k3s (the wal dir marks an initialized member)."""
        (self.etcd_dir / "member" / "wal").mkdir(parents=True, exist_ok=True)
        self.etcd_dir.chmod(0o700)
        _write_private(self._name_file(), self.name)
        config = {
            "name": self.name,
            "listen-client-urls": f"https://127.0.0.1:{self.client_port},{self.client_url}",
            "advertise-client-urls": self.client_url,
            "listen-peer-urls": self.peer_url,
            "initial-advertise-peer-urls": self.peer_url,
            "data-dir": str(self.etcd_dir),
            "peer-transport-security": {
                "cert-file": str(self.tls.cert),
                "key-file": str(self.tls.key),
                "trusted-ca-file": str(self.tls.ca_cert),
                "client-cert-auth": True,
            },
        }
        _write_private(self.etcd_dir / "config", json.dumps(config, indent=2) + "\n")

    def _open_store(self) -> _Store:
        if self._store is None:
            try:
                self._store = _Store(self.etcd_dir / "member" / "snap" / "db")
            except (sqlite3.Error, OSError) as exc:
                raise DatastoreError(f"failed to open etcd backend database: {exc}") from exc
        return self._store

    def is_initialized(self) -> bool:
        """True when this data dir already holds a member (k3s: ``server/db/etcd/member/wal`` exists)."""
        return (self.etcd_dir / "member" / "wal").is_dir()

    # ------------------------------------------------------------------ lifecycle

    def start_new_cluster(self) -> None:
        """``cluster-init``: a one-member cluster (or restart the existing member if already initialized)."""
        if self.is_initialized():
            self.start_existing()
            return
        store = self._open_store()
        store.import_state(
            {
                "cluster_id": uuid.uuid4().hex[:16],
                "revision": 0,
                "last_id": "",
                "members": [self._self_member()],
                "kv": [],
            }
        )
        self._write_files()
        self._start_serving()

    def start_existing(self) -> None:
        """Restart with the stored membership; catch up from a peer that is ahead."""
        if not self.is_initialized():
            raise DatastoreError(f"etcd: no member data in {self.etcd_dir}; join or initialize the cluster first")
        store = self._open_store()
        if not store.initialized():
            raise DatastoreError(f"etcd: member data in {self.etcd_dir} is incomplete")
        if not any(m["name"] == self.name for m in store.members()):
            found = [f"{m['name']}={m['peerURL']}" for m in store.members()]
            raise DatastoreError(
                f"this server is a not a member of the etcd cluster. Found {found}, expect: {self.name}={self.peer_url}"
            )
        self._update_self_urls(store)
        self._start_serving()

    def join(self, existing_peer_urls: list[str]) -> None:
        """Add this node to the cluster reachable at ``existing_peer_urls`` and copy its state."""
        already = self.is_initialized() and self._open_store().initialized()
        if already and any(m["name"] == self.name for m in self._open_store().members()):
            self.start_existing()
            return
        fresh = not self.is_initialized()
        store = self._open_store()
        self._start_servers()  # the new member must answer as soon as it is added (quorum may include it)
        errors: list[str] = []
        try:
            state = None
            for url in existing_peer_urls:
                try:
                    reply = self._peer_call(url, "/standin/member-add", {"member": self._self_member()}, timeout=10.0)
                except _PeerError as exc:
                    errors.append(str(exc))
                    continue
                if "error" in reply:
                    raise DatastoreError(f"ETCD join failed: {reply['error']}")
                state = reply["state"]
                break
            if state is None:
                detail = errors[-1] if errors else "no peer URLs given"
                raise DatastoreError(f"ETCD join failed: {detail}")
            if not any(m["name"] == self.name for m in state["members"]):
                raise DatastoreError("ETCD join failed: member was not added to the cluster")
            store.import_state(state)
            self._write_files()
            with self._health_lock:
                now = time.monotonic()
                for member in state["members"]:
                    self._last_ok[member["name"]] = now
            self._start_background()
        except BaseException:
            self.close()
            if fresh:  # leave no half-made member behind: a retry must join again, not "start existing"
                shutil.rmtree(self.etcd_dir, ignore_errors=True)
            raise

    def close(self) -> None:
        """Stop serving and checking; the data stays on disk for :meth:`start_existing`."""
        self._stop.set()
        self._running = False
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def _start_serving(self) -> None:
        self._start_servers()
        try:
            self._start_background()
        except BaseException:
            self.close()
            raise

    def _start_servers(self) -> None:
        if self._servers:
            return
        try:
            server_ctx = server_context(self.tls)
            self._client_ssl = client_context(self.tls)
        except (OSError, ssl.SSLError) as exc:
            raise DatastoreError(f"etcd: failed to load peer TLS files: {exc}") from exc
        self._stop.clear()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"etcd-{self.node_name}")
        binds = [((self.advertise_ip, self.peer_port), self._peer_routes())]
        client_ips = [self.advertise_ip] + (
            [] if self.advertise_ip in ("127.0.0.1", "0.0.0.0", "::") else ["127.0.0.1"]  # noqa: S104 - a comparison
        )
        binds += [((ip, self.client_port), self._client_routes()) for ip in client_ips]
        for address, routes in binds:
            try:
                server = _TLSServer(address, _Handler, server_ctx, self, routes)
            except OSError as exc:
                self.close()
                reason = "address already in use" if "in use" in str(exc) else (exc.strerror or str(exc)).lower()
                raise DatastoreError(f"listen tcp {_url_host(address[0])}:{address[1]}: bind: {reason}") from exc
            self._servers.append(server)
            thread = threading.Thread(target=server.serve_forever, name=f"etcd-serve-{address[1]}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _start_background(self) -> None:
        self._running = True
        self._removed = False
        self._next_promotion = time.monotonic() + self.promote_interval
        self._check_peers()  # one synchronous round: know who is up and catch up before serving
        thread = threading.Thread(target=self._health_loop, name=f"etcd-health-{self.node_name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _update_self_urls(self, store: _Store) -> None:
        """If this node's address or ports changed, record the new URLs locally (etcd member update)."""
        members = store.members()
        for member in members:
            if member["name"] == self.name and (member["peerURL"], member["clientURL"]) != (
                self.peer_url,
                self.client_url,
            ):
                member.update(self._self_member())
                state = store.export_state()
                state["members"] = members
                store.import_state(state)

    # ------------------------------------------------------------------ health and quorum

    def _health_loop(self) -> None:
        while not self._stop.wait(self.health_interval):
            try:
                self._check_peers()
                self._manage_learners()
            except Exception:  # noqa: S112 - the loop must survive anything a peer sends
                continue

    def _manage_learners(self) -> None:
        """On the coordinator, every promote_interval: promote the learner if it answers and is caught up."""
        store = self._store
        now = time.monotonic()
        if store is None or now < self._next_promotion:
            return
        self._next_promotion = now + self.promote_interval
        if self._leader() != self.name or not self.has_quorum():
            return
        learners = [m["name"] for m in store.members() if m.get(LEARNER) == "true"]
        if not learners:
            return
        healthy = learners[0] in self._healthy_peers()
        with self._health_lock:
            position = self._peer_position.get(learners[0])
        if healthy and position == store.position():
            self._propose({"type": "member_promote", "name": learners[0]})
            log.info(f"Promoted learner {learners[0]}")

    def _check_peers(self) -> None:
        """Ask every peer for its position; pull the state from one that is ahead of us."""
        store, pool = self._store, self._pool
        if store is None or pool is None or self._stop.is_set():
            return
        cluster_id = store.cluster_id()
        peers = [m for m in store.members() if m["name"] != self.name]
        futures = {
            m["name"]: pool.submit(self._peer_call, m["peerURL"], "/standin/health", None, self.request_timeout * 0.8)
            for m in peers
        }
        best: tuple[tuple[int, str], str] | None = None
        for name, future in futures.items():
            try:
                reply = future.result()
            except Exception:  # noqa: S112 - an unreachable or broken peer is simply not healthy
                continue
            if reply.get("cluster_id") != cluster_id or reply.get("name") != name:
                continue
            position = (int(reply.get("revision", 0)), str(reply.get("last_id", "")))
            with self._health_lock:
                self._last_ok[name] = time.monotonic()
                self._peer_position[name] = position
            if best is None or position > best[0]:
                best = (position, name)
        if best is not None and best[0] > store.position():
            url = next(m["peerURL"] for m in peers if m["name"] == best[1])
            self._pull_state(url)

    def _pull_state(self, url: str) -> None:
        store = self._store
        if store is None:
            return
        try:
            state = self._peer_call(url, "/standin/state", None, timeout=5.0)
        except _PeerError:
            return
        with store.lock:
            if (
                state.get("cluster_id") == store.cluster_id()
                and (state["revision"], state["last_id"]) > store.position()
            ):
                store.import_state(state)
                self._note_membership(state["members"])

    def _healthy_peers(self) -> set[str]:
        limit = time.monotonic() - max(2.5 * self.health_interval, 2.0)
        with self._health_lock:
            return {name for name, seen in self._last_ok.items() if seen >= limit}

    def _member_health(self, members: list[Member]) -> dict[str, bool]:
        fresh = self._healthy_peers()
        return {
            m["name"]: (self._running and not self._removed) if m["name"] == self.name else m["name"] in fresh
            for m in members
        }

    def has_quorum(self) -> bool:
        """A majority of members (self included) is reachable."""
        store = self._store
        if store is None or not self._running or self._removed:
            return False
        voters = _voters(store.members())
        healthy = sum(self._member_health(voters).values())
        return healthy >= len(voters) // 2 + 1

    def members(self) -> list[dict[str, Any]]:
        """Current members with their health as this node sees it."""
        store = self._store
        if store is None:
            return []
        members = store.members()
        health = self._member_health(members)
        return [{**m, LEARNER: m.get(LEARNER) == "true", "healthy": health[m["name"]]} for m in members]

    def _leader(self) -> str:
        store = self._store
        assert store is not None
        alive = [name for name, ok in self._member_health(_voters(store.members())).items() if ok]
        return min(alive) if alive else self.name

    # ------------------------------------------------------------------ peer transport

    def _peer_call(self, base_url: str, path: str, body: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            base_url.rstrip("/") + path, data=data, method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._client_ssl) as response:
                return dict(json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as exc:
            try:
                payload = json.loads(exc.read() or b"{}")
            except ValueError:
                payload = {}
            if exc.code in (500, 503) and "error" in payload:
                return {"error": payload["error"], "unavailable": exc.code == 503}
            raise _PeerError(f"{base_url}: HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise _PeerError(_describe_peer_failure(base_url, exc)) from exc

    # ------------------------------------------------------------------ proposals (writes)

    def _require_running(self) -> _Store:
        store = self._store
        if store is None or not self._running:
            raise DatastoreUnavailable(STOPPED)
        if self._removed:
            raise DatastoreError(REMOVED)
        return store

    def _propose(self, op: dict[str, Any]) -> Any:
        """Route a change to the coordinator (or coordinate it here) and return its result."""
        self._require_running()
        membership_change = op["type"] in ("member_add", "member_remove")
        if not self.has_quorum():
            raise DatastoreUnavailable(UNHEALTHY if membership_change else TIMED_OUT)
        leader = self._leader()
        if leader != self.name:
            url = next((m["peerURL"] for m in self._store.members() if m["name"] == leader), None)  # type: ignore[union-attr]
            if url is not None:
                try:
                    reply = self._peer_call(url, "/standin/propose", {"op": op}, timeout=10.0)
                except _PeerError:
                    reply = None  # leader just went away: coordinate here instead
                if reply is not None:
                    if "error" in reply:
                        error = DatastoreUnavailable if reply.get("unavailable") else DatastoreError
                        raise error(str(reply["error"]))
                    return reply.get("result")
        return self._coordinate(op)

    def _coordinate(self, op: dict[str, Any]) -> Any:
        """Apply locally, replicate to all members, succeed only with a majority of acks."""
        store = self._require_running()
        membership_change = op["type"] in ("member_add", "member_remove")
        with self._write_lock:
            if not self.has_quorum():
                raise DatastoreUnavailable(UNHEALTHY if membership_change else TIMED_OUT)
            self._catch_up_before_write()
            with store.lock:  # decide and apply atomically, but do not hold the lock while replicating
                members_before = store.members()
                result, entry = self._prepare(store, op)
                if entry is None:
                    return result
                revision = store.position()[0] + 1
                store.apply(entry, revision)
            if entry["type"] == "members":
                self._note_membership(entry["members"])
            voters = {m["name"] for m in _voters(members_before)}
            acks = 1 + len(self._replicate(entry, revision, members_before) & voters)
            if acks < len(voters) // 2 + 1:
                raise DatastoreUnavailable(UNHEALTHY if membership_change else TIMED_OUT)
            if op["type"] == "member_add":
                with self._health_lock:
                    self._last_ok[op["member"]["name"]] = time.monotonic()
                return store.export_state()
            return result

    def _catch_up_before_write(self) -> None:
        """Never decide a write on stale data: pull first if a healthy peer is ahead."""
        store = self._store
        assert store is not None
        fresh = self._healthy_peers()
        with self._health_lock:
            ahead = [
                (pos, name) for name, pos in self._peer_position.items() if name in fresh and pos > store.position()
            ]
        if ahead:
            _, name = max(ahead)
            url = next((m["peerURL"] for m in store.members() if m["name"] == name), None)
            if url is not None:
                self._pull_state(url)

    def _prepare(self, store: _Store, op: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:  # noqa: PLR0911
        """Decide the op against current state: (result, entry to replicate or None for a no-op)."""
        entry_id = uuid.uuid4().hex
        kind = op["type"]
        if kind == "put":
            return None, {"id": entry_id, "type": "put", "key": op["key"], "value": op["value"]}
        if kind == "create":
            if store.get(op["key"]) is not None:
                return False, None
            return True, {"id": entry_id, "type": "put", "key": op["key"], "value": op["value"]}
        if kind == "delete":
            if store.get(op["key"]) is None:
                return None, None
            return None, {"id": entry_id, "type": "delete", "key": op["key"]}
        members = store.members()
        if kind == "member_add":
            new = dict(op["member"])
            if any(m["name"] == new["name"] for m in members):
                return store.export_state(), None
            if any(node_of(m["name"]) == node_of(new["name"]) for m in members):
                raise DatastoreError("duplicate node name found, please use a unique name for this node")
            if any(m.get(LEARNER) == "true" for m in members):
                raise DatastoreError(TOO_MANY_LEARNERS)
            return None, {"id": entry_id, "type": "members", "members": [*members, {**new, LEARNER: "true"}]}
        if kind == "member_promote":
            promoted = [{k: v for k, v in m.items() if k != LEARNER} if m["name"] == op["name"] else m
                        for m in members]
            return None, {"id": entry_id, "type": "members", "members": promoted}
        if kind == "member_remove":
            target = op["name"]
            kept = [m for m in members if m["name"] != target and node_of(m["name"]) != target]
            if len(kept) == len(members):
                raise DatastoreError("etcdserver: member not found")
            if not kept:
                raise DatastoreError("etcdserver: re-configuration failed due to not enough started members")
            return None, {"id": entry_id, "type": "members", "members": kept}
        raise DatastoreError(f"unknown operation {kind!r}")

    def _replicate(self, entry: dict[str, Any], revision: int, members: list[Member]) -> set[str]:
        """Send the entry to every other member (learners too) in parallel; return who acknowledged."""
        store, pool = self._store, self._pool
        assert store is not None and pool is not None
        body = {"cluster_id": store.cluster_id(), "revision": revision, "entry": entry}
        peers = [m for m in members if m["name"] != self.name]
        futures = {m["name"]: pool.submit(self._replicate_one, m, body) for m in peers}
        return {name for name, f in futures.items() if f.result()}

    def _replicate_one(self, member: Member, body: dict[str, Any]) -> bool:
        try:
            reply = self._peer_call(member["peerURL"], "/standin/apply", body, timeout=self.request_timeout)
            if reply.get("ok"):
                return True
            if reply.get("reason") == "behind" and self._store is not None:
                state = self._store.export_state()
                pushed = self._peer_call(member["peerURL"], "/standin/sync", {"state": state}, timeout=5.0)
                return bool(pushed.get("ok"))
        except _PeerError:
            pass
        return False

    def _note_membership(self, members: list[Member]) -> None:
        """React to a member list that no longer has us: we were removed (k3s writes a tombstone)."""
        if not any(m["name"] == self.name for m in members) and self._store is not None:
            self._removed = True
            _write_private(self.etcd_dir / "tombstone", "")

    # ------------------------------------------------------------------ peer routes

    def _peer_routes(self) -> Routes:
        return {
            ("GET", "/standin/health"): self._on_health,
            ("GET", "/standin/state"): self._on_state,
            ("GET", "/members"): lambda _: (200, self.members()),
            ("GET", "/version"): lambda _: (200, {"etcdserver": ETCD_VERSION, "etcdcluster": "3.5.0"}),
            ("POST", "/standin/apply"): self._on_apply,
            ("POST", "/standin/sync"): self._on_sync,
            ("POST", "/standin/propose"): self._on_propose,
            ("POST", "/standin/member-add"): self._on_member_add,
        }

    def _on_health(self, _: dict[str, Any]) -> tuple[int, Any]:
        store = self._store
        if store is None or not self._running:
            return 503, {"error": STOPPED}
        revision, last_id = store.position()
        return 200, {"name": self.name, "cluster_id": store.cluster_id(), "revision": revision, "last_id": last_id}

    def _on_state(self, _: dict[str, Any]) -> tuple[int, Any]:
        store = self._store
        if store is None:
            return 503, {"error": STOPPED}
        return 200, store.export_state()

    def _on_apply(self, body: dict[str, Any]) -> tuple[int, Any]:
        store = self._store
        if store is None or not self._running:
            return 503, {"error": STOPPED}
        with store.lock:
            if body["cluster_id"] != store.cluster_id():
                return 200, {"ok": False, "reason": "cluster_id mismatch"}
            current = store.position()[0]
            revision = int(body["revision"])
            if revision == current + 1:
                store.apply(body["entry"], revision)
                if body["entry"]["type"] == "members":
                    self._note_membership(body["entry"]["members"])
                return 200, {"ok": True}
            reason = "behind" if revision > current + 1 else "ahead"
            return 200, {"ok": False, "reason": reason, "revision": current}

    def _on_sync(self, body: dict[str, Any]) -> tuple[int, Any]:
        store = self._store
        if store is None or not self._running:
            return 503, {"error": STOPPED}
        state = body["state"]
        with store.lock:
            if state["cluster_id"] != store.cluster_id():
                return 200, {"ok": False}
            if (state["revision"], state["last_id"]) > store.position():
                store.import_state(state)
                self._note_membership(state["members"])
        return 200, {"ok": True}

    def _on_propose(self, body: dict[str, Any]) -> tuple[int, Any]:
        return 200, {"result": self._coordinate(body["op"])}

    def _on_member_add(self, body: dict[str, Any]) -> tuple[int, Any]:
        member = body["member"]
        for field_name in ("name", "peerURL", "clientURL"):
            if not isinstance(member.get(field_name), str) or not member[field_name]:
                raise ValueError(f"member {field_name} missing")
        state = self._propose({"type": "member_add", "member": member})
        return 200, {"state": state}

    # ------------------------------------------------------------------ client routes (etcd JSON gateway)

    def _client_routes(self) -> Routes:
        routes: Routes = {
            ("GET", "/health"): lambda _: (
                200 if self.has_quorum() else 503,
                {"health": str(self.has_quorum()).lower()},
            ),
            ("GET", "/version"): lambda _: (200, {"etcdserver": ETCD_VERSION, "etcdcluster": "3.5.0"}),
        }
        for prefix in ("/v3", "/v3beta"):
            routes[("POST", f"{prefix}/kv/range")] = self._gw_range
            routes[("POST", f"{prefix}/kv/put")] = self._gw_put
            routes[("POST", f"{prefix}/kv/deleterange")] = self._gw_delete
            routes[("POST", f"{prefix}/kv/txn")] = self._gw_txn
        return routes

    def _gw_header(self) -> dict[str, Any]:
        store = self._store
        revision = store.position()[0] if store else 0
        return {"cluster_id": "0", "member_id": "0", "revision": str(revision), "raft_term": "2"}

    def _gw_range(self, body: dict[str, Any]) -> tuple[int, Any]:
        key = base64.b64decode(body.get("key", "")).decode()
        end = base64.b64decode(body.get("range_end", "")).decode() if body.get("range_end") else ""
        if end:
            items = {k: v for k, v in self.list("").items() if key <= k and (end == "\0" or k < end)}
        else:
            value = self.get(key)
            items = {} if value is None else {key: value}
        reply: dict[str, Any] = {"header": self._gw_header(), "count": str(len(items))}
        if items and not body.get("count_only"):
            limit = int(body.get("limit") or 0)
            keys = sorted(items)[: limit or None]
            reply["kvs"] = [{"key": _b64(k.encode()), "value": _b64(items[k])} for k in keys]
        return 200, reply

    def _gw_put(self, body: dict[str, Any]) -> tuple[int, Any]:
        self.put(base64.b64decode(body["key"]).decode(), base64.b64decode(body.get("value", "")))
        return 200, {"header": self._gw_header()}

    def _gw_delete(self, body: dict[str, Any]) -> tuple[int, Any]:
        self.delete(base64.b64decode(body["key"]).decode())
        return 200, {"header": self._gw_header()}

    def _gw_txn(self, body: dict[str, Any]) -> tuple[int, Any]:
        """Only the create-if-absent transaction kine and the stand-in use."""
        compare = body.get("compare") or []
        success = body.get("success") or []
        if len(compare) != 1 or len(success) != 1 or "request_put" not in success[0]:
            raise ValueError("only a single create_revision==0 compare with one put is supported")
        put = success[0]["request_put"]
        created = self.create(base64.b64decode(put["key"]).decode(), base64.b64decode(put.get("value", "")))
        reply: dict[str, Any] = {"header": self._gw_header()}
        if created:
            reply["succeeded"] = True
        return 200, reply

    # ------------------------------------------------------------------ Datastore protocol

    def _readable(self) -> _Store:
        store = self._require_running()
        if not self.has_quorum():
            raise DatastoreUnavailable(TIMED_OUT)
        return store

    def get(self, key: str) -> bytes | None:
        return self._readable().get(key)

    def list(self, prefix: str) -> dict[str, bytes]:
        return self._readable().list(prefix)

    def put(self, key: str, value: bytes) -> None:
        self._propose({"type": "put", "key": key, "value": _b64(value)})

    def create(self, key: str, value: bytes) -> bool:
        return bool(self._propose({"type": "create", "key": key, "value": _b64(value)}))

    def delete(self, key: str) -> None:
        self._propose({"type": "delete", "key": key})

    def healthy(self) -> bool:
        return self.has_quorum()

    # ------------------------------------------------------------------ membership and snapshots

    def remove_member(self, name: str) -> None:
        """Remove a member by member name or node name (needs quorum, like ``etcdctl member remove``)."""
        self._propose({"type": "member_remove", "name": name})

    def snapshot_save(self, path: Path) -> None:
        """Write this member's state as one SQLite file at ``path`` (mode 0600)."""
        store = self._store
        if store is None:
            if not self.is_initialized():
                raise DatastoreError("etcd datastore is not started")
            store = self._open_store()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        try:
            store.backup_to(tmp)
            extra = sqlite3.connect(str(tmp))
            try:
                extra.execute("PRAGMA journal_mode=DELETE")
                extra.execute("INSERT OR REPLACE INTO meta(k, v) VALUES ('snapshot_node', ?)", (self.name,))
                extra.execute("INSERT OR REPLACE INTO meta(k, v) VALUES ('snapshot_time', ?)", (str(int(time.time())),))
                extra.commit()
            finally:
                extra.close()
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def snapshot_restore(self, path: Path) -> None:
        """``--cluster-reset --cluster-reset-restore-path``: this node alone, with the snapshot's data."""
        state = read_snapshot(Path(path))
        if self._store is None and self.etcd_dir.exists():
            old = self.etcd_dir.with_name(f"etcd-old-{int(time.time())}")
            shutil.move(str(self.etcd_dir), str(old))
            self.moved_aside = old
        self.cluster_reset(state)

    def reset_membership(self) -> None:
        """``--cluster-reset`` without a snapshot: keep the data, drop every other member."""
        self.cluster_reset(None)

    def cluster_reset(self, state: State | None = None) -> None:
        """``--cluster-reset``: keep (or replace with ``state``) the data, make this node the only member."""
        running = self._running
        store = self._open_store()
        if state is None:
            if not store.initialized():
                raise DatastoreError(f"etcd: no member data in {self.etcd_dir} to reset")
            state = store.export_state()
        with self._write_lock, store.lock:
            self.name = self._new_name()
            new_state = {
                "cluster_id": uuid.uuid4().hex[:16],
                "revision": int(state["revision"]) + 1,
                "last_id": uuid.uuid4().hex,
                "members": [self._self_member()],
                "kv": state["kv"],
            }
            store.import_state(new_state)
            self._write_files()
            (self.etcd_dir / "tombstone").unlink(missing_ok=True)
            _write_private(self.data_dir / "server" / "db" / "reset-flag", "")
            with self._health_lock:
                self._last_ok.clear()
                self._peer_position.clear()
            self._removed = False
        if not running:
            store.close()
            self._store = None


# --------------------------------------------------------------------------- helpers


def _voters(members: list[Member]) -> list[Member]:
    """The members that vote (and count for quorum): all but learners."""
    return [m for m in members if m.get(LEARNER) != "true"]


def _url_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    tmp.replace(path)


def _describe_peer_failure(base_url: str, exc: BaseException) -> str:
    """Go-style text for a failed peer request (``dial tcp 10.0.0.2:2380: connect: connection refused``)."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    host_port = base_url.split("://", 1)[-1].rstrip("/")
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"remote error: tls: {reason.verify_message or reason} ({host_port})"
    if isinstance(reason, ssl.SSLError):
        return f"remote error: tls: bad certificate ({host_port})"
    if isinstance(reason, ConnectionRefusedError):
        return f"dial tcp {host_port}: connect: connection refused"
    if isinstance(reason, socket.timeout | TimeoutError):
        return f"dial tcp {host_port}: i/o timeout"
    if isinstance(reason, socket.gaierror):
        return f"dial tcp: lookup {host_port.rsplit(':', 1)[0]}: no such host"
    return f"{host_port}: {reason}"
