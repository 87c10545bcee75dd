"""``k3s kubectl`` / ``kubectl`` symlink: the subset of kubectl that node tooling uses.

Talks to the API like kubectl does (client certificate from the kubeconfig, Table
responses for ``get``), so it also works against any server reachable through the
kubeconfig. Supported: get (nodes, pods, namespaces, and through discovery CRDs and custom
resources; -o wide|json|yaml|name|jsonpath), apply -f FILE|- (namespaces, CRDs, custom
resources; client-side, with the last-applied annotation), cordon, uncordon, drain, label,
taint, delete node, wait --for=condition=..., version, get --raw, cluster-info. Anything
else exits 1 with a clear message.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import _buildinfo, resources
from .jsonpath import JsonPathError, render

Json = dict[str, Any]
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
RESOURCE_ALIASES = {"nodes": "nodes", "node": "nodes", "no": "nodes", "pods": "pods", "pod": "pods", "po": "pods",
                    "namespaces": "namespaces", "namespace": "namespaces", "ns": "namespaces"}
_BOOL_FLAGS = {"-A", "--all-namespaces", "--ignore-daemonsets", "--delete-emptydir-data", "--delete-local-data",
               "--force", "--overwrite", "--no-headers", "--show-labels", "--all", "--client", "--wait",
               "--insecure-skip-tls-verify", "--disable-eviction", "--dry-run", "-w", "--watch", "--ignore-not-found"}
# The kube stand-in's kubectl sets this: its apiserver serves built-in types (ConfigMap, DaemonSet, ...) to apply.
APPLY_BUILTINS = False
_SHORT_WITH_VALUE = {"-o": "--output", "-n": "--namespace", "-l": "--selector", "-s": "--server", "-f": "--filename"}


class KubectlError(Exception):
    """Error line for stderr (already in kubectl's wording)."""


@dataclass
class Args:
    positional: list[str] = field(default_factory=list)
    flags: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return self.flags.get(name, default)

    def has(self, name: str) -> bool:
        return name in self.flags


def parse_args(argv: list[str]) -> Args:
    args = Args()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            args.positional.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            args.positional.append(arg)
            continue
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if eq:
                args.flags[name] = value
            elif name in _BOOL_FLAGS:
                args.flags[name] = "true"
            elif i < len(argv):
                args.flags[name] = argv[i]
                i += 1
            else:
                args.flags[name] = ""
            continue
        short, rest = arg[:2], arg[2:]
        if short in _SHORT_WITH_VALUE:
            if rest.startswith("="):
                rest = rest[1:]
            if not rest and i < len(argv):
                rest = argv[i]
                i += 1
            args.flags[_SHORT_WITH_VALUE[short]] = rest
        elif arg in ("-A",):
            args.flags["--all-namespaces"] = "true"
        elif arg in ("-w",):
            args.flags["--watch"] = "true"
        elif arg.startswith("-v"):
            continue
        else:
            args.flags[arg] = "true"
    return args


class Client:
    """Minimal REST client built from a kubeconfig."""

    def __init__(self, kubeconfig: Path, server_override: str = "", timeout: float = 30.0,
                 insecure: bool = False) -> None:
        try:
            config = yaml.safe_load(kubeconfig.read_text()) or {}
        except OSError as exc:
            raise KubectlError(f"error: stat {kubeconfig}: {exc.strerror.lower() if exc.strerror else exc}") from exc
        current = config.get("current-context", "")
        context: Json = next((c["context"] for c in config.get("contexts", []) if c.get("name") == current), {})
        cluster = next((c["cluster"] for c in config.get("clusters", []) if c.get("name") == context.get("cluster")),
                       None)
        user: Json = next((u["user"] for u in config.get("users", []) if u.get("name") == context.get("user")), {})
        if cluster is None:
            raise KubectlError("error: the server doesn't have a resource type \"\" (no cluster in kubeconfig)")
        self.server = (server_override or cluster.get("server", "")).rstrip("/")
        self.timeout = timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="k3s-kubectl-")
        os.chmod(self._tmp.name, 0o700)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if insecure or cluster.get("insecure-skip-tls-verify"):
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif cluster.get("certificate-authority-data"):
            ctx.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        elif cluster.get("certificate-authority"):
            ctx.load_verify_locations(cafile=cluster["certificate-authority"])
        else:
            ctx.load_default_certs()
        cert = self._material(user, "client-certificate")
        key = self._material(user, "client-key")
        if cert and key:
            ctx.load_cert_chain(cert, key)
        self.token = user.get("token", "")
        self.basic = (user.get("username", ""), user.get("password", ""))
        self.context = ctx

    def _material(self, user: Json, name: str) -> str:
        if user.get(f"{name}-data"):
            path = Path(self._tmp.name) / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(base64.b64decode(user[f"{name}-data"]))
            return str(path)
        return str(user.get(name, ""))

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                accept: str = "application/json") -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Accept": accept, "Content-Type": content_type,
                                              "User-Agent": f"kubectl/{_buildinfo.VERSION} (linux) k3s"})
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        elif self.basic[0]:
            req.add_header("Authorization", "Basic " + base64.b64encode(":".join(self.basic).encode()).decode())
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise KubectlError(_server_error(exc)) from exc
        except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
            raise KubectlError(_transport_error(self.server + path, exc)) from exc
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode(errors="replace")

    def get(self, path: str) -> Any:
        return self.request("GET", path)


def _server_error(exc: urllib.error.HTTPError) -> str:
    try:
        status = json.loads(exc.read())
        reason = status.get("reason") or exc.reason
        message = status.get("message") or exc.reason
    except (ValueError, AttributeError):
        reason, message = exc.reason, exc.reason
    if exc.code == 401:
        return "error: You must be logged in to the server (Unauthorized)"
    return f"Error from server ({reason}): {message}"


def _transport_error(url: str, exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    host = urllib.parse.urlsplit(url).netloc
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f'Unable to connect to the server: tls: failed to verify certificate: {reason.verify_message}'
    if isinstance(reason, ConnectionRefusedError):
        return f"The connection to the server {host} was refused - did you specify the right host or port?"
    return f"Unable to connect to the server: {reason}"


def kubeconfig_path(args: Args) -> Path:
    if args.get("--kubeconfig"):
        return Path(args.get("--kubeconfig"))
    env = os.environ.get("KUBECONFIG", "")
    for item in filter(None, env.split(":")):
        if Path(item).exists():
            return Path(item)
    if env:
        return Path(env.split(":")[0])
    default = Path("/etc/rancher/k3s/k3s.yaml")
    if default.exists() or not (Path.home() / ".kube" / "config").exists():
        return default
    return Path.home() / ".kube" / "config"


def _timeout_seconds(text: str, default: float) -> float:
    if not text or text == "0":
        return default
    units = {"s": 1, "m": 60, "h": 3600}
    total, number = 0.0, ""
    for ch in text:
        if ch.isdigit() or ch == ".":
            number += ch
        elif ch in units:
            total += float(number or 0) * units[ch]
            number = ""
    if number:
        total += float(number)
    return total or default


# ---- output ----------------------------------------------------------------------------------


def format_table(headers: list[str], rows: list[list[str]], no_headers: bool = False) -> str:
    """Columns as kubectl's tabwriter lays them out (min width 6, padding 3)."""
    lines = rows if no_headers else [headers, *rows]
    if not lines:
        return ""
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(headers))]
    out = []
    for line in lines:
        cells = []
        for i, cell in enumerate(line):
            text = str(cell)
            cells.append(text if i == len(line) - 1 else text.ljust(max(widths[i] + 3, 6)))
        out.append("".join(cells).rstrip())
    return "\n".join(out) + "\n"


def _table_output(table: Json, wide: bool, no_headers: bool, show_labels: bool, namespace_col: bool) -> str:
    columns = [c for c in table.get("columnDefinitions", []) if wide or c.get("priority", 0) == 0]
    indexes = [table["columnDefinitions"].index(c) for c in columns]
    headers = [c["name"].upper() for c in columns]
    rows = []
    for row in table.get("rows", []):
        cells = [str(row["cells"][i]) for i in indexes]
        meta = row.get("object", {}).get("metadata", {})
        if namespace_col:
            cells.insert(0, meta.get("namespace", ""))
        if show_labels:
            labels = meta.get("labels", {})
            cells.append(",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>")
        rows.append(cells)
    if namespace_col:
        headers.insert(0, "NAMESPACE")
    if show_labels:
        headers.append("LABELS")
    return format_table(headers, rows, no_headers)


def _emit_objects(objects: list[Json], output: str, kind_list: str, single: bool) -> str:
    if output.startswith("jsonpath=") or output.startswith("jsonpath:"):
        template = output.split("=", 1)[1] if "=" in output else output.split(":", 1)[1]
        target: Any = objects[0] if single else {"apiVersion": "v1", "kind": "List", "items": objects}
        try:
            return render(template, target)
        except JsonPathError as exc:
            raise KubectlError(f"error: error executing jsonpath {template!r}: {exc}") from exc
    if output == "name":
        return "".join(f"{_reference(o)}\n" for o in objects)
    doc: Any = objects[0] if single else {"apiVersion": "v1", "items": objects, "kind": "List",
                                           "metadata": {"resourceVersion": ""}}
    if output == "json":
        return json.dumps(doc, indent=4) + "\n"
    if output == "yaml":
        return str(yaml.safe_dump(doc, default_flow_style=False, sort_keys=True))
    raise KubectlError(f"error: unable to match a printer suitable for the output format \"{output}\"")


def _reference(obj: Json) -> str:
    """``node/x``, ``plan.upgrade.cattle.io/x``: kind, group when there is one, name."""
    api_version = str(obj.get("apiVersion", "v1"))
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    return f"{str(obj.get('kind', 'Node')).lower()}{'.' + group if group else ''}/{obj['metadata']['name']}"


# ---- commands --------------------------------------------------------------------------------


def _resource_path(resource: str, namespace: str, all_ns: bool) -> str:
    if resource == "pods":
        return "/api/v1/pods" if all_ns else f"/api/v1/namespaces/{namespace}/pods"
    return f"/api/v1/{resource}"


def cmd_get(client: Client, args: Args) -> str:
    if args.has("--raw"):
        result = client.request("GET", args.get("--raw"), accept="*/*")
        return (result if isinstance(result, str) else json.dumps(result)) + ("" if isinstance(result, str) else "\n")
    if not args.positional:
        raise KubectlError("error: you must specify the type of resource to get.")
    target = args.positional[0]
    names = args.positional[1:]
    if "/" in target:
        target, name = target.split("/", 1)
        names = [name, *names]
    resource = RESOURCE_ALIASES.get(target)
    if resource is None:
        return _get_discovered(client, args, _discovered(client, target), names)
    namespace = args.get("--namespace", "default")
    all_ns = args.has("--all-namespaces")
    base = _resource_path(resource, namespace, all_ns)
    query = {}
    if args.get("--selector"):
        query["labelSelector"] = args.get("--selector")
    if args.get("--field-selector"):
        query["fieldSelector"] = args.get("--field-selector")
    qs = ("?" + urllib.parse.urlencode(query)) if query else ""
    output = args.get("--output")
    if output in ("", "wide"):
        if names:
            tables = [client.request("GET", f"{base}/{n}", accept=TABLE_ACCEPT) for n in names]
            table = {**tables[0], "rows": [r for t in tables for r in t.get("rows", [])]}
        else:
            table = client.request("GET", base + qs, accept=TABLE_ACCEPT)
        if not table.get("rows"):
            where = "" if resource != "pods" or all_ns else f" in {namespace} namespace"
            sys.stderr.write(f"No resources found{where}.\n")
            return ""
        return _table_output(table, output == "wide", args.has("--no-headers"), args.has("--show-labels"),
                             resource == "pods" and all_ns)
    if names:
        objects = [client.request("GET", f"{base}/{n}") for n in names]
        return _emit_objects(objects, output, resource, single=len(names) == 1)
    listing = client.request("GET", base + qs)
    items = listing.get("items", [])
    for item in items:
        item.setdefault("apiVersion", "v1")
        item.setdefault("kind", {"nodes": "Node", "pods": "Pod", "namespaces": "Namespace"}[resource])
    return _emit_objects(items, output, resource, single=False)


def _discovered(client: Client, target: str) -> resources.Mapping:
    mapping = resources.by_name(resources.discover(client.get), target)
    if mapping is None:
        raise KubectlError(f'error: the server doesn\'t have a resource type "{target}"')
    return mapping


def _get_discovered(client: Client, args: Args, mapping: resources.Mapping, names: list[str]) -> str:
    """get for types found through discovery (CRDs, custom resources): the server's Table, or the objects."""
    namespace = args.get("--namespace", "default")
    all_ns = mapping.namespaced and args.has("--all-namespaces") and not names
    scope = None if all_ns else namespace
    qs = ("?" + urllib.parse.urlencode({"labelSelector": args.get("--selector")})) if args.get("--selector") else ""
    output = args.get("--output")
    if output in ("", "wide"):
        tables = [client.request("GET", mapping.path(scope, n), accept=TABLE_ACCEPT) for n in names] or [
            client.request("GET", mapping.path(scope) + qs, accept=TABLE_ACCEPT)]
        table = {**tables[0], "rows": [r for t in tables for r in t.get("rows", [])]}
        if not table.get("rows"):
            where = f" in {namespace} namespace" if mapping.namespaced and not all_ns else ""
            sys.stderr.write(f"No resources found{where}.\n")
            return ""
        return _table_output(table, output == "wide", args.has("--no-headers"), args.has("--show-labels"), all_ns)
    if names:
        objects = [client.request("GET", mapping.path(scope, n)) for n in names]
        return _emit_objects(objects, output, mapping.plural, single=len(names) == 1)
    return _emit_objects(client.request("GET", mapping.path(scope) + qs).get("items", []), output, mapping.plural,
                         single=False)


def _patch_node(client: Client, name: str, patch: Any, kind: str = "application/strategic-merge-patch+json") -> Json:
    result = client.request("PATCH", f"/api/v1/nodes/{name}", patch, content_type=kind)
    return dict(result)


def _node_names(args: Args, client: Client) -> list[str]:
    names = [p.split("/", 1)[1] if p.startswith(("node/", "nodes/")) else p for p in args.positional]
    if args.get("--selector"):
        listing = client.request("GET", "/api/v1/nodes?" + urllib.parse.urlencode({"labelSelector": args.get("--selector")}))
        names.extend(n["metadata"]["name"] for n in listing.get("items", []))
    if not names:
        raise KubectlError("error: resource(s) were provided, but no name was specified")
    return names


def cmd_cordon(client: Client, args: Args, unschedulable: bool) -> str:
    out = ""
    for name in _node_names(args, client):
        node = client.request("GET", f"/api/v1/nodes/{name}")
        if bool(node.get("spec", {}).get("unschedulable")) == unschedulable:
            out += f"node/{name} already {'cordoned' if unschedulable else 'uncordoned'}\n"
            continue
        _patch_node(client, name, {"spec": {"unschedulable": True if unschedulable else None}})
        out += f"node/{name} {'cordoned' if unschedulable else 'uncordoned'}\n"
    return out


def _go_duration(seconds: float) -> str:
    """A whole-second duration as Go prints it (2m0s, 10s, 1h0m0s)."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _evictable(client: Client, name: str, ignore_daemonsets: bool) -> list[Json]:
    """The pods drain must evict from node `name`: not mirror pods; DaemonSet pods only refused or ignored."""
    listed = client.request("GET", "/api/v1/pods?" + urllib.parse.urlencode({"fieldSelector": f"spec.nodeName={name}"}))
    pods = [p for p in listed.get("items", [])
            if "kubernetes.io/config.mirror" not in (p["metadata"].get("annotations") or {})]
    daemons = [p for p in pods if any(o.get("kind") == "DaemonSet" for o in p["metadata"].get("ownerReferences") or [])]
    names = ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in daemons)
    if daemons and not ignore_daemonsets:
        why = f"cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {names}"
        raise KubectlError(f'error: unable to drain node "{name}" due to error: {why}, continuing command...\n'
                           f"There are pending nodes to be drained:\n {name}\n{why}")
    if daemons:
        sys.stderr.write(f"Warning: ignoring DaemonSet-managed Pods: {names}\n")
    return [p for p in pods if p not in daemons]


def cmd_drain(client: Client, args: Args) -> str:
    """Cordon, then evict each pod through the eviction subresource (kubectl's default), retrying every 5 s while a
    PodDisruptionBudget refuses (429), until --timeout (none by default). Pods are deleted at once by the stand-in
    API (nothing runs them), so there is no wait for termination."""
    sys.stdout.write(cmd_cordon(client, args, True))
    sys.stdout.flush()
    out = ""
    timeout = _timeout_seconds(args.get("--timeout"), 0.0)
    for name in _node_names(args, client):
        deadline = time.time() + timeout if timeout else float("inf")
        pending = _evictable(client, name, args.has("--ignore-daemonsets"))
        while pending:
            for pod in list(pending):
                ns, pod_name = pod["metadata"]["namespace"], pod["metadata"]["name"]
                sys.stdout.write(f"evicting pod {ns}/{pod_name}\n")
                sys.stdout.flush()
                try:
                    client.request("POST", f"/api/v1/namespaces/{ns}/pods/{pod_name}/eviction",
                                   {"apiVersion": "policy/v1", "kind": "Eviction",
                                    "metadata": {"name": pod_name, "namespace": ns}})
                except KubectlError as exc:
                    if "(NotFound)" in str(exc):
                        pending.remove(pod)
                        continue
                    if "(TooManyRequests)" not in str(exc):
                        raise
                    said = str(exc).split("): ", 1)[-1]
                    sys.stderr.write(f'error when evicting pods/"{pod_name}" -n "{ns}" (will retry after 5s): {said}\n')
                    continue
                pending.remove(pod)
                sys.stdout.write(f"pod/{pod_name} evicted\n")
            if not pending:
                break
            if time.time() + 5 > deadline:
                time.sleep(max(deadline - time.time(), 0))
                first = pending[0]["metadata"]
                why = (f'error when evicting pods/"{first["name"]}" -n "{first["namespace"]}": global timeout reached: '
                       f"{_go_duration(timeout)}")
                sys.stdout.flush()
                sys.stderr.write(f'There are pending pods in node "{name}" when an error occurred: {why}\n')
                raise KubectlError(f'error: unable to drain node "{name}" due to error: {why}, continuing command...\n'
                                   f"There are pending nodes to be drained:\n {name}\n{why}")
            time.sleep(5)
        out += f"node/{name} drained\n"
    return out


def cmd_label(client: Client, args: Args) -> str:
    if len(args.positional) < 2:
        raise KubectlError("error: one or more resources must be specified as <resource> <name> or <resource>/<name>")
    target = args.positional[0]
    rest = args.positional[1:]
    if "/" in target:
        resource, name = target.split("/", 1)
    else:
        resource, name, rest = target, rest[0], rest[1:]
    if RESOURCE_ALIASES.get(resource) != "nodes":
        raise KubectlError(f"error: the stand-in kubectl labels nodes only, not {resource!r}")
    node = client.request("GET", f"/api/v1/nodes/{name}")
    labels = node["metadata"].get("labels", {})
    patch: dict[str, Any] = {}
    for item in rest:
        if item.endswith("-") and "=" not in item:
            patch[item[:-1]] = None
            continue
        key, _, value = item.partition("=")
        if key in labels and labels[key] != value and not args.has("--overwrite"):
            raise KubectlError(f"error: '{key}' already has a value ({labels[key]}), and --overwrite is false")
        patch[key] = value
    if not patch:
        raise KubectlError("error: at least one label update is required")
    _patch_node(client, name, {"metadata": {"labels": patch}}, "application/merge-patch+json")
    return f"node/{name} {'unlabeled' if all(v is None for v in patch.values()) else 'labeled'}\n"


def cmd_taint(client: Client, args: Args) -> str:
    if len(args.positional) < 2:
        raise KubectlError("error: at least one taint update is required")
    target, rest = args.positional[0], args.positional[1:]
    if "/" in target:
        name = target.split("/", 1)[1]
    else:
        name, rest = rest[0], rest[1:]
    node = client.request("GET", f"/api/v1/nodes/{name}")
    taints = [t for t in node.get("spec", {}).get("taints", []) or [] if t.get("key") != "node.kubernetes.io/unreachable"]
    removed = False
    existing = list(taints)
    for item in rest:
        if item.endswith("-"):
            spec = item[:-1]
            key, _, effect = spec.partition(":")
            key = key.split("=", 1)[0]
            kept = [t for t in taints if not (t["key"] == key and (not effect or t["effect"] == effect))]
            if len(kept) == len(taints):  # kubectl refuses to remove a taint the node does not have
                raise KubectlError(f'error: taint "{spec}" not found')
            taints = kept
            removed = True
            continue
        spec, _, effect = item.rpartition(":")
        key, _, value = spec.partition("=")
        if not args.has("--overwrite") and any(t["key"] == key and t["effect"] == effect for t in existing):
            raise KubectlError(
                f"error: Node {name} already has [{key}={value}:{effect}] taint(s) with same effect(s) "
                "and --overwrite is false"
            )
        taints = [t for t in taints if not (t["key"] == key and t["effect"] == effect)]
        taint = {"key": key, "effect": effect}
        if value:
            taint["value"] = value
        taints.append(taint)
    _patch_node(client, name, {"spec": {"taints": taints}})
    return f"node/{name} {'untainted' if removed else 'tainted'}\n"


def cmd_delete(client: Client, args: Args) -> str:
    if not args.positional:
        raise KubectlError("error: You must provide one or more resources by argument or filename.")
    target, names = args.positional[0], args.positional[1:]
    if "/" in target:
        target, name = target.split("/", 1)
        names = [name, *names]
    if RESOURCE_ALIASES.get(target) != "nodes":
        raise KubectlError(f"error: the stand-in kubectl deletes nodes only, not {target!r}")
    out = ""
    for name in names:
        try:
            client.request("DELETE", f"/api/v1/nodes/{name}", {"propagationPolicy": "Background"})
            out += f'node "{name}" deleted\n'
        except KubectlError as exc:
            if "(NotFound)" in str(exc) and args.get("--ignore-not-found", "false") == "true":
                continue
            raise
    return out


def cmd_wait(client: Client, args: Args) -> str:
    condition = args.get("--for")
    if not condition.startswith("condition="):
        raise KubectlError("error: the stand-in kubectl supports --for=condition=NAME[=VALUE] only")
    cond_name, _, cond_value = condition[len("condition="):].partition("=")
    cond_value = cond_value or "True"
    deadline = time.time() + _timeout_seconds(args.get("--timeout"), 30)
    targets: list[str] = []
    for item in args.positional:
        resource, _, name = item.partition("/")
        if RESOURCE_ALIASES.get(resource) != "nodes":
            raise KubectlError(f"error: the stand-in kubectl waits for nodes only, not {resource!r}")
        if name:
            targets.append(name)
    if args.has("--all") or args.get("--selector") or not targets:
        query = {"labelSelector": args.get("--selector")} if args.get("--selector") else {}
        listing = client.request("GET", "/api/v1/nodes" + ("?" + urllib.parse.urlencode(query) if query else ""))
        targets.extend(n["metadata"]["name"] for n in listing.get("items", []))
    if not targets:
        raise KubectlError("error: no matching resources found")
    done: list[str] = []
    while True:
        for name in targets:
            if name in done:
                continue
            try:
                node = client.request("GET", f"/api/v1/nodes/{name}")
            except KubectlError:
                if time.time() > deadline:
                    raise
                continue
            for cond in node.get("status", {}).get("conditions", []):
                if cond.get("type", "").lower() == cond_name.lower() and cond.get("status", "").lower() == cond_value.lower():
                    done.append(name)
        if len(done) == len(targets):
            return "".join(f"node/{n} condition met\n" for n in targets)
        if time.time() > deadline:
            missing = next(n for n in targets if n not in done)
            raise KubectlError(f"error: timed out waiting for the condition on nodes/{missing}")
        time.sleep(1)


def _read_manifests(source: str) -> tuple[str, list[Any]]:
    label = "STDIN" if source == "-" else source
    if source == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(source).read_text()
        except OSError as exc:
            raise KubectlError(f'error: the path "{source}" does not exist') from exc
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise KubectlError(f'error: error parsing {label}: {exc}') from exc
    objects: list[Any] = []
    for doc in documents:
        objects.extend(doc.get("items", []) if isinstance(doc, dict) and doc.get("kind") == "List" else [doc])
    return label, objects


def _server_error_when(exc: KubectlError, what: str) -> KubectlError:
    """kubectl puts what it was doing after the server's reason: ``Error from server (R): error when X: msg``."""
    text = str(exc)
    head, sep, message = text.partition("): ")
    if text.startswith("Error from server (") and sep:
        return KubectlError(f"{head}): {what}: {message}")
    return exc


def _apply_one(client: Client, mapping: resources.Mapping, namespace: str | None, obj: Json, label: str) -> str:
    name = obj["metadata"]["name"]
    desired = copy.deepcopy(obj)
    meta = desired["metadata"]
    annotations = meta.get("annotations") or {}
    annotations.pop(resources.LAST_APPLIED, None)
    if mapping.namespaced:
        meta["namespace"] = namespace
    applied = json.dumps(desired, sort_keys=True, separators=(",", ":")) + "\n"
    meta["annotations"] = {**annotations, resources.LAST_APPLIED: applied}
    try:
        current = client.request("GET", mapping.path(namespace, name))
    except KubectlError as exc:
        if "(NotFound)" not in str(exc):
            raise _server_error_when(exc, f'error when retrieving current configuration of "{label}"') from exc
        current = None
    if current is None:
        try:
            client.request("POST", mapping.path(namespace), desired)
        except KubectlError as exc:
            raise _server_error_when(exc, f'error when creating "{label}"') from exc
        return f"{mapping.reference(name)} created\n"
    last = (current.get("metadata", {}).get("annotations") or {}).get(resources.LAST_APPLIED)
    try:
        original = json.loads(last) if last else None
    except ValueError:
        original = None
    patch = resources.three_way_patch(original, desired, current)
    if not patch:
        return f"{mapping.reference(name)} unchanged\n"
    try:
        client.request("PATCH", mapping.path(namespace, name), patch, content_type="application/merge-patch+json")
    except KubectlError as exc:
        raise _server_error_when(exc, f'error when patching "{label}"') from exc
    return f"{mapping.reference(name)} configured\n"


def _map_for_apply(mappings: list[resources.Mapping], obj: Any, label: str,
                   explicit: str) -> tuple[resources.Mapping, str | None, Json]:
    """The type and namespace an object of a manifest goes to, found before anything is applied (as kubectl does:
    a CRD and its objects in one file fail the first time, the objects' type is not known yet)."""
    missing = [f for f in ("kind", "apiVersion") if not isinstance(obj, dict) or not obj.get(f)]
    if missing:
        raise KubectlError(f"error: unable to decode \"{label}\": Object '{missing[0]}' is missing in "
                           f"'{json.dumps(obj, sort_keys=True)}'")
    meta = obj.get("metadata") or {}
    name, obj_ns = str(meta.get("name") or ""), meta.get("namespace")
    mapping = resources.by_kind(mappings, obj["apiVersion"], obj["kind"])
    if mapping is None:
        raise KubectlError(f'error: resource mapping not found for name: "{name}" namespace: "{obj_ns or ""}" from '
                           f'"{label}": no matches for kind "{obj["kind"]}" in version "{obj["apiVersion"]}"\n'
                           "ensure CRDs are installed first")
    if mapping.group in ("", "policy") and mapping.plural != "namespaces" and not APPLY_BUILTINS:
        raise KubectlError("error: the stand-in kubectl applies namespaces, CustomResourceDefinitions and custom "
                           f"resources only, not {obj['kind']}")
    if not name:
        raise KubectlError(f'error: error when retrieving current configuration of "{label}": '
                           "resource name may not be empty")
    if mapping.namespaced and explicit and obj_ns and obj_ns != explicit:
        raise KubectlError(f'error: the namespace from the provided object "{obj_ns}" does not match the namespace '
                           f'"{explicit}". You must pass \'--namespace={obj_ns}\' to perform this operation.')
    return mapping, (obj_ns or explicit or "default") if mapping.namespaced else None, obj


def cmd_apply(client: Client, args: Args) -> str:
    """Client-side apply of namespaces, CRDs and custom resources: create, or merge-patch what changed."""
    for flag in ("--dry-run", "--server-side", "--prune", "--kustomize", "-k", "--force"):
        if args.has(flag):
            raise KubectlError(f"error: the stand-in kubectl does not model apply {flag}")
    if not args.get("--filename"):
        raise KubectlError("error: must specify one of -f and -k")
    label, objects = _read_manifests(args.get("--filename"))
    mappings = resources.discover(client.get)
    planned: list[tuple[resources.Mapping, str | None, Json]] = []
    errors: list[str] = []
    for obj in objects:
        try:
            planned.append(_map_for_apply(mappings, obj, label, args.get("--namespace")))
        except KubectlError as exc:
            errors.append(str(exc))
    out = ""
    for mapping, namespace, obj in planned:
        try:
            out += _apply_one(client, mapping, namespace, obj, label)
        except KubectlError as exc:
            errors.append(str(exc))
    if errors:
        sys.stdout.write(out)
        raise KubectlError("\n".join(errors))
    return out


def cmd_version(client: Client | None, args: Args) -> str:
    client_version = {"gitVersion": _buildinfo.VERSION, "goVersion": _buildinfo.GO_VERSION,
                      "platform": f"linux/{_buildinfo.ARCH or 'amd64'}"}
    server = client.request("GET", "/version") if client else None
    if args.get("--output") == "json":
        doc: Json = {"clientVersion": client_version}
        if server:
            doc["serverVersion"] = server
        return json.dumps(doc, indent=2) + "\n"
    out = f"Client Version: {_buildinfo.VERSION}\nKustomize Version: v5.0.4-0.20230601165947-6ce0bf390ce3\n"
    if server:
        out += f"Server Version: {server.get('gitVersion')}\n"
    return out


def run(argv: list[str]) -> int:
    """Entry point for ``kubectl`` / ``k3s kubectl``."""
    args = parse_args(argv)
    if not args.positional:
        sys.stdout.write("kubectl controls the Kubernetes cluster manager (k3s stand-in subset).\n")
        return 0
    verb = args.positional.pop(0)
    try:
        if verb == "version" and args.has("--client"):
            sys.stdout.write(cmd_version(None, args))
            return 0
        client = Client(kubeconfig_path(args), args.get("--server"),
                        _timeout_seconds(args.get("--request-timeout"), 30.0), args.has("--insecure-skip-tls-verify"))
        handlers = {
            "get": lambda: cmd_get(client, args),
            "apply": lambda: cmd_apply(client, args),
            "cordon": lambda: cmd_cordon(client, args, True),
            "uncordon": lambda: cmd_cordon(client, args, False),
            "drain": lambda: cmd_drain(client, args),
            "label": lambda: cmd_label(client, args),
            "taint": lambda: cmd_taint(client, args),
            "delete": lambda: cmd_delete(client, args),
            "wait": lambda: cmd_wait(client, args),
            "version": lambda: cmd_version(client, args),
            "cluster-info": lambda: f"Kubernetes control plane is running at {client.server}\n",
        }
        if verb not in handlers:
            raise KubectlError(f'error: unknown command "{verb}" for "kubectl" (not modelled by the k3s stand-in)')
        sys.stdout.write(handlers[verb]())
        return 0
    except KubectlError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"{exc}\n")
        return 1
