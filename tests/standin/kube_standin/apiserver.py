"""``kube-apiserver`` as the kubelet runs it from the static pod manifest: the K3s stand-in's API core on etcd.

Flags read (others accepted and ignored): ``--advertise-address``, ``--bind-address``, ``--secure-port``,
``--tls-cert-file``/``--tls-private-key-file`` (serving), ``--client-ca-file`` (client certificates),
``--etcd-servers``/``--etcd-cafile``/``--etcd-certfile``/``--etcd-keyfile`` (storage: etcd v3 through its JSON
gateway, keys under ``/registry/``), ``--service-cluster-ip-range`` (the ``default/kubernetes`` Service),
``--enable-bootstrap-token-auth``.

Authentication: client certificates signed by the client CA (any such user may do anything: no RBAC), bootstrap
tokens (``Authorization: Bearer <id>.<secret>`` checked against ``kube-system/bootstrap-token-<id>``: secret,
``usage-bootstrap-authentication``, ``expiration``), anonymous. Bootstrap tokens and anonymous users get what
kubeadm's RBAC rules give them (cluster-info for anonymous; CSRs, kubeadm-config, kubelet-config, nodes for
bootstrappers) and 403 with the apiserver's wording otherwise.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import json
import signal
import ssl
import sys
import threading
import time
import urllib.parse
from typing import Any

from k3s_standin import api, datastore_external, nodes
from k3s_standin.cluster import Cluster
from k3s_standin.datastore import DatastoreError

from . import builtin, host, klog, versions

Json = dict[str, Any]
ANONYMOUS = ("system:anonymous", ["system:unauthenticated"])
BOOTSTRAP_GROUP = "system:bootstrappers:kubeadm:default-node-token"


def parse_flags(argv: list[str]) -> dict[str, str]:
    flags: dict[str, str] = {}
    for arg in argv:
        if arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            flags[name] = value
    return flags


def token_identity(store: Any, token: str) -> tuple[str, list[str]] | None:
    """The bootstrap token authenticator: None when the token is unknown, wrong, expired or not for auth."""
    token_id, _, secret = token.partition(".")
    raw = store.get(f"/registry/secrets/kube-system/bootstrap-token-{token_id}")
    if raw is None:
        return None
    obj = json.loads(raw)
    data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    data.update(obj.get("stringData") or {})
    if obj.get("type") != "bootstrap.kubernetes.io/token" or not hmac.compare_digest(data.get("token-secret", ""),
                                                                                     secret):
        return None
    if data.get("usage-bootstrap-authentication") != "true":
        return None
    expiration = data.get("expiration")
    if expiration and nodes.parse_rfc3339(expiration) < time.time():
        return None
    groups = ["system:bootstrappers"] + [g for g in data.get("auth-extra-groups", "").split(",") if g]
    return f"system:bootstrap:{token_id}", [*groups, "system:authenticated"]


_BOOTSTRAP_READS = {("configmaps", "kube-system", "kubeadm-config"), ("configmaps", "kube-system", "kubelet-config"),
                    ("configmaps", "kube-public", "cluster-info")}


def allowed(user: str, method: str, path: str, groups: list[str] | None = None) -> bool:
    """What kubeadm's RBAC rules grant to anonymous users and bootstrap tokens (``kubeadm:kubeadm-certs``: the
    default-node-token group may get the ``kubeadm-certs`` Secret, for control-plane joins)."""
    if path in ("/version", "/healthz", "/livez", "/readyz"):
        return True
    parsed = builtin.parse_path(path)
    if user == "system:anonymous":
        return method == "GET" and parsed is not None and (parsed[0].plural, parsed[1], parsed[2]) == (
            "configmaps", "kube-public", "cluster-info")
    if user.startswith("system:bootstrap:"):
        parts = path.strip("/").split("/")
        if method == "GET" and ((parts[:1] == ["api"] and len(parts) <= 2) or (parts[:1] == ["apis"] and len(parts) <= 3)):
            return True
        if parsed is not None and parsed[0].plural == "certificatesigningrequests":
            return method in ("GET", "POST")
        if parsed is not None and method == "GET" and (parsed[0].plural, parsed[1], parsed[2]) in _BOOTSTRAP_READS:
            return True
        if parsed is not None and method == "GET" and (parsed[0].plural, parsed[1], parsed[2]) == (
                "secrets", "kube-system", "kubeadm-certs") and BOOTSTRAP_GROUP in (groups or []):
            return True
        return method == "GET" and path.startswith("/api/v1/nodes")
    return True


class KubeHandler(api.Handler):
    server_version = "kube-apiserver-standin"

    def _supervisor(self, path: str) -> bool:
        return False  # no k3s supervisor on a kube-apiserver

    def _identity(self) -> tuple[str, list[str]] | None:
        subject = self._client_subject()
        if subject is not None:
            return (subject.get("commonName") or [""])[0], subject.get("organizationName", [])
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return token_identity(self.cluster.store, header[7:].strip())
        return ANONYMOUS

    def _forbidden(self, user: str, path: str) -> None:
        parsed = builtin.parse_path(path)
        verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
            self.command, "get")
        if parsed is None:
            self._status(403, "Forbidden", f'forbidden: User "{user}" cannot {verb} path "{path}"')
            return
        k, namespace, name, _ = parsed
        if name is None and verb == "get":
            verb = "list"
        what = f'{builtin.qualified(k)} "{name}"' if name else builtin.qualified(k)
        where = f' in the namespace "{namespace}"' if namespace else ""
        scope = "" if namespace else " at the cluster scope"
        self._status(403, "Forbidden", f'{what} is forbidden: User "{user}" cannot {verb} resource "{k.plural}" in '
                     f'API group "{k.group}"{where}{scope}', {"name": name or "", "kind": k.plural})

    def _dispatch(self) -> None:
        self._read_body()
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        try:
            identity = self._identity()
            if identity is None:
                self._status(401, "Unauthorized", "Unauthorized")
                return
            self.user = identity
            if not allowed(identity[0], self.command, path, identity[1]):
                self._forbidden(identity[0], path)
                return
            self._route(path, query)
        except DatastoreError as exc:
            klog.error("status.go", f"apiserver received an error that is not an metav1.Status: {exc}")
            self._status(500, "InternalError", f"Internal error occurred: {exc}")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, path: str, query: dict[str, str]) -> None:
        if path == "/api/v1":
            own = builtin.core_resources()
            names = {e["name"] for e in own}
            self._json(200, {**api.API_V1_RESOURCES,
                             "resources": [r for r in api.API_V1_RESOURCES["resources"] if r["name"] not in names]
                             + own})
            return
        if path == "/apis":
            groups = api.objects.api_groups(self.cluster)
            groups["groups"][1:1] = builtin.api_groups()
            self._json(200, groups)
            return
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "apis" and (listing := builtin.group_resources(parts[1], parts[2])):
            self._json(200, listing)
            return
        if path == "/api/v1/nodes" and self.command == "POST":
            self._register_node()
            return
        if path.startswith("/api/v1/nodes/") and path.endswith("/status") and self.command in ("PATCH", "PUT"):
            self._node_status(path.split("/")[4])
            return
        if builtin.parse_path(path) is not None:
            self._builtin(path, query)
            return
        self._kube(path, query)

    def _version(self) -> Json:
        return versions.info()

    # ---- nodes as a kubelet writes them ------------------------------------------------------------------
    def _register_node(self) -> None:
        obj = json.loads(self._body())
        name = obj.get("metadata", {}).get("name", "")
        c = self.cluster
        if c.raw_node(name) is not None:
            self._status(409, "AlreadyExists", f'nodes "{name}" already exists', {"name": name, "kind": "nodes"})
            return
        now = time.time()
        obj["metadata"].update(uid=str(__import__("uuid").uuid4()), creationTimestamp=nodes.rfc3339(now))
        obj.update(apiVersion="v1", kind="Node")
        obj.setdefault("spec", {})
        c.save_node(obj)
        c.renew_lease(name, _not_ready(obj))
        self._json(201, c.get_node(name))

    def _node_status(self, name: str) -> None:
        c = self.cluster
        with c._lock:
            stored = c.raw_node(name)
            if stored is None:
                self._node_not_found(name)
                return
            if self.command == "PATCH":
                updated = nodes.apply_patch(stored, self.headers.get("Content-Type", ""), self._body())
            else:
                updated = {**stored, "status": json.loads(self._body()).get("status", {})}
            updated["spec"], updated["metadata"] = stored.get("spec", {}), stored["metadata"]
            not_ready = _not_ready(updated)
            c.save_node(updated)
            c.renew_lease(name, not_ready)
        self._json(200, c.get_node(name))

    # ---- built-in types ------------------------------------------------------------------------------------
    def _builtin(self, path: str, query: dict[str, str]) -> None:
        parsed = builtin.parse_path(path)
        assert parsed is not None
        k, namespace, name, sub = parsed
        store = builtin.Store(self.cluster)
        method = self.command
        try:
            if name is None:
                if method == "GET" and query.get("watch") in ("true", "1"):
                    self._idle_watch(query)
                elif method == "GET":
                    items = store.list(k, namespace)
                    if query.get("labelSelector"):
                        items = [o for o in items
                                 if nodes.match_labels(o["metadata"].get("labels") or {}, query["labelSelector"])]
                    if query.get("fieldSelector"):
                        items = [o for o in items if nodes.match_fields(o, query["fieldSelector"])]
                    if self._wants_table():
                        self._json(200, builtin.table(k, items))
                    else:
                        self._json(200, {"kind": f"{k.kind}List", "apiVersion": k.group_version,
                                         "metadata": {"resourceVersion": str(int(time.time() * 1e6))},
                                         "items": items})
                elif method == "POST" and (namespace is not None or not k.namespaced):
                    obj = json.loads(self._body() or b"{}")
                    if k.plural == "certificatesigningrequests":
                        user, groups = self.user
                        obj.setdefault("spec", {}).update(username=user, groups=groups, uid="")
                    self._json(201, store.create(k, namespace, obj))
                else:
                    self._method_not_allowed()
                return
            if sub == "eviction" and k.plural == "pods" and namespace is not None:
                if method != "POST":
                    self._method_not_allowed()
                    return
                answer = builtin.evict(store, namespace, name)
                self._json(answer.code, answer.body)
                return
            if method == "GET":
                obj = store.get(k, namespace, name)
                if obj is None:
                    raise builtin.not_found(k, name)
                self._json(200, builtin.table(k, [obj]) if self._wants_table() else obj)
            elif method == "PUT":
                self._json(200, store.replace(k, namespace, name, json.loads(self._body()), sub))
            elif method == "PATCH":
                self._json(200, store.patch(k, namespace, name, self.headers.get("Content-Type", ""), self._body(),
                                            sub))
            elif method == "DELETE":
                gone = store.delete(k, namespace, name)
                self._json(200, nodes.status_object(200, "", "", {"name": name, "kind": k.plural,
                                                                  "uid": gone["metadata"].get("uid", "")}))
            else:
                self._method_not_allowed()
        except builtin.Failed as failure:
            self._json(failure.answer.code, failure.answer.body)


def _not_ready(node: Json) -> Json | None:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") != "True":
            return {"reason": cond.get("reason", "KubeletNotReady"), "message": cond.get("message", "")}
    return None


class KubeApiServer(api.ApiServer):
    handler_class = KubeHandler


def _context(flags: dict[str, str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(host.path(flags["tls-cert-file"])), str(host.path(flags["tls-private-key-file"])))
    if flags.get("client-ca-file"):
        ctx.load_verify_locations(str(host.path(flags["client-ca-file"])))
        ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _default_service(cluster: Cluster, flags: dict[str, str]) -> None:
    network = ipaddress.ip_network(flags.get("service-cluster-ip-range", "10.96.0.0/12").split(",")[0], strict=False)
    store = builtin.Store(cluster)
    k = builtin.kind("", "services")
    if store.get(k, "default", "kubernetes") is None:
        try:
            store.create(k, "default", {"metadata": {"name": "kubernetes", "labels": {
                "component": "apiserver", "provider": "kubernetes"}}, "spec": {
                "clusterIP": str(network[1]), "clusterIPs": [str(network[1])], "type": "ClusterIP",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": int(
                    flags.get("secure-port", "6443"))}]}})
        except builtin.Failed:
            pass


def run(argv: list[str]) -> int:
    flags = parse_flags(argv)
    for needed in ("etcd-servers", "tls-cert-file", "tls-private-key-file"):
        if not flags.get(needed):
            klog.error("run.go", f'"command failed" err="--{needed} must be specified"')
            return 1
    def file(name: str) -> str | None:
        return str(host.path(flags[name])) if flags.get(name) else None

    tls = datastore_external.TLSFiles(file("etcd-cafile"), file("etcd-certfile"), file("etcd-keyfile"))
    store = None
    while store is None:
        try:
            store = datastore_external.open_etcd(flags["etcd-servers"], tls)
        except DatastoreError as exc:
            klog.warning("logging.go", f'[core] [Channel #1 SubChannel #2] grpc: addrConn.createTransport failed to '
                         f'connect to {{Addr: "{flags["etcd-servers"]}"}}. Err: {exc}')
            time.sleep(2)
    # Like kube-apiserver: --bind-address, default all interfaces (kubeadm's manifest sets only --advertise-address,
    # so the API answers on 127.0.0.1 too, which load-balancer health checks rely on).
    bind = flags.get("bind-address") or "0.0.0.0"  # noqa: S104
    if bind == "0.0.0.0":  # noqa: S104 - kube-apiserver's default is all interfaces
        bind = "::" if ":" in flags.get("advertise-address", "") else "0.0.0.0"  # noqa: S104
    cluster = Cluster(store=store, tls_dir=__import__("pathlib").Path("/nonexistent"), server_password="",
                      agent_password="", node_name="", supervisor_url="", version=versions.version(),
                      arch="amd64")
    for _ in range(60):
        try:
            cluster.ensure_namespaces()
            _default_service(cluster, flags)
            break
        except DatastoreError as exc:
            klog.warning("storage.go", f"waiting for etcd: {exc}")
            time.sleep(1)
    server = KubeApiServer((bind, int(flags.get("secure-port", "6443"))), cluster, _context(flags))
    server.stopping = False  # type: ignore[attr-defined]
    cluster.ready.set()
    klog.info("secure_serving.go", f'"Serving securely on {bind}:{flags.get("secure-port", "6443")}"')
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    thread = threading.Thread(target=server.serve_forever, name="https", daemon=True)
    thread.start()
    done.wait()
    server.stopping = True  # type: ignore[attr-defined]
    server.shutdown()
    sys.stdout.flush()
    return 0
