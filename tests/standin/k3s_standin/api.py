"""HTTPS listener on the supervisor/apiserver port: k3s supervisor paths and a small kube API.

CustomResourceDefinitions, custom resources and client-created namespaces are served by ``objects``.

Supervisor paths (``/cacerts``, ``/ping`` without auth; ``/v1-k3s/...``, ``/db/...`` with
basic auth ``node:``/``server:`` + token password) serve agents and joining servers.
Everything else is the Kubernetes API, authenticated by a client certificate signed by
the cluster's client CA (the admin certificate in k3s.yaml); anonymous requests get 401
as from an apiserver running with anonymous auth off.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from . import log, nodes, objects
from .cluster import Cluster
from .datastore import DatastoreError

Json = dict[str, Any]

_NODE_PATH = re.compile(r"^/api/v1/nodes/([^/]+)(/status)?$")
_PODS_PATH = re.compile(r"^/api/v1/(?:namespaces/([^/]+)/)?pods$")
_NS_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)$")
_WATCH_NODES = re.compile(r"^/api/v1/watch/nodes(?:/([^/]+))?$")

_NODE_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _resource(name: str, kind: str, namespaced: bool, verbs: list[str], short: list[str] | None = None,
              singular: str = "", group: str | None = None, version: str | None = None) -> Json:
    res: Json = {"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind, "verbs": verbs}
    if short:
        res["shortNames"] = short
    if group is not None:
        res["group"] = group
        res["version"] = version
    return res


API_V1_RESOURCES = {
    "kind": "APIResourceList",
    "groupVersion": "v1",
    "resources": [
        _resource("namespaces", "Namespace", False, ["create", "delete", "get", "list", "patch", "update", "watch"],
                  ["ns"], "namespace"),
        _resource("nodes", "Node", False, _NODE_VERBS, ["no"], "node"),
        _resource("nodes/status", "Node", False, ["get", "patch", "update"]),
        _resource("pods", "Pod", True, _NODE_VERBS, ["po"], "pod"),
        _resource("pods/eviction", "Eviction", True, ["create"], group="policy", version="v1"),
        _resource("pods/status", "Pod", True, ["get", "patch", "update"]),
    ],
}
POLICY_V1_RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "policy/v1",
    "resources": [_resource("poddisruptionbudgets", "PodDisruptionBudget", True, _NODE_VERBS, ["pdb"],
                            "poddisruptionbudget")],
}


class ApiServer(ThreadingHTTPServer):
    """Threaded HTTPS server; the TLS handshake runs in the request thread, not the accept loop."""

    daemon_threads = True
    allow_reuse_address = True
    handler_class: Any = None  # a Handler subclass (the kube stand-in's apiserver); None: Handler

    def __init__(self, address: tuple[str, int], cluster: Cluster, context: ssl.SSLContext) -> None:
        self.cluster = cluster
        self.ssl_context = context
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, self.handler_class or Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(30)
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug(f"http: TLS handshake error from {client_address[0]}:{client_address[1]}: {exc}")
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        import traceback

        log.error(f"http: panic serving {client_address[0]}:{client_address[1]}: "
                  f"{traceback.format_exc(limit=3).strip().splitlines()[-1]}")
        log.debug(traceback.format_exc())


def make_context(tls_dir: Path) -> ssl.SSLContext:
    """Serving certificate plus optional client-cert verification against the client CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(tls_dir / "serving-kube-apiserver.crt"), str(tls_dir / "serving-kube-apiserver.key"))
    ctx.load_verify_locations(str(tls_dir / "client-ca.crt"))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class Handler(BaseHTTPRequestHandler):
    """One request; routes to supervisor or kube API handlers."""

    protocol_version = "HTTP/1.1"
    server: ApiServer
    server_version = "k3s-standin"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("http: " + format % args)

    # ---- plumbing ----------------------------------------------------------------------
    @property
    def cluster(self) -> Cluster:
        return self.server.cluster

    def _send(self, code: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj: Any) -> None:
        self._send(code, json.dumps(obj).encode())

    def _status(self, code: int, reason: str, message: str, details: Json | None = None) -> None:
        self._json(code, nodes.status_object(code, reason, message, details))

    def _body(self) -> bytes:
        return self._raw_body

    def _read_body(self) -> None:
        """Always consume the request body, so keep-alive connections stay in sync."""
        length = int(self.headers.get("Content-Length") or 0)
        self._raw_body = self.rfile.read(length) if length > 0 else b""

    def _client_subject(self) -> dict[str, list[str]] | None:
        try:
            cert = self.connection.getpeercert()
        except (AttributeError, ValueError):
            return None
        if not cert:
            return None
        subject: dict[str, list[str]] = {}
        for rdn in cert.get("subject", ()):
            for key, value in rdn:
                subject.setdefault(key, []).append(value)
        return subject

    # ---- dispatch ----------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        self._read_body()
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        try:
            if self._supervisor(path):
                return
            if self._client_subject() is None:
                self._status(401, "Unauthorized", "Unauthorized")
                return
            self._kube(path, query)
        except DatastoreError as exc:
            log.error(f"datastore error serving {self.command} {path}: {exc}")
            self._status(500, "InternalError", f"Internal error occurred: {exc}")
        except (BrokenPipeError, ConnectionResetError):
            pass

    # ---- supervisor ------------------------------------------------------------------
    def _require(self, roles: tuple[str, ...]) -> bool:
        if self.cluster.check_basic(self.headers.get("Authorization"), roles):
            return True
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        log.error(f"Failed to authenticate request from {peer}: invalid username/password combination")
        self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8")
        return False

    def _supervisor(self, path: str) -> bool:
        c = self.cluster
        if path == "/cacerts" and self.command in ("GET", "HEAD"):
            self._send(200, (c.tls_dir / "server-ca.crt").read_bytes(), "text/plain")
            return True
        if path == "/ping":
            self._send(200, b"pong", "text/plain")
            return True
        if path.startswith("/v1-k3s/"):
            self._v1_k3s(path[len("/v1-k3s/"):])
            return True
        if path.startswith("/db/"):
            if self._require(("server",)):
                self._db(path[len("/db/"):])
            return True
        return False

    def _v1_k3s(self, sub: str) -> None:
        c = self.cluster
        if sub == "server-bootstrap":
            if self._require(("server",)):
                from .pki import read_ca_material

                material = read_ca_material(c.tls_dir)
                self._json(200, {k: base64.b64encode(v).decode() for k, v in material.items()})
            return
        if not self._require(("node", "server")):
            return
        if sub == "readyz":
            ok = c.ready.is_set() and c.healthy()
            self._send(200 if ok else 503, b"ok" if ok else b"not ready", "text/plain")
        elif sub == "config":
            self._json(200, {**c.config_summary, "servers": c.server_urls()})
        elif sub == "apiservers":
            self._json(200, [u.split("://", 1)[-1] for u in c.server_urls()])
        elif sub == "standin/register" and self.command == "POST":
            fresh = json.loads(self._body())
            if not c.check_node_password(str(fresh["metadata"]["name"]), self.headers.get("K3s-Node-Password", "")):
                self._send(403, b"Forbidden\n", "text/plain")
                return
            node = c.register_node(fresh)
            self._json(200, node)
        elif sub.startswith("standin/heartbeat/") and self.command in ("PUT", "POST"):
            name = sub.split("/", 2)[2]
            if c.renew_lease(name):
                self._json(200, {"servers": c.server_urls()})
            else:
                self._status(404, "NotFound", f'nodes "{name}" not found')
        else:
            self._status(404, "NotFound", "the server could not find the requested resource")

    def _db(self, sub: str) -> None:
        c = self.cluster
        if c.etcd is None:
            self._send(404, b"etcd datastore disabled\n", "text/plain")
            return
        if sub == "info":
            self._json(200, {"members": c.etcd.members()})
        elif sub == "snapshot" and self.command == "POST":
            request = json.loads(self._body() or b"{}")
            self._snapshot(request)
        else:
            self._status(404, "NotFound", "the server could not find the requested resource")

    def _snapshot(self, request: Json) -> None:
        c = self.cluster
        directory = Path(request.get("dir") or (c.data_dir / "server" / "db" / "snapshots"))
        name = f"{request.get('name') or 'on-demand'}-{c.node_name}-{int(time.time())}"
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / name
        try:
            c.etcd.snapshot_save(target)
        except DatastoreError as exc:
            self._send(500, f"{exc}\n".encode(), "text/plain")
            return
        self._json(200, {"name": name, "path": str(target), "size": target.stat().st_size if target.exists() else 0})

    # ---- kube API ----------------------------------------------------------------------
    def _kube(self, path: str, query: dict[str, str]) -> None:
        c = self.cluster
        method = self.command
        if path in ("/readyz", "/livez", "/healthz"):
            self._health(path, query)
        elif path == "/version":
            self._json(200, self._version())
        elif path == "/api":
            host = self.headers.get("Host", "")
            self._json(200, {"kind": "APIVersions", "versions": ["v1"],
                             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
        elif path == "/apis":
            self._json(200, objects.api_groups(c))
        elif path == "/api/v1":
            self._json(200, API_V1_RESOURCES)
        elif path == "/apis/policy/v1":
            self._json(200, POLICY_V1_RESOURCES)
        elif path == "/api/v1/nodes":
            if method == "GET" and query.get("watch") in ("true", "1"):
                self._watch_nodes(query, None)
            elif method == "GET":
                self._list_nodes(query)
            elif method == "POST":
                self._create_node()
            else:
                self._method_not_allowed()
        elif (m := _WATCH_NODES.match(path)) and method == "GET":
            self._watch_nodes(query, m.group(1))
        elif m := _NODE_PATH.match(path):
            self._node(m.group(1), query)
        elif (m := _PODS_PATH.match(path)) and method == "GET":
            if query.get("watch") in ("true", "1"):
                self._idle_watch(query)
            else:
                self._empty_list("PodList", nodes.POD_COLUMNS)
        elif path == "/api/v1/namespaces" and method == "GET":
            self._list_namespaces()
        elif (m := _NS_PATH.match(path)) and method == "GET":
            found = [n for n in c.list_namespaces() if n["metadata"]["name"] == m.group(1)]
            if found:
                self._json(200, found[0])
            else:
                self._status(404, "NotFound", f'namespaces "{m.group(1)}" not found',
                             {"name": m.group(1), "kind": "namespaces"})
        else:
            self._objects(path, query)

    def _objects(self, path: str, query: dict[str, str]) -> None:
        """CRDs, custom resources, namespace writes (module objects); anything else is not served."""
        request = objects.Request(self.command, path, query, self._body(), self.headers.get("Content-Type", ""),
                                  self._wants_table())
        answer = objects.serve(self.cluster, request)
        if answer is None:
            self._status(404, "NotFound", "the server could not find the requested resource")
        else:
            self._json(answer.code, answer.body)

    def _method_not_allowed(self) -> None:
        self._status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _version(self) -> Json:
        c = self.cluster
        major, minor = c.version.lstrip("v").split(".")[:2]
        return {"major": major, "minor": minor, "gitVersion": c.version,
                "gitCommit": (c.commit * 5)[:40], "gitTreeState": "clean", "buildDate": "2023-11-28T00:00:00Z",
                "goVersion": c.go_version, "compiler": "gc", "platform": f"linux/{c.arch}"}

    def _health(self, path: str, query: dict[str, str]) -> None:
        c = self.cluster
        ok = c.healthy()
        checks = ["ping", "log", "etcd", "informer-sync", "poststarthook/start-apiextensions-informers"]
        if ok and c.ready.is_set():
            text = "\n".join(f"[+]{name} ok" for name in checks) + f"\n{path[1:]} check passed\n" \
                if "verbose" in query else "ok"
            self._send(200, text.encode(), "text/plain; charset=utf-8")
            return
        lines = [f"[+]{name} ok" if name != "etcd" else "[-]etcd failed: reason withheld" for name in checks]
        self._send(500, ("\n".join(lines) + f"\n{path[1:]} check failed\n").encode(), "text/plain; charset=utf-8")

    def _wants_table(self) -> bool:
        return "as=Table" in self.headers.get("Accept", "")

    def _list_rv(self) -> str:
        return str(int(time.time() * 1000))

    def _filtered_nodes(self, query: dict[str, str]) -> list[Json]:
        items = self.cluster.list_nodes()
        if query.get("labelSelector"):
            items = [n for n in items if nodes.match_labels(n["metadata"].get("labels", {}), query["labelSelector"])]
        if query.get("fieldSelector"):
            items = [n for n in items if nodes.match_fields(n, query["fieldSelector"])]
        return items

    def _list_nodes(self, query: dict[str, str]) -> None:
        items = self._filtered_nodes(query)
        if self._wants_table():
            self._json(200, nodes.table(nodes.NODE_COLUMNS, items, nodes.node_cells, self._list_rv(),
                                        query.get("includeObject", "PartialObjectMetadata")))
        else:
            self._json(200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": self._list_rv()},
                             "items": items})

    def _empty_list(self, kind: str, columns: list[tuple[str, str, str, int]]) -> None:
        if self._wants_table():
            self._json(200, nodes.table(columns, [], lambda o, n: [], self._list_rv()))
        else:
            self._json(200, {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": self._list_rv()},
                             "items": []})

    def _list_namespaces(self) -> None:
        items = self.cluster.list_namespaces()
        if self._wants_table():
            self._json(200, nodes.table(nodes.NAMESPACE_COLUMNS, items, nodes.namespace_cells, self._list_rv()))
        else:
            self._json(200, {"kind": "NamespaceList", "apiVersion": "v1",
                             "metadata": {"resourceVersion": self._list_rv()}, "items": items})

    def _node_not_found(self, name: str) -> None:
        self._status(404, "NotFound", f'nodes "{name}" not found', {"name": name, "kind": "nodes"})

    def _create_node(self) -> None:
        obj = json.loads(self._body())
        name = obj.get("metadata", {}).get("name", "")
        if self.cluster.raw_node(name) is not None:
            self._status(409, "AlreadyExists", f'nodes "{name}" already exists', {"name": name, "kind": "nodes"})
            return
        fresh = nodes.new_node(name, labels=obj["metadata"].get("labels", {}),
                               annotations=obj["metadata"].get("annotations", {}),
                               taints=obj.get("spec", {}).get("taints", []), addresses=[], node_info={})
        self.cluster.save_node(fresh)
        self._json(201, self.cluster.get_node(name))

    def _node(self, name: str, query: dict[str, str]) -> None:
        c = self.cluster
        method = self.command
        if method in ("GET", "HEAD"):
            node = c.get_node(name)
            if node is None:
                self._node_not_found(name)
            elif self._wants_table():
                self._json(200, nodes.table(nodes.NODE_COLUMNS, [node], nodes.node_cells, self._list_rv(),
                                            query.get("includeObject", "PartialObjectMetadata")))
            else:
                self._json(200, node)
        elif method in ("PATCH", "PUT"):
            body = self._body()
            with c._lock:
                stored = c.raw_node(name)
                if stored is None:
                    self._node_not_found(name)
                    return
                if method == "PATCH":
                    try:
                        updated = nodes.apply_patch(stored, self.headers.get("Content-Type", ""), body)
                    except nodes.PatchError as exc:
                        code = 415 if "unknown format" in str(exc) else 422
                        self._status(code, "UnsupportedMediaType" if code == 415 else "Invalid", str(exc))
                        return
                else:
                    incoming = json.loads(body)
                    updated = dict(stored)
                    updated["metadata"] = {**stored["metadata"],
                                           "labels": incoming.get("metadata", {}).get("labels", {}),
                                           "annotations": incoming.get("metadata", {}).get("annotations", {})}
                    updated["spec"] = incoming.get("spec", stored.get("spec", {}))
                updated["metadata"]["name"] = name
                c.save_node(updated)
            if query.get("dryRun"):
                pass
            self._json(200, c.get_node(name))
        elif method == "DELETE":
            node = c.get_node(name)
            if node is None or not c.delete_node(name):
                self._node_not_found(name)
                return
            log.info(f"Deleted node {name}")
            self._json(200, nodes.status_object(200, "", "", {"name": name, "kind": "nodes",
                                                              "uid": node["metadata"].get("uid", "")}))
        else:
            self._method_not_allowed()

    # ---- watch ---------------------------------------------------------------------------
    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch_nodes(self, query: dict[str, str], name: str | None) -> None:
        """Poll the store and stream changes; sends current objects first so no change is missed."""
        if name:
            query = {**query, "fieldSelector": f"metadata.name={name}"}
        timeout = min(float(query.get("timeoutSeconds") or 300), 1800.0)
        deadline = time.time() + timeout
        self._start_stream()
        seen: dict[str, str] = {}
        first = True
        try:
            while time.time() < deadline and not self.cluster_stopping():
                current = {n["metadata"]["name"]: n for n in self._filtered_nodes(query)}
                for node_name, node in current.items():
                    text = json.dumps(_comparable(node), sort_keys=True)
                    if seen.get(node_name) != text:
                        kind = "ADDED" if node_name not in seen and (first and query.get("resourceVersion") in
                                                                     (None, "", "0")) else "MODIFIED"
                        if node_name not in seen and not first:
                            kind = "ADDED"
                        self._chunk(json.dumps({"type": kind, "object": node}).encode() + b"\n")
                        seen[node_name] = text
                for gone in [n for n in seen if n not in current]:
                    self._chunk(json.dumps({"type": "DELETED", "object": {"kind": "Node", "apiVersion": "v1",
                                                                          "metadata": {"name": gone}}}).encode()
                                + b"\n")
                    del seen[gone]
                first = False
                time.sleep(1.0)
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            return
        self.close_connection = True

    def _idle_watch(self, query: dict[str, str]) -> None:
        timeout = min(float(query.get("timeoutSeconds") or 60), 300.0)
        self._start_stream()
        try:
            end = time.time() + timeout
            while time.time() < end and not self.cluster_stopping():
                time.sleep(1.0)
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            return
        self.close_connection = True

    def cluster_stopping(self) -> bool:
        return bool(getattr(self.server, "stopping", False))


def _comparable(node: Json) -> Json:
    """Node without timestamps that change on every heartbeat, for change detection."""
    view: Json = json.loads(json.dumps(node))
    for cond in view.get("status", {}).get("conditions", []):
        cond.pop("lastHeartbeatTime", None)
        cond.pop("lastTransitionTime", None)
    for taint in view.get("spec", {}).get("taints", []) or []:
        taint.pop("timeAdded", None)
    return view


def serve(cluster: Cluster, bind: str, port: int) -> ApiServer:
    """Start the listener in a background thread and return it."""
    server = ApiServer((bind, port), cluster, make_context(cluster.tls_dir))
    server.stopping = False  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name="https", daemon=True)
    thread.start()
    return server
