"""Server-side cluster state on top of a Datastore: nodes, leases, namespaces, servers.

One :class:`Cluster` lives in each ``k3s server`` process. Servers sharing a datastore
(external SQL/etcd or embedded etcd) therefore see the same nodes, which is what makes
HA topologies observable through any server's API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import log, nodes
from .datastore import Datastore, DatastoreError

SERVER_PREFIX = "/standin/servers/"
CRITICAL_KEY = "/standin/critical-config"
ETCD_ROLE_LABEL = "node-role.kubernetes.io/etcd"
ETCD_NODE_NAME_ANNOTATION = "etcd.k3s.cattle.io/node-name"
ETCD_NODE_ADDRESS_ANNOTATION = "etcd.k3s.cattle.io/node-address"
ETCD_REMOVED_ANNOTATION = "etcd.k3s.cattle.io/removed-node-name"

Json = dict[str, Any]



def node_password_key(name: str) -> str:
    """Where a node's password hash lives: the Secret ``<name>.node-password.k3s`` in kube-system."""
    return f"/registry/secrets/kube-system/{name.lower()}.node-password.k3s"

@dataclass
class Cluster:
    """What the HTTP handlers need: the store, credentials and server identity."""

    store: Datastore
    tls_dir: Path
    server_password: str
    agent_password: str
    node_name: str
    supervisor_url: str
    etcd: Any = None
    data_dir: Path = Path("/var/lib/rancher/k3s")
    version: str = ""
    go_version: str = ""
    commit: str = ""
    arch: str = "amd64"
    config_summary: Json = field(default_factory=dict)
    ready: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- credentials ------------------------------------------------------------------
    def check_basic(self, header: str | None, roles: tuple[str, ...]) -> bool:
        """Basic auth as the supervisor checks it against K3s's passwd file: ``node:<agent pw>`` (the server password
        when no agent-token is set, and only then), ``server:<server pw>``."""
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        if user not in roles:
            return False
        expected = self.agent_password if user == "node" else self.server_password
        return bool(expected) and hmac.compare_digest(password, expected)

    # ---- nodes -------------------------------------------------------------------------
    def _lease(self, name: str) -> tuple[float | None, Json | None]:
        """Renew time and the kubelet's reported not-ready reason (kube stand-in) of a node's lease."""
        raw = self.store.get(nodes.LEASE_PREFIX + name)
        return _parse_lease(raw)

    def list_nodes(self) -> list[Json]:
        stored = self.store.list(nodes.NODE_PREFIX)
        leases = self.store.list(nodes.LEASE_PREFIX)
        now = time.time()
        result = []
        for key in sorted(stored):
            name = key[len(nodes.NODE_PREFIX):]
            node = json.loads(stored[key])
            renew, not_ready = _parse_lease(leases.get(nodes.LEASE_PREFIX + name))
            result.append(nodes.with_conditions(node, renew, now, not_ready))
        return result

    def raw_node(self, name: str) -> Json | None:
        raw = self.store.get(nodes.NODE_PREFIX + name)
        return None if raw is None else dict(json.loads(raw))

    def get_node(self, name: str) -> Json | None:
        node = self.raw_node(name)
        if node is None:
            return None
        renew, not_ready = self._lease(name)
        return nodes.with_conditions(node, renew, None, not_ready)

    def save_node(self, node: Json) -> Json:
        node.setdefault("metadata", {})["resourceVersion"] = str(int(time.time() * 1000))
        # Conditions and the derived unreachable taint are computed on read, never stored.
        node.get("status", {}).pop("conditions", None)
        taints = [t for t in node.get("spec", {}).get("taints", []) or []
                  if t.get("key") != "node.kubernetes.io/unreachable"]
        if taints:
            node["spec"]["taints"] = taints
        else:
            node.get("spec", {}).pop("taints", None)
        self.store.put(nodes.NODE_PREFIX + node["metadata"]["name"], json.dumps(node).encode())
        return node

    def delete_node(self, name: str) -> bool:
        raw = self.raw_node(name)
        if raw is None:
            return False
        if not self._remove_etcd_member(raw):
            return True  # kept, marked for deletion (k3s: the controller's finalizer holds it)
        self.store.delete(nodes.NODE_PREFIX + name)
        self.store.delete(nodes.LEASE_PREFIX + name)
        self.store.delete(node_password_key(name))  # k3s's node controller removes the password with the node
        return True

    def check_node_password(self, name: str, password: str) -> bool:
        """k3s's node password check: the first registration of a node name stores a hash of its password in the
        secret ``<name>.node-password.k3s`` (kube-system); later ones must bring the same password."""
        key = node_password_key(name)
        raw = self.store.get(key)
        if raw is None:
            salt = os.urandom(16)
            digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
            secret = {"apiVersion": "v1", "kind": "Secret", "type": "k3s.cattle.io/node-password", "immutable": True,
                      "metadata": {"name": key.rsplit("/", 1)[1], "namespace": "kube-system",
                                   "creationTimestamp": nodes.rfc3339(time.time())},
                      "data": {"hash": base64.b64encode(f"{salt.hex()}:{digest.hex()}".encode()).decode()}}
            self.store.create(key, json.dumps(secret).encode())
            return True
        salt_hex, _, digest_hex = base64.b64decode(json.loads(raw)["data"]["hash"]).decode().partition(":")
        digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), n=2**14, r=8, p=1)
        if hmac.compare_digest(digest.hex(), digest_hex):
            return True
        log.error(f"unable to verify password for node {name}: hash does not match")
        return False

    def _remove_etcd_member(self, node: Json) -> bool:
        """k3s's managed etcd member controller: deleting an etcd node's object removes its etcd member.

        Upstream this is an OnRemove handler (with a finalizer on the node) that reads the node's
        ``etcd.k3s.cattle.io/node-name``/``node-address`` annotations. When removal fails (no quorum), the node
        stays with a deletionTimestamp; the stand-in does not retry. Returns True when the object may go.
        """
        meta = node.get("metadata", {})
        annotations = meta.get("annotations") or {}
        member = annotations.get(ETCD_NODE_NAME_ANNOTATION)
        if self.etcd is None or ETCD_ROLE_LABEL not in (meta.get("labels") or {}) or not member:
            return True
        if annotations.get(ETCD_REMOVED_ANNOTATION):
            return True
        address = annotations.get(ETCD_NODE_ADDRESS_ANNOTATION, "")
        log.info(f"Removing etcd member from cluster due to node delete name={member} address={address}")
        try:
            self.etcd.remove_member(member)
        except DatastoreError as exc:
            if "member not found" in str(exc):
                return True
            log.error(f"Failed to remove etcd member {member}: {exc}")
            meta["deletionTimestamp"] = nodes.rfc3339(time.time())
            meta["finalizers"] = ["wrangler.cattle.io/managed-etcd-controller"]
            self.save_node(node)
            return False
        return True

    def register_node(self, fresh: Json) -> Json:
        """Create the node or refresh it, keeping admin changes; renews its lease."""
        name = fresh["metadata"]["name"]
        with self._lock:
            existing = self.raw_node(name)
            if existing is None:
                node = fresh
                log.info(f"Registered node {name}") if name != self.node_name else None
            else:
                node = nodes.merge_registration(existing, fresh)
            self.save_node(node)
            self.renew_lease(name)
        return node

    def renew_lease(self, name: str, not_ready: Json | None = None) -> bool:
        """Record a heartbeat; False when the node object is gone (agent must re-register).

        ``not_ready`` (``reason``, ``message``): the node's own report that it is alive but not ready (the kube
        stand-in's kubelet without a CNI config); the Ready condition is then False with that reason."""
        if self.store.get(nodes.NODE_PREFIX + name) is None:
            return False
        record: Json = {"holderIdentity": name, "renewTime": time.time()}
        if not_ready:
            record["notReady"] = not_ready
        self.store.put(nodes.LEASE_PREFIX + name, json.dumps(record).encode())
        return True

    # ---- namespaces ----------------------------------------------------------------------
    def ensure_namespaces(self) -> None:
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            obj = {"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": name, "uid": name, "resourceVersion": "1",
                                "creationTimestamp": nodes.rfc3339(time.time()),
                                "labels": {"kubernetes.io/metadata.name": name}},
                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
            self.store.create(nodes.NAMESPACE_PREFIX + name, json.dumps(obj).encode())

    def list_namespaces(self) -> list[Json]:
        return [json.loads(v) for _, v in sorted(self.store.list(nodes.NAMESPACE_PREFIX).items())]

    # ---- servers -------------------------------------------------------------------------
    def announce_server(self) -> None:
        record = {"name": self.node_name, "url": self.supervisor_url, "renew": time.time()}
        self.store.put(SERVER_PREFIX + self.node_name, json.dumps(record).encode())

    def server_urls(self) -> list[str]:
        """Supervisor URLs of servers that announced themselves recently (agents fail over to them)."""
        urls = []
        try:
            for raw in self.store.list(SERVER_PREFIX).values():
                record = json.loads(raw)
                if time.time() - float(record.get("renew", 0)) <= nodes.grace_seconds():
                    urls.append(str(record["url"]))
        except DatastoreError:
            pass
        if self.supervisor_url not in urls:
            urls.insert(0, self.supervisor_url)
        return urls

    def healthy(self) -> bool:
        try:
            return bool(self.store.healthy())
        except DatastoreError:
            return False


def _parse_lease(raw: bytes | None) -> tuple[float | None, Json | None]:
    if raw is None:
        return None, None
    try:
        record = json.loads(raw)
        return float(record["renewTime"]), record.get("notReady")
    except (ValueError, KeyError, TypeError):
        return None, None
