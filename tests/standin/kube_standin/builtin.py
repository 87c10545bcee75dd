"""Built-in API types the kubeadm cluster needs, stored generically in the apiserver's datastore.

ConfigMap, Secret, ServiceAccount, Service, Endpoints, Event, Pod (core; pods are records only: nothing runs them,
see ``evict`` for the eviction subresource), DaemonSet, Deployment, ReplicaSet (apps),
ClusterRole(Binding), Role(Binding) (rbac), CertificateSigningRequest (certificates, with ``/approval`` and
``/status``), Lease (coordination), PodDisruptionBudget (policy), PriorityClass (scheduling), NetworkPolicy
(networking). Verbs: create, get, list (label/field selectors, all namespaces), update (PUT), patch (merge,
strategic-merge as merge, JSON patch), delete. Keys are the real apiserver's (``/registry/configmaps/<ns>/<name>``,
``/registry/services/specs/<ns>/<name>``). Objects are stored as sent plus metadata (uid, creationTimestamp,
resourceVersion, generation); no schema validation, defaulting beyond what kubectl shows, admission or watch.
Status is kept on spec writes (the status subresource types) and written only through ``/status``.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

from k3s_standin import nodes

Json = dict[str, Any]
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short: tuple[str, ...] = ()
    key_base: str = ""
    status: bool = False  # has a /status subresource (spec writes keep status)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def prefix(self, namespace: str | None) -> str:
        base = f"/registry/{self.key_base or self.plural}/"
        return base + f"{namespace}/" if self.namespaced and namespace else base

    def discovery(self) -> list[Json]:
        entry: Json = {"name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
                       "kind": self.kind, "verbs": VERBS}
        if self.short:
            entry["shortNames"] = list(self.short)
        out = [entry]
        if self.status:
            out.append({"name": f"{self.plural}/status", "singularName": "", "namespaced": self.namespaced,
                        "kind": self.kind, "verbs": ["get", "patch", "update"]})
        if self.plural == "certificatesigningrequests":
            out.append({"name": "certificatesigningrequests/approval", "singularName": "", "namespaced": False,
                        "kind": self.kind, "verbs": ["get", "patch", "update"]})
        return out


KINDS = [
    Kind("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",)),
    Kind("", "v1", "secrets", "secret", "Secret", True),
    Kind("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, ("sa",)),
    Kind("", "v1", "services", "service", "Service", True, ("svc",), "services/specs", True),
    Kind("", "v1", "endpoints", "endpoints", "Endpoints", True, ("ep",), "services/endpoints"),
    Kind("", "v1", "events", "event", "Event", True, ("ev",)),
    Kind("", "v1", "pods", "pod", "Pod", True, ("po",), "", True),
    Kind("apps", "v1", "daemonsets", "daemonset", "DaemonSet", True, ("ds",), "", True),
    Kind("apps", "v1", "deployments", "deployment", "Deployment", True, ("deploy",), "", True),
    Kind("apps", "v1", "replicasets", "replicaset", "ReplicaSet", True, ("rs",), "", True),
    Kind("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", False),
    Kind("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", False),
    Kind("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True),
    Kind("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True),
    Kind("certificates.k8s.io", "v1", "certificatesigningrequests", "certificatesigningrequest",
         "CertificateSigningRequest", False, ("csr",), "", True),
    # not /registry/leases/: the node heartbeat records of k3s_standin.cluster live there
    Kind("coordination.k8s.io", "v1", "leases", "lease", "Lease", True, (), "coordination-leases"),
    Kind("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", True, ("pdb",), "",
         True),
    Kind("scheduling.k8s.io", "v1", "priorityclasses", "priorityclass", "PriorityClass", False, ("pc",)),
    Kind("networking.k8s.io", "v1", "networkpolicies", "networkpolicy", "NetworkPolicy", True, ("netpol",)),
]
GROUPS = ["apps", "rbac.authorization.k8s.io", "certificates.k8s.io", "coordination.k8s.io", "scheduling.k8s.io",
          "networking.k8s.io"]


def kind(group: str, plural: str) -> Kind:
    return next(k for k in KINDS if k.group == group and k.plural == plural)


def core_resources() -> list[Json]:
    return [e for k in KINDS if k.group == "" for e in k.discovery()]


def group_resources(group: str, version: str) -> Json | None:
    found = [e for k in KINDS if (k.group, k.version) == (group, version) for e in k.discovery()]
    if not found:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}", "resources": found}


def api_groups() -> list[Json]:
    return [{"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
             "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}} for g in GROUPS]


@dataclass
class Answer:
    code: int
    body: Json


class Failed(Exception):
    def __init__(self, code: int, reason: str, message: str, details: Json | None = None) -> None:
        super().__init__(message)
        self.answer = Answer(code, nodes.status_object(code, reason, message, details))


def qualified(k: Kind) -> str:
    return f"{k.plural}.{k.group}" if k.group else k.plural


def not_found(k: Kind, name: str) -> Failed:
    details: Json = {"name": name, "kind": k.plural}
    if k.group:
        details["group"] = k.group
    return Failed(404, "NotFound", f'{qualified(k)} "{name}" not found', details)


def parse_path(path: str) -> tuple[Kind, str | None, str | None, str] | None:
    """(kind, namespace, name, subresource) for a built-in type's path, else None."""
    parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
        if parts[2] != "v1":
            return None
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return None
    match = next((k for k in KINDS if k.group == group and k.plural == rest[0]), None)
    if match is None or len(rest) > 3:
        return None
    if namespace is not None and not match.namespaced:
        return None
    return match, namespace, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else ""


class Store:
    """Reads and writes of built-in objects on a k3s_standin Cluster's datastore."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    def key(self, k: Kind, namespace: str | None, name: str) -> str:
        return k.prefix(namespace) + name

    def get(self, k: Kind, namespace: str | None, name: str) -> Json | None:
        raw = self.cluster.store.get(self.key(k, namespace, name))
        return None if raw is None else dict(json.loads(raw))

    def list(self, k: Kind, namespace: str | None) -> list[Json]:
        return [json.loads(v) for _, v in sorted(self.cluster.store.list(k.prefix(namespace)).items())]

    def _namespace_exists(self, namespace: str) -> bool:
        return self.cluster.store.get(nodes.NAMESPACE_PREFIX + namespace) is not None

    def create(self, k: Kind, namespace: str | None, obj: Json) -> Json:
        meta = obj.setdefault("metadata", {})
        name = str(meta.get("name") or "")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
            meta["name"] = name
        if not name:
            raise Failed(422, "Invalid", f'{k.kind} "" is invalid: metadata.name: Required value: name or '
                         "generateName is required")
        if k.namespaced:
            if meta.get("namespace") not in (None, namespace):
                raise Failed(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                             "sent on the request")
            if not self._namespace_exists(str(namespace)):
                raise Failed(404, "NotFound", f'namespaces "{namespace}" not found',
                             {"name": namespace, "kind": "namespaces"})
        now = time.time()
        meta.pop("resourceVersion", None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=nodes.rfc3339(now), resourceVersion=str(int(now * 1e6)))
        if k.status or k.group == "apps":
            meta["generation"] = 1
        if k.namespaced:
            meta["namespace"] = namespace
        obj["apiVersion"], obj["kind"] = k.group_version, k.kind
        if k.status and k.plural != "certificatesigningrequests":
            obj["status"] = {}
        self._defaults(k, obj)
        if not self.cluster.store.create(self.key(k, namespace, name), json.dumps(obj).encode()):
            raise Failed(409, "AlreadyExists", f'{qualified(k)} "{name}" already exists',
                         {"name": name, "kind": k.plural, **({"group": k.group} if k.group else {})})
        return obj

    @staticmethod
    def _defaults(k: Kind, obj: Json) -> None:
        if k.plural == "secrets":
            obj.setdefault("type", "Opaque")
        if k.plural == "deployments":
            obj.setdefault("spec", {}).setdefault("replicas", 1)
        if k.plural == "services":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")

    def replace(self, k: Kind, namespace: str | None, name: str, obj: Json, subresource: str = "") -> Json:
        stored = self.get(k, namespace, name)
        if stored is None:
            raise not_found(k, name)
        return self._write(k, namespace, name, stored, obj, subresource)

    def _write(self, k: Kind, namespace: str | None, name: str, stored: Json, obj: Json, subresource: str) -> Json:
        meta = obj.setdefault("metadata", {})
        for field in ("name", "namespace", "uid", "creationTimestamp"):
            if field in stored["metadata"]:
                meta[field] = stored["metadata"][field]
        obj["apiVersion"], obj["kind"] = k.group_version, k.kind
        if subresource == "status":
            stored["status"] = obj.get("status", {})
            obj = stored
        elif subresource == "approval":
            stored.setdefault("status", {})["conditions"] = (obj.get("status") or {}).get("conditions", [])
            obj = stored
        elif k.status:
            if "status" in stored:
                obj["status"] = stored["status"]
            else:
                obj.pop("status", None)

        def body(o: Json) -> Json:
            return {x: y for x, y in o.items() if x not in ("metadata", "status")}

        if "generation" in stored["metadata"]:
            meta = obj["metadata"]
            meta["generation"] = stored["metadata"]["generation"] + (1 if body(obj) != body(stored) else 0)
        obj["metadata"]["resourceVersion"] = str(int(time.time() * 1e6))
        self.cluster.store.put(self.key(k, namespace, name), json.dumps(obj).encode())
        return obj

    def patch(self, k: Kind, namespace: str | None, name: str, content_type: str, body: bytes,
              subresource: str = "") -> Json:
        with self.cluster._lock:
            stored = self.get(k, namespace, name)
            if stored is None:
                raise not_found(k, name)
            try:
                updated = nodes.apply_patch(stored, content_type, body)
            except nodes.PatchError as exc:
                unknown = "unknown format" in str(exc)
                raise Failed(415 if unknown else 422, "UnsupportedMediaType" if unknown else "Invalid",
                             str(exc)) from exc
            return self._write(k, namespace, name, json.loads(json.dumps(stored)), updated, subresource)

    def delete(self, k: Kind, namespace: str | None, name: str) -> Json:
        stored = self.get(k, namespace, name)
        if stored is None:
            raise not_found(k, name)
        self.cluster.store.delete(self.key(k, namespace, name))
        return stored


# ---- PodDisruptionBudgets and the eviction subresource -------------------------------------------------------------


def _selects(pdb: Json, pod: Json) -> bool:
    """matchLabels of the PDB's selector (matchExpressions are not modelled); an empty selector selects nothing."""
    wanted = ((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def _count(value: Any, expected: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = expected * int(value[:-1]) / 100
        return int(-(-share // 1)) if round_up else int(share)
    return int(value)


def pdb_status(pdb: Json, pods: list[Json]) -> Json:
    """The disruption controller's numbers for a PDB. Every pod the stand-in knows counts as healthy (no pod runs)."""
    selected = [p for p in pods if _selects(pdb, p) and not (p.get("metadata") or {}).get("deletionTimestamp")]
    expected = healthy = len(selected)
    spec = pdb.get("spec") or {}
    if "maxUnavailable" in spec:
        desired = max(expected - _count(spec["maxUnavailable"], expected, round_up=True), 0)
    else:
        desired = _count(spec.get("minAvailable", 1), expected, round_up=True)
    return {"currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected,
            "disruptionsAllowed": max(healthy - desired, 0), "observedGeneration": pdb["metadata"].get("generation", 1)}


def evict(store: Store, namespace: str, name: str) -> Answer:
    """POST .../pods/<name>/eviction: refused with 429 while a PDB selecting the pod allows no disruption (the
    apiserver's texts), else the pod is deleted at once (nothing runs it, so nothing has to stop)."""
    pods = builtin_kind("pods")
    pod = store.get(pods, namespace, name)
    if pod is None:
        raise not_found(pods, name)
    budgets = [b for b in store.list(builtin_kind("poddisruptionbudgets"), namespace) if _selects(b, pod)]
    if len(budgets) > 1:
        raise Failed(500, "InternalError", "This pod has more than one PodDisruptionBudget, which the eviction "
                     "subresource does not support.")
    if budgets:
        status = pdb_status(budgets[0], store.list(pods, namespace))
        if status["disruptionsAllowed"] < 1:
            budget = budgets[0]["metadata"]["name"]
            raise Failed(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.",
                         {"causes": [{"reason": "DisruptionBudget",
                                      "message": f"The disruption budget {budget} needs {status['desiredHealthy']} "
                                                 f"healthy pods and has {status['currentHealthy']} currently"}]})
    store.delete(pods, namespace, name)
    return Answer(201, nodes.status_object(201, "", ""))


def builtin_kind(plural: str) -> Kind:
    return next(k for k in KINDS if k.plural == plural)


def table(k: Kind, items: list[Json]) -> Json:
    """The apiserver's Table for kubectl get: NAME plus the type's usual columns, AGE."""
    def age(o: Json, now: float) -> str:
        return nodes.human_duration(now - nodes.parse_rfc3339(o["metadata"]["creationTimestamp"]))

    columns: list[tuple[str, str, str, int]] = [("Name", "string", "name", 0)]
    extra: Any = lambda o, now: []  # noqa: E731
    if k.plural in ("configmaps", "secrets"):
        if k.plural == "secrets":
            columns.append(("Type", "string", "", 0))
        columns.append(("Data", "integer", "", 0))

        def extra(o: Json, now: float) -> list[Any]:
            return ([o.get("type", "Opaque")] if k.plural == "secrets" else []) + [len(o.get("data") or {}) + len(
                o.get("binaryData") or o.get("stringData") or {})]
    elif k.plural == "daemonsets":
        columns += [(n, "integer", "", 0) for n in ("Desired", "Current", "Ready", "Up-to-date", "Available")]
        columns.append(("Node Selector", "string", "", 0))

        def extra(o: Json, now: float) -> list[Any]:
            s = o.get("status") or {}
            sel = (((o.get("spec") or {}).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
            return [s.get("desiredNumberScheduled", 0), s.get("currentNumberScheduled", 0), s.get("numberReady", 0),
                    s.get("updatedNumberScheduled", 0), s.get("numberAvailable", 0),
                    ",".join(f"{a}={b}" for a, b in sel.items()) or "<none>"]
    elif k.plural == "deployments":
        columns += [("Ready", "string", "", 0), ("Up-to-date", "integer", "", 0), ("Available", "integer", "", 0)]

        def extra(o: Json, now: float) -> list[Any]:
            s = o.get("status") or {}
            return [f"{s.get('readyReplicas', 0)}/{(o.get('spec') or {}).get('replicas', 1)}",
                    s.get("updatedReplicas", 0), s.get("availableReplicas", 0)]
    elif k.plural == "certificatesigningrequests":
        columns += [("SignerName", "string", "", 0), ("Requestor", "string", "", 0),
                    ("RequestedDuration", "string", "", 0), ("Condition", "string", "", 0)]

        def extra(o: Json, now: float) -> list[Any]:
            conds = [c["type"] for c in (o.get("status") or {}).get("conditions") or []]
            if (o.get("status") or {}).get("certificate"):
                conds.append("Issued")
            return [o["spec"].get("signerName", ""), o["spec"].get("username", ""), "<none>",
                    ",".join(conds) or "Pending"]
    columns.append(("Age", "string", "", 0))

    def cells(o: Json, now: float) -> list[Any]:
        return [o["metadata"]["name"], *extra(o, now), age(o, now)]

    return nodes.table(columns, items, cells, str(int(time.time() * 1e6)))
