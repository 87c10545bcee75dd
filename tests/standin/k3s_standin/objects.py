"""API objects beyond nodes: CustomResourceDefinitions, the custom resources they define, client-created namespaces.

Enough of the apiserver for ``kubectl apply`` of a CRD and of its objects (create, merge patch) and for ``kubectl
get`` of them (discovery, get, list with label selectors, Table with the CRD's printer columns). Objects live in
the same datastore as nodes, under the keys the real apiserver uses:
``/registry/apiextensions.k8s.io/customresourcedefinitions/<name>`` and
``/registry/<group>/<plural>/[<namespace>/]<name>``; listings are sorted by key.

Not modelled: schema validation, pruning and defaulting (objects are stored as sent), conversion between versions,
PUT, DELETE, watches, the ``/status`` endpoint, admission, finalizers, and every controller that would act on the
objects (a system-upgrade-controller Plan upgrades nothing here).
"""

from __future__ import annotations

import copy
import json
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

from . import nodes
from .cluster import Cluster
from .resources import Mapping

Json = dict[str, Any]

CRD_GROUP = "apiextensions.k8s.io"
_CRD_VERBS = ["create", "get", "list", "patch"]
_NOT_FOUND = "the server could not find the requested resource"


@dataclass(frozen=True)
class Resource(Mapping):
    """One served resource type: a CRD's version, or the CustomResourceDefinition type itself. The fields kubectl
    sees in discovery are its Mapping's; the server also keeps the printer columns and whether /status exists."""

    columns: tuple[Json, ...] = ()  # additionalPrinterColumns
    status_subresource: bool = False

    @property
    def qualified(self) -> str:
        """``plans.upgrade.cattle.io``: how the apiserver names the type in messages."""
        return f"{self.plural}.{self.group}"

    def prefix(self, namespace: str | None) -> str:
        base = f"/registry/{self.group}/{self.plural}/"
        return base + f"{namespace}/" if self.namespaced and namespace else base

    def key(self, namespace: str | None, name: str) -> str:
        return self.prefix(namespace) + name

    def discovery(self) -> Json:
        entry: Json = {"name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
                       "kind": self.kind, "verbs": _CRD_VERBS}
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        return entry


CRD_RESOURCE = Resource(CRD_GROUP, "v1", "customresourcedefinitions", "customresourcedefinition",
                        "CustomResourceDefinition", False, ("crd", "crds"))
_CRD_COLUMNS = ({"name": "Created At", "type": "date", "jsonPath": ".metadata.creationTimestamp"},)


@dataclass(frozen=True)
class Answer:
    """An HTTP status code and the JSON body to send."""

    code: int
    body: Json


def _error(code: int, reason: str, message: str, details: Json | None = None) -> Answer:
    return Answer(code, nodes.status_object(code, reason, message, details))


# ---- the types CRDs define ------------------------------------------------------------------------


def stored_crds(cluster: Cluster) -> list[Json]:
    return [json.loads(v) for _, v in sorted(cluster.store.list(CRD_RESOURCE.prefix(None)).items())]


def custom_resources(cluster: Cluster) -> list[Resource]:
    """Every served version of every stored CRD."""
    found = []
    for crd in stored_crds(cluster):
        spec, names = crd.get("spec", {}), crd.get("spec", {}).get("names", {})
        for version in spec.get("versions", []):
            if not version.get("served"):
                continue
            found.append(Resource(
                group=spec["group"], version=version["name"], plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(), kind=names["kind"],
                namespaced=spec.get("scope") == "Namespaced", short_names=tuple(names.get("shortNames", [])),
                columns=tuple(version.get("additionalPrinterColumns", [])),
                status_subresource="status" in (version.get("subresources") or {}),
            ))
    return found


def _preferred(versions: list[Json]) -> Json:
    return next((v for v in versions if v.get("storage")), versions[0])


def api_groups(cluster: Cluster) -> Json:
    """``/apis``: policy (fixed), apiextensions.k8s.io and one group per CRD group."""
    groups = [{"name": "policy", "versions": [{"groupVersion": "policy/v1", "version": "v1"}],
               "preferredVersion": {"groupVersion": "policy/v1", "version": "v1"}},
              {"name": CRD_GROUP, "versions": [{"groupVersion": f"{CRD_GROUP}/v1", "version": "v1"}],
               "preferredVersion": {"groupVersion": f"{CRD_GROUP}/v1", "version": "v1"}}]
    by_group: dict[str, list[Json]] = {}
    for crd in stored_crds(cluster):
        served = [v for v in crd.get("spec", {}).get("versions", []) if v.get("served")]
        if served:
            by_group.setdefault(crd["spec"]["group"], []).extend(served)
    for group in sorted(by_group):
        versions = list({v["name"]: v for v in by_group[group]}.values())
        preferred = _preferred(versions)["name"]
        groups.append({"name": group,
                       "versions": [{"groupVersion": f"{group}/{v['name']}", "version": v["name"]} for v in versions],
                       "preferredVersion": {"groupVersion": f"{group}/{preferred}", "version": preferred}})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource_list(group: str, version: str, resources: list[Resource]) -> Json:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}",
            "resources": [r.discovery() for r in resources]}


# ---- request routing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    content_type: str
    wants_table: bool


class _FailedError(Exception):
    """An error answer, raised from deep inside a request and sent by serve()."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.body.get("message", ""))
        self.answer = answer


def _fail(code: int, reason: str, message: str, details: Json | None = None) -> _FailedError:
    return _FailedError(_error(code, reason, message, details))


_METHOD_NOT_ALLOWED = (405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def serve(cluster: Cluster, request: Request) -> Answer | None:
    """Answer the request if it is about these objects; None lets the caller answer 404."""
    try:
        return _route(cluster, request, [urllib.parse.unquote(p) for p in request.path.strip("/").split("/")])
    except _FailedError as failure:
        return failure.answer


def _route(cluster: Cluster, request: Request, parts: list[str]) -> Answer | None:
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
        return _namespace(cluster, request, parts[3] if len(parts) == 4 else None)
    if len(parts) < 3 or parts[0] != "apis":
        return None
    served = [CRD_RESOURCE] if parts[1:3] == [CRD_GROUP, "v1"] else [
        r for r in custom_resources(cluster) if (r.group, r.version) == (parts[1], parts[2])]
    if len(parts) == 3:
        return Answer(200, _resource_list(parts[1], parts[2], served)) if served else None
    namespace, rest = (parts[4], parts[5:]) if parts[3] == "namespaces" and len(parts) >= 6 else (None, parts[3:])
    resource = next((r for r in served if r.plural == rest[0]), None)
    if resource is None or len(rest) > 2 or (namespace is not None and not resource.namespaced):
        return None
    return _objects(cluster, request, resource, namespace, rest[1] if len(rest) == 2 else None)


def _objects(cluster: Cluster, request: Request, resource: Resource, namespace: str | None,
             name: str | None) -> Answer | None:
    if name is None and request.method == "GET":
        return _list(cluster, request, resource, namespace)
    if resource.namespaced and namespace is None:
        return None  # objects of a namespaced type are written and read inside their namespace
    if name is None:
        if request.method != "POST":
            raise _fail(*_METHOD_NOT_ALLOWED)
        return _create(cluster, request, resource, namespace)
    if request.method == "PATCH":
        return _patch(cluster, request, resource, namespace, name)
    if request.method != "GET":
        raise _fail(*_METHOD_NOT_ALLOWED)
    obj = _read(cluster, resource, namespace, name)
    if obj is None:
        raise _not_found(resource, name)
    return Answer(200, _table(resource, [obj]) if request.wants_table else obj)


def _not_found(resource: Resource, name: str) -> _FailedError:
    return _fail(404, "NotFound", f'{resource.qualified} "{name}" not found',
                 {"name": name, "group": resource.group, "kind": resource.plural})


def _read(cluster: Cluster, resource: Resource, namespace: str | None, name: str) -> Json | None:
    raw = cluster.store.get(resource.key(namespace, name))
    return None if raw is None else dict(json.loads(raw))


def _list(cluster: Cluster, request: Request, resource: Resource, namespace: str | None) -> Answer:
    items = [json.loads(v) for _, v in sorted(cluster.store.list(resource.prefix(namespace)).items())]
    selector = request.query.get("labelSelector")
    if selector:
        items = [o for o in items if nodes.match_labels(o["metadata"].get("labels") or {}, selector)]
    if request.wants_table:
        return Answer(200, _table(resource, items))
    return Answer(200, {"apiVersion": f"{resource.group}/{resource.version}", "kind": f"{resource.kind}List",
                        "metadata": {"resourceVersion": str(int(time.time() * 1000))}, "items": items})


def _table(resource: Resource, objects: list[Json]) -> Json:
    """Name, then the CRD's printer columns (Age when it has none), as the apiserver's table convertor does."""
    columns = list(_CRD_COLUMNS if resource is CRD_RESOURCE else resource.columns) or [
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    ages = resource is not CRD_RESOURCE  # custom resources show dates as ages; CRDs show the timestamp
    definitions = [("Name", "string", "name", 0)] + [
        (c["name"], c.get("type", "string"), c.get("format", ""), int(c.get("priority", 0))) for c in columns]

    def cells(obj: Json, now: float) -> list[Any]:
        row: list[Any] = [obj["metadata"]["name"]]
        for column in columns:
            value = _json_path(obj, str(column.get("jsonPath", "")))
            if ages and column.get("type") == "date" and isinstance(value, str):
                value = nodes.human_duration(now - nodes.parse_rfc3339(value))
            row.append("<none>" if value is None else value)
        return row

    return nodes.table(definitions, objects, cells, str(int(time.time() * 1000)))


def _json_path(obj: Any, path: str) -> Any:
    """The simple ``.a.b`` paths printer columns use; None when absent."""
    for part in filter(None, path.split(".")):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


# ---- writes -------------------------------------------------------------------------------------------


def _metadata(obj: Json, key: str, namespace: str | None, resource: Resource) -> None:
    now = time.time()
    meta = obj.setdefault("metadata", {})
    meta.pop("resourceVersion", None)
    meta.update(uid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{key}@{now:.3f}")), creationTimestamp=nodes.rfc3339(now),
                resourceVersion=str(int(now * 1000)), generation=1)
    if resource.namespaced:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    obj["apiVersion"], obj["kind"] = f"{resource.group}/{resource.version}", resource.kind


def _decode(body: bytes) -> Json:
    try:
        obj = json.loads(body or b"null")
    except ValueError as exc:
        raise _fail(400, "BadRequest", f"the object provided is unrecognized: {exc}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
        raise _fail(400, "BadRequest", "the object provided is unrecognized")
    return obj


def _namespace_missing(namespace: str) -> _FailedError:
    return _fail(404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"})


def _create(cluster: Cluster, request: Request, resource: Resource, namespace: str | None) -> Answer:
    obj = _decode(request.body)
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    if not name:
        raise _invalid(resource, "", ["metadata.name: Required value: name or generateName is required"])
    if resource.namespaced and meta.get("namespace") not in (None, namespace):
        raise _fail(400, "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request")
    if resource.namespaced and not any(n["metadata"]["name"] == namespace for n in cluster.list_namespaces()):
        raise _namespace_missing(str(namespace))
    if resource is CRD_RESOURCE and (causes := crd_problems(obj)):
        raise _invalid(resource, name, causes)
    key = resource.key(namespace, name)
    with cluster._lock:
        if cluster.store.get(key) is not None:
            raise _fail(409, "AlreadyExists", f'{resource.qualified} "{name}" already exists',
                        {"name": name, "group": resource.group, "kind": resource.plural})
        if resource.status_subresource:
            obj.pop("status", None)
        _metadata(obj, key, namespace, resource)
        if resource is CRD_RESOURCE:
            obj["status"] = crd_status(obj)
        cluster.store.put(key, json.dumps(obj).encode())
    return Answer(201, obj)


def _patch(cluster: Cluster, request: Request, resource: Resource, namespace: str | None, name: str) -> Answer:
    key = resource.key(namespace, name)
    with cluster._lock:
        stored = _read(cluster, resource, namespace, name)
        if stored is None:
            raise _not_found(resource, name)
        updated = _patched(stored, request)
        if resource is CRD_RESOURCE and (causes := crd_problems(updated)):
            raise _invalid(resource, name, causes)
        _keep_identity(stored, updated, resource)
        if updated != stored:
            updated["metadata"]["resourceVersion"] = str(int(time.time() * 1000))
            cluster.store.put(key, json.dumps(updated).encode())
    return Answer(200, updated)


def _patched(stored: Json, request: Request) -> Json:
    try:
        return nodes.apply_patch(stored, request.content_type, request.body)
    except nodes.PatchError as exc:
        unknown = "unknown format" in str(exc)
        raise _fail(415 if unknown else 422, "UnsupportedMediaType" if unknown else "Invalid", str(exc)) from exc


def _keep_identity(stored: Json, updated: Json, resource: Resource) -> None:
    """What a patch cannot change: identity, creation time; status when it has its own endpoint; generation moves
    when anything outside metadata and status changed."""
    for field in ("name", "namespace", "uid", "creationTimestamp", "resourceVersion", "generation"):
        if field in stored["metadata"]:
            updated["metadata"][field] = stored["metadata"][field]
        else:
            updated["metadata"].pop(field, None)
    updated["apiVersion"], updated["kind"] = stored["apiVersion"], stored["kind"]
    if resource.status_subresource or resource is CRD_RESOURCE:
        updated.pop("status", None)
        if "status" in stored:
            updated["status"] = stored["status"]
    if resource is CRD_RESOURCE:
        updated["status"] = crd_status(updated)

    def body(obj: Json) -> Json:
        return {k: v for k, v in obj.items() if k not in ("metadata", "status")}

    if body(updated) != body(stored):
        updated["metadata"]["generation"] = int(stored["metadata"].get("generation", 1)) + 1


def _invalid(resource: Resource, name: str, causes: list[str]) -> _FailedError:
    joined = causes[0] if len(causes) == 1 else "[" + ", ".join(causes) + "]"
    return _fail(422, "Invalid", f'{resource.kind}.{resource.group} "{name}" is invalid: {joined}',
                 {"name": name, "group": resource.group, "kind": resource.kind,
                  "causes": [{"message": c} for c in causes]})


def crd_problems(crd: Json) -> list[str]:
    """A subset of the apiserver's CRD validation, in its wording."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural = str(spec.get("group") or ""), str(names.get("plural") or "")
    causes = []
    name = (crd.get("metadata") or {}).get("name", "")
    if name != f"{plural}.{group}":
        causes.append(f'metadata.name: Invalid value: "{name}": must be spec.names.plural+"."+spec.group')
    if not group:
        causes.append("spec.group: Required value")
    elif "." not in group:
        causes.append(f'spec.group: Invalid value: "{group}": should be a domain with at least one dot')
    for field in ("plural", "kind"):
        if not names.get(field):
            causes.append(f"spec.names.{field}: Required value")
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(f'spec.scope: Unsupported value: "{spec.get("scope") or ""}": supported values: '
                      '"Cluster", "Namespaced"')
    versions = spec.get("versions") or []
    if not versions:
        causes.append("spec.versions: Invalid value: null: must have exactly one version marked as storage version")
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append("spec.versions: Invalid value: must have exactly one version marked as storage version")
    return causes


def crd_status(crd: Json) -> Json:
    """Accepted and established at once (there is no naming conflict to wait for here)."""
    spec = crd["spec"]
    when = crd["metadata"].get("creationTimestamp", nodes.rfc3339(time.time()))
    conditions = [{"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": when}
                  for t, r, m in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                                  ("Established", "InitialNamesAccepted", "the initial names have been accepted"))]
    storage = [v["name"] for v in spec["versions"] if v.get("storage")]
    return {"conditions": conditions, "acceptedNames": copy.deepcopy(spec["names"]), "storedVersions": storage}


# ---- namespaces created by clients -----------------------------------------------------------------------


def _namespace(cluster: Cluster, request: Request, name: str | None) -> Answer | None:
    """POST /api/v1/namespaces and PATCH /api/v1/namespaces/<name>; reads stay with the API handler."""
    if name is None and request.method == "POST":
        obj = _decode(request.body)
        new = str(obj.get("metadata", {}).get("name") or "")
        if not new:
            raise _fail(422, "Invalid", 'Namespace "" is invalid: metadata.name: Required value: name or '
                        "generateName is required")
        now = time.time()
        obj["metadata"].update(uid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"namespace/{new}@{now:.3f}")),
                               creationTimestamp=nodes.rfc3339(now), resourceVersion=str(int(now * 1000)))
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = new
        obj.update(apiVersion="v1", kind="Namespace", spec={"finalizers": ["kubernetes"]}, status={"phase": "Active"})
        if not cluster.store.create(nodes.NAMESPACE_PREFIX + new, json.dumps(obj).encode()):
            raise _fail(409, "AlreadyExists", f'namespaces "{new}" already exists', {"name": new, "kind": "namespaces"})
        return Answer(201, obj)
    if name is None or request.method != "PATCH":
        return None
    with cluster._lock:
        raw = cluster.store.get(nodes.NAMESPACE_PREFIX + name)
        if raw is None:
            raise _namespace_missing(name)
        stored = json.loads(raw)
        updated = _patched(stored, request)
        for field in ("name", "uid", "creationTimestamp"):
            updated["metadata"][field] = stored["metadata"][field]
        updated["status"] = stored.get("status", {"phase": "Active"})
        if updated != stored:
            updated["metadata"]["resourceVersion"] = str(int(time.time() * 1000))
            cluster.store.put(nodes.NAMESPACE_PREFIX + name, json.dumps(updated).encode())
    return Answer(200, updated)
