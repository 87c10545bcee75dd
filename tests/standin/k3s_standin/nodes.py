"""Kubernetes object shapes the stand-in serves: Node, lists, Tables, Status, patches.

Nodes are stored as JSON under ``/registry/minions/<name>``; liveness is a separate lease
(``/registry/leases/kube-node-lease/<name>``) renewed by the node's agent. The Ready
condition is derived when a node is read: True while the lease is younger than the
grace period, Unknown ("NotReady" in kubectl) after that, as the node lifecycle
controller would report.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import time
import uuid
from typing import Any

NODE_PREFIX = "/registry/minions/"
LEASE_PREFIX = "/registry/leases/kube-node-lease/"
NAMESPACE_PREFIX = "/registry/namespaces/"
DEFAULT_GRACE_SECONDS = 40.0
GRACE_ENV = "K3S_STANDIN_NODE_GRACE_SECONDS"

Json = dict[str, Any]


def grace_seconds() -> float:
    """Seconds without a heartbeat before a node turns NotReady (hidden env override)."""
    try:
        return float(os.environ.get(GRACE_ENV, DEFAULT_GRACE_SECONDS))
    except ValueError:
        return DEFAULT_GRACE_SECONDS


def rfc3339(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()


def human_duration(seconds: float) -> str:
    """Age text as kubectl prints it (apimachinery's HumanDuration)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rem = s % 60
        return f"{minutes}m{rem}s" if rem else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rem = minutes % 60
        return f"{hours}h{rem}m" if rem else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rem = hours % 24
        return f"{hours // 24}d{rem}h" if rem else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24
        return f"{days // 365}y{days % 365}d"
    return f"{hours // 24 // 365}y"


def new_node(name: str, *, labels: dict[str, str], annotations: dict[str, str], taints: list[Json],
             addresses: list[Json], node_info: Json) -> Json:
    """A Node object as the kubelet would register it."""
    now = time.time()
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": str(uuid.uuid4()),
            "resourceVersion": str(int(now * 1000)),
            "creationTimestamp": rfc3339(now),
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {"podCIDR": "", "podCIDRs": [], "providerID": f"k3s://{name}", **({"taints": taints} if taints else {})},
        "status": {
            "addresses": addresses,
            "capacity": {"cpu": str(os.cpu_count() or 1), "memory": _mem_text(), "pods": "110", "ephemeral-storage": "0"},
            "allocatable": {"cpu": str(os.cpu_count() or 1), "memory": _mem_text(), "pods": "110"},
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": node_info,
            "images": [],
        },
    }


def _mem_text() -> str:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return line.split()[1] + "Ki"
    except OSError:
        pass
    return "0Ki"


def merge_registration(existing: Json, fresh: Json) -> Json:
    """Re-registration keeps what admins changed (spec, extra labels) and refreshes the rest."""
    merged = copy.deepcopy(existing)
    labels = merged["metadata"].setdefault("labels", {})
    labels.update(fresh["metadata"].get("labels", {}))
    merged["metadata"].setdefault("annotations", {}).update(fresh["metadata"].get("annotations", {}))
    merged["status"] = fresh["status"]
    merged["metadata"]["resourceVersion"] = str(int(time.time() * 1000))
    return merged


def with_conditions(node: Json, renew_time: float | None, now: float | None = None,
                    not_ready: Json | None = None) -> Json:
    """Return the node as served: Ready condition derived from the lease age.

    ``not_ready`` (reason, message) is what a live kubelet reported as why it is not ready (kube stand-in: no CNI
    config): Ready False with that reason and the ``not-ready`` taint the node lifecycle controller adds."""
    now = time.time() if now is None else now
    view = copy.deepcopy(node)
    fresh = renew_time is not None and now - renew_time <= grace_seconds()
    heartbeat = rfc3339(renew_time) if renew_time else view["metadata"].get("creationTimestamp", rfc3339(now))
    if fresh:
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "kubelet is posting ready status"}
    else:
        ready = {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                 "message": "Kubelet stopped posting node status."}
    ready.update(lastHeartbeatTime=heartbeat, lastTransitionTime=heartbeat)
    others = [
        {"type": t, "status": "False" if fresh else "Unknown", "reason": r if fresh else "NodeStatusUnknown",
         "message": m if fresh else "Kubelet stopped posting node status.", "lastHeartbeatTime": heartbeat,
         "lastTransitionTime": heartbeat}
        for t, r, m in (
            ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        )
    ]
    if fresh and not_ready:
        ready.update(status="False", reason=str(not_ready.get("reason", "KubeletNotReady")),
                     message=str(not_ready.get("message", "")))
    view["status"]["conditions"] = [*others, ready]
    if fresh and not_ready:
        taints = [t for t in view["spec"].get("taints", []) if t.get("key") != "node.kubernetes.io/not-ready"]
        taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule", "timeAdded": heartbeat})
        view["spec"]["taints"] = taints
    if not fresh:
        taints = [t for t in view["spec"].get("taints", []) if t.get("key") != "node.kubernetes.io/unreachable"]
        taints.append({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": heartbeat})
        view["spec"]["taints"] = taints
    return view


def is_ready(node: Json) -> bool:
    for cond in node.get("status", {}).get("conditions", []):
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def roles_text(labels: dict[str, str]) -> str:
    roles = set()
    for key, value in labels.items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key.split("/", 1)[1]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) if roles else "<none>"


def status_text(node: Json) -> str:
    status = "Ready" if is_ready(node) else "NotReady"
    if node.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    return status


NODE_COLUMNS = [
    ("Name", "string", "name", 0), ("Status", "string", "", 0), ("Roles", "string", "", 0),
    ("Age", "string", "", 0), ("Version", "string", "", 0), ("Internal-IP", "string", "", 1),
    ("External-IP", "string", "", 1), ("OS-Image", "string", "", 1), ("Kernel-Version", "string", "", 1),
    ("Container-Runtime", "string", "", 1),
]
POD_COLUMNS = [
    ("Name", "string", "name", 0), ("Ready", "string", "", 0), ("Status", "string", "", 0),
    ("Restarts", "string", "", 0), ("Age", "string", "", 0), ("IP", "string", "", 1), ("Node", "string", "", 1),
    ("Nominated Node", "string", "", 1), ("Readiness Gates", "string", "", 1),
]
NAMESPACE_COLUMNS = [("Name", "string", "name", 0), ("Status", "string", "", 0), ("Age", "string", "", 0)]


def _address(node: Json, kind: str) -> str:
    for addr in node.get("status", {}).get("addresses", []):
        if addr.get("type") == kind:
            return str(addr.get("address"))
    return "<none>"


def node_cells(node: Json, now: float) -> list[Any]:
    info = node.get("status", {}).get("nodeInfo", {})
    created = parse_rfc3339(node["metadata"]["creationTimestamp"])
    return [
        node["metadata"]["name"], status_text(node), roles_text(node["metadata"].get("labels", {})),
        human_duration(now - created), info.get("kubeletVersion", ""), _address(node, "InternalIP"),
        _address(node, "ExternalIP"), info.get("osImage", "<unknown>"), info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


def namespace_cells(ns: Json, now: float) -> list[Any]:
    created = parse_rfc3339(ns["metadata"]["creationTimestamp"])
    return [ns["metadata"]["name"], ns.get("status", {}).get("phase", "Active"), human_duration(now - created)]


def table(columns: list[tuple[str, str, str, int]], objects: list[Json], cells: Any, resource_version: str,
          include_object: str = "PartialObjectMetadata") -> Json:
    """A meta.k8s.io/v1 Table, the form kubectl asks for to print columns."""
    now = time.time()
    rows = []
    for obj in objects:
        row: Json = {"cells": cells(obj, now)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {"name": n, "type": t, "format": f, "description": n, "priority": p} for n, t, f, p in columns
        ],
        "rows": rows,
    }


def status_object(code: int, reason: str, message: str, details: Json | None = None) -> Json:
    """A metav1.Status error/success body."""
    body: Json = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                  "status": "Success" if code < 300 else "Failure", "message": message, "reason": reason,
                  "code": code}
    if details:
        body["details"] = details
    return body


# ---- patches -------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge for the Node fields kubectl touches.

    Maps merge, ``null`` deletes, lists replace (Node's taints and the fields cordon/label
    change have no merge key), and directive keys (``$setElementOrder/...``,
    ``$retainKeys``, ``$deleteFromPrimitiveList/...``) are honoured or dropped.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list) and any(
            isinstance(v, dict) and v.get("$patch") == "delete" for v in value
        ):
            result[key] = _apply_list_deletes(result[key], value)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _apply_list_deletes(current: list[Any], patch_items: list[Any]) -> list[Any]:
    deletes = [p for p in patch_items if isinstance(p, dict) and p.get("$patch") == "delete"]
    kept = []
    for item in current:
        drop = any(isinstance(item, dict) and all(item.get(k) == v for k, v in d.items() if k != "$patch")
                   for d in deletes)
        if not drop:
            kept.append(item)
    kept.extend(p for p in patch_items if not (isinstance(p, dict) and p.get("$patch") == "delete"))
    return kept


class PatchError(Exception):
    """Invalid or failed JSON patch."""


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(target: Any, ops: list[Json]) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, test, copy, move)."""
    doc = copy.deepcopy(target)
    for op in ops:
        kind, parts = op.get("op"), _pointer(str(op.get("path", "")))
        if kind in ("add", "replace"):
            doc = _set(doc, parts, copy.deepcopy(op.get("value")), kind == "add")
        elif kind == "remove":
            doc = _remove(doc, parts)
        elif kind == "test":
            if _get(doc, parts) != op.get("value"):
                raise PatchError(f"test operation failed at {op.get('path')}")
        elif kind in ("copy", "move"):
            src = _pointer(str(op.get("from", "")))
            value = copy.deepcopy(_get(doc, src))
            if kind == "move":
                doc = _remove(doc, src)
            doc = _set(doc, parts, value, True)
        else:
            raise PatchError(f"unknown operation {kind!r}")
    return doc


def _get(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            raise PatchError(f"path not found: /{'/'.join(parts)}")
    return doc


def _set(doc: Any, parts: list[str], value: Any, add: bool) -> Any:
    if not parts:
        return value
    parent = _get(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if add:
            parent.insert(index, value)
        else:
            parent[index] = value
    elif isinstance(parent, dict):
        if not add and last not in parent:
            raise PatchError(f"path not found: /{'/'.join(parts)}")
        parent[last] = value
    else:
        raise PatchError("cannot set a value inside a scalar")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _get(doc, parts[:-1])
    last = parts[-1]
    try:
        if isinstance(parent, list):
            del parent[int(last)]
        else:
            del parent[last]
    except (KeyError, IndexError, ValueError) as exc:
        raise PatchError(f"path not found: /{'/'.join(parts)}") from exc
    return doc


def apply_patch(obj: Json, content_type: str, body: bytes) -> Json:
    """Apply a PATCH body of the given content type to an object."""
    kind = content_type.split(";")[0].strip()
    try:
        patch = json.loads(body or b"null")
    except ValueError as exc:
        raise PatchError(f"invalid JSON in patch: {exc}") from exc
    if kind == "application/json-patch+json":
        if not isinstance(patch, list):
            raise PatchError("json patch must be a list of operations")
        return dict(json_patch(obj, patch))
    if kind == "application/merge-patch+json":
        return dict(merge_patch(obj, patch))
    if kind == "application/strategic-merge-patch+json":
        return dict(strategic_merge_patch(obj, patch))
    raise PatchError(f"the body of the request was in an unknown format - accepted media types include: "
                     f"application/json-patch+json, application/merge-patch+json, "
                     f"application/strategic-merge-patch+json (got {kind})")


# ---- selectors -----------------------------------------------------------------------------


def _lookup_field(obj: Json, path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return "" if cur is None else str(cur)


def match_fields(obj: Json, selector: str) -> bool:
    """fieldSelector with ``=``, ``==`` and ``!=`` terms."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if _lookup_field(obj, key.strip()) == value.strip():
                return False
        else:
            key, _, value = term.replace("==", "=").partition("=")
            actual = _lookup_field(obj, key.strip())
            if key.strip() == "spec.unschedulable" and actual == "":
                actual = "false"
            if actual != value.strip():
                return False
    return True


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        terms.append(current.strip())
    return terms


def match_labels(labels: dict[str, str], selector: str) -> bool:
    """labelSelector: ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a,b)``."""
    for term in _split_terms(selector):
        if " notin " in term or " in " in term:
            negate = " notin " in term
            key, values = term.split(" notin " if negate else " in ", 1)
            options = {v.strip() for v in values.strip().strip("()").split(",")}
            present = key.strip() in labels and labels[key.strip()] in options
            if present == negate:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, _, value = term.replace("==", "=").partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
        elif term not in labels:
            return False
    return True
