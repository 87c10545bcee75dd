"""``kubelet``: config checks, static pods, TLS bootstrap, node registration and status, CNI install work.

Started by systemd (``kubelet.service`` + kubeadm's drop-in). Refuses like the real kubelet: no config file
(exit 1, ``failed to load kubelet config file``), swap on with ``failSwapOn`` (exit 1). Then:

* serves ``http://127.0.0.1:10248/healthz`` (kubeadm's kubelet-check) and listens on ``:10250``;
* runs the static pods of ``staticPodPath`` through ``pods`` (systemd transient units);
* credentials: ``--kubeconfig`` when it exists (an embedded client certificate is copied to
  ``/var/lib/kubelet/pki/kubelet-client-current.pem`` as the certificate manager does), else TLS bootstrap with
  ``--bootstrap-kubeconfig``: a CSR (``system:node:<name>``, ``system:nodes``, signer
  ``kubernetes.io/kube-apiserver-client-kubelet``) posted with the bootstrap token, the signed certificate written
  to ``kubelet-client-<time>.pem`` with the ``-current`` symlink, and ``--kubeconfig`` written pointing at it;
* registers the Node and posts its status every 10 s: Ready only while the CRI socket answers and a CNI config
  exists in ``/etc/cni/net.d``, else NotReady with the runtime's ``cni plugin not initialized`` message;
* does the install work of the CNI DaemonSets that select this node (flannel: ``10-flannel.conflist`` from the
  ``kube-flannel-cfg`` ConfigMap, refused with flannel's error when ``net-conf.json`` ``Network`` does not contain
  the node's ``podCIDR``; Calico and Cilium likewise from their pool CIDR), and reports which DaemonSets run ready
  here in the annotation ``kube-standin.lab/ready-daemonsets`` (read by the stand-in controller-manager);
* on a lab host, leaves what kube-proxy and the CNI would leave: chains, interfaces, a pod network namespace and
  volume mount (``hostnet``), so that reset is tested against real leftovers.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from . import cri, host, hostnet, klog, pki, pods, versions
from .client import Api, ApiError

Json = dict[str, Any]
READY_ANNOTATION = "kube-standin.lab/ready-daemonsets"
NOT_READY = ("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network "
             "plugin returns error: cni plugin not initialized")
STATUS_SECONDS = 10.0


def fail(err: str) -> int:
    klog.error("run.go", f'"command failed" err="{err}"')
    return 1


def parse_flags(argv: list[str]) -> dict[str, str]:
    flags: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-"):
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if not eq and name not in ("version",) and i < len(argv) and not argv[i].startswith("-"):
            value = argv[i]
            i += 1
        flags[name] = value if eq or value else "true"
    return flags


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200 if self.path.startswith("/healthz") else 404)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def _listen_10250() -> None:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", 10250))
    sock.listen(16)

    def loop() -> None:
        while True:
            conn, _ = sock.accept()
            conn.close()

    threading.Thread(target=loop, daemon=True).start()


class Kubelet:
    def __init__(self, flags: dict[str, str], config: Json) -> None:
        self.flags = flags
        self.config = config
        self.node_name = (flags.get("hostname-override") or host.hostname()).lower()
        self.cri = flags.get("container-runtime-endpoint") or config.get("containerRuntimeEndpoint") or \
            "unix:///run/containerd/containerd.sock"
        self.kubeconfig = host.path(flags.get("kubeconfig", "/etc/kubernetes/kubelet.conf"))
        self.bootstrap = host.path(flags["bootstrap-kubeconfig"]) if flags.get("bootstrap-kubeconfig") else None
        self.pki_dir = host.path("/var/lib/kubelet/pki")
        self.api: Api | None = None
        self.registered = False
        self.cni_error = ""

    # ---- credentials ----------------------------------------------------------------------------------------
    def credentials(self) -> Api | None:
        if self.kubeconfig.exists():
            kc = pki.read_kubeconfig(self.kubeconfig)
            current = self.pki_dir / "kubelet-client-current.pem"
            if kc.get("cert") and not current.exists():
                self._store_cert(kc["cert"], kc["key"])
            return Api(kc["server"], kc["ca"] or None, kc.get("cert", b""), kc.get("key", b""), timeout=10)
        if self.bootstrap is None or not self.bootstrap.exists():
            return None
        return self._tls_bootstrap()

    def _store_cert(self, cert: bytes, key: bytes) -> Path:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
        target = self.pki_dir / f"kubelet-client-{stamp}.pem"
        host.write(target, cert + key, 0o600)
        current = self.pki_dir / "kubelet-client-current.pem"
        tmp = current.with_name(current.name + ".tmp")
        tmp.unlink(missing_ok=True)
        # absolute like the kubelet's; relative under a test's fake root, where the absolute one would dangle
        tmp.symlink_to(target.name if os.environ.get(host.ROOT_ENV) else str(target))
        os.replace(tmp, current)
        return current

    def _tls_bootstrap(self) -> Api | None:
        assert self.bootstrap is not None
        kc = pki.read_kubeconfig(self.bootstrap)
        api = Api(kc["server"], kc["ca"] or None, token=kc.get("token", ""), timeout=10)
        key = pki.new_key()
        csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{self.node_name}")])).sign(key, hashes.SHA256()))
        from cryptography.hazmat.primitives import serialization

        request = base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()
        obj = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
               "metadata": {"generateName": "csr-"},
               "spec": {"request": request, "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                        "usages": ["digital signature", "client auth"]}}
        try:
            created = api.request("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", obj)
        except (ApiError, OSError) as exc:
            klog.error("bootstrap.go", f'"Unhandled Error" err="failed to run Kubelet: unable to load bootstrap '
                       f'kubeconfig: {exc}"')
            return None
        name = created["metadata"]["name"]
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            try:
                current = api.get(f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}")
            except (ApiError, OSError):
                current = {}
            status = current.get("status") or {}
            if any(c.get("type") == "Denied" for c in status.get("conditions") or []):
                klog.error("bootstrap.go", f'"certificate signing request was denied" csr="{name}"')
                return None
            if status.get("certificate"):
                cert = base64.b64decode(status["certificate"])
                self._store_cert(cert, pki.key_pem(key))
                host.write(self.kubeconfig, pki.kubeconfig(
                    kc["server"], kc["ca"], "default-auth",
                    cert_file="/var/lib/kubelet/pki/kubelet-client-current.pem"), 0o600)
                klog.info("bootstrap.go", '"Waiting for client certificate to be issued"')
                return self.credentials()
            time.sleep(1)
        return None

    # ---- node -------------------------------------------------------------------------------------------------
    def _address(self) -> str:
        if self.flags.get("node-ip"):
            return self.flags["node-ip"].split(",")[0]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.connect(("192.0.2.1", 9))
            return str(sock.getsockname()[0])
        except OSError:
            return "127.0.0.1"
        finally:
            sock.close()

    def _ready(self) -> tuple[bool, str]:
        reason = cri.probe(self.cri)
        if reason:
            return False, f"container runtime is down: {reason}"
        net = host.path("/etc/cni/net.d")
        if not net.is_dir() or not any(p.suffix in (".conf", ".conflist", ".json") for p in net.iterdir()):
            return False, NOT_READY
        return True, "kubelet is posting ready status"

    def _status(self) -> Json:
        ready, message = self._ready()
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        cond = {"type": "Ready", "status": "True" if ready else "False",
                "reason": "KubeletReady" if ready else "KubeletNotReady", "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": now}
        os_image = "Debian GNU/Linux"
        try:
            for line in host.path("/etc/os-release").read_text().splitlines():
                if line.startswith("PRETTY_NAME="):
                    os_image = line.split("=", 1)[1].strip('"')
        except OSError:
            pass
        runtime = "containerd://1.6.20"
        return {"conditions": [cond],
                "addresses": [{"type": "InternalIP", "address": self._address()},
                              {"type": "Hostname", "address": self.node_name}],
                "nodeInfo": {"kubeletVersion": versions.version(), "kubeProxyVersion": versions.version(),
                             "osImage": os_image, "kernelVersion": os.uname().release, "operatingSystem": "linux",
                             "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, "arm"),
                             "containerRuntimeVersion": runtime},
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "capacity": {"cpu": str(host.cpu_count()), "memory": f"{host.meminfo_mb() * 1024}Ki", "pods": "110"},
                "allocatable": {"cpu": str(host.cpu_count()), "memory": f"{host.meminfo_mb() * 1024}Ki",
                                "pods": "110"}}

    def register(self, api: Api) -> None:
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, "arm")
        labels = {"beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
                  "kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux"}
        for item in filter(None, self.flags.get("node-labels", "").split(",")):
            key, _, value = item.partition("=")
            labels[key] = value
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node_name, "labels": labels, "annotations": {
            "kubeadm.alpha.kubernetes.io/cri-socket": self.cri, "node.alpha.kubernetes.io/ttl": "0",
            "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": {}, "status": self._status()}
        try:
            api.request("POST", "/api/v1/nodes", node)
            klog.info("kubelet_node_status.go", f'"Successfully registered node" node="{self.node_name}"')
        except ApiError as exc:
            if exc.code != 409:
                raise
        self.registered = True

    def heartbeat(self, api: Api) -> None:
        api.request("PATCH", f"/api/v1/nodes/{self.node_name}/status", {"status": self._status()},
                    "application/strategic-merge-patch+json")

    # ---- CNI DaemonSets ------------------------------------------------------------------------------------------
    def cni_work(self, api: Api) -> None:
        node = api.get(f"/api/v1/nodes/{self.node_name}")
        pod_cidr = (node.get("spec") or {}).get("podCIDR", "")
        ready_ds = []
        network_ready = self._ready()[0]
        for ds in api.get("/apis/apps/v1/daemonsets").get("items", []):
            if not schedulable(ds, node):
                continue
            ns, name = ds["metadata"]["namespace"], ds["metadata"]["name"]
            ok = True
            kind = cni_kind(ds)
            if kind:
                problem = self._install_cni(api, kind, ds, pod_cidr)
                if problem != self.cni_error and problem:
                    klog.error("main.go", f"{kind}: {problem}")
                self.cni_error = problem
                ok = not problem
                if ok:
                    hostnet.cni(kind, pod_cidr)
            elif not (ds["spec"]["template"].get("spec") or {}).get("hostNetwork"):
                ok = network_ready
            elif name == "kube-proxy":
                hostnet.kube_proxy(self.node_name)
            if ok:
                ready_ds.append(f"{ns}/{name}")
        value = ",".join(sorted(ready_ds))
        if (node["metadata"].get("annotations") or {}).get(READY_ANNOTATION, "") != value:
            api.request("PATCH", f"/api/v1/nodes/{self.node_name}", {"metadata": {"annotations": {
                READY_ANNOTATION: value or None}}}, "application/merge-patch+json")

    def _install_cni(self, api: Api, kind: str, ds: Json, pod_cidr: str) -> str:
        ns = ds["metadata"]["namespace"]
        if kind == "flannel":
            cm = api.get_or_none(f"/api/v1/namespaces/{ns}/configmaps/kube-flannel-cfg")
            if cm is None:
                return 'configmap "kube-flannel-cfg" not found'
            conf = cm["data"].get("cni-conf.json", "")
            network = json.loads(cm["data"].get("net-conf.json", "{}")).get("Network", "")
            if not pod_cidr:
                return (f'Error registering network: failed to acquire lease: node "{self.node_name}" pod cidr not '
                        "assigned")
            if not _contains(network, pod_cidr):
                return (f'Error registering network: failed to acquire lease: subnet "{network}" specified in the '
                        f'flannel net config doesn\'t contain "{pod_cidr}" PodCIDR of the "{self.node_name}" node')
            host.write(host.path("/run/flannel/subnet.env"),
                       f"FLANNEL_NETWORK={network}\nFLANNEL_SUBNET={_gateway(pod_cidr)}\nFLANNEL_MTU=1450\n"
                       "FLANNEL_IPMASQ=true\n")
            self._write_conflist("10-flannel.conflist", conf)
            return ""
        env = {e.get("name"): e.get("value") for c in ds["spec"]["template"]["spec"].get("containers", [])
               for e in c.get("env") or []}
        if kind == "calico":
            pool = env.get("CALICO_IPV4POOL_CIDR") or "192.168.0.0/16"
            if pod_cidr and not _contains(pool, pod_cidr):
                return (f"IP pool {pool} does not contain the node's podCIDR {pod_cidr} (calico-ipam with "
                        "host-local podCIDRs)")
            self._write_conflist("10-calico.conflist", json.dumps({"name": "k8s-pod-network", "cniVersion": "0.3.1",
                                                                     "plugins": [{"type": "calico"},
                                                                                 {"type": "portmap"}]}, indent=2))
            return ""
        cm = api.get_or_none(f"/api/v1/namespaces/{ns}/configmaps/cilium-config")
        pool = (cm or {}).get("data", {}).get("cluster-pool-ipv4-cidr", "10.0.0.0/8")
        ipam = (cm or {}).get("data", {}).get("ipam", "cluster-pool")
        if ipam == "kubernetes" and pod_cidr and not _contains(pool, pod_cidr):
            return f"podCIDR {pod_cidr} of node {self.node_name} is outside cluster-pool-ipv4-cidr {pool}"
        self._write_conflist("05-cilium.conflist", json.dumps({"name": "cilium", "cniVersion": "0.3.1",
                                                                "plugins": [{"type": "cilium-cni"}]}, indent=2))
        return ""

    @staticmethod
    def _write_conflist(name: str, text: str) -> None:
        target = host.path(f"/etc/cni/net.d/{name}")
        if not target.exists() or target.read_text() != text:
            host.write(target, text)


def _contains(network: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).subnet_of(ipaddress.ip_network(network, strict=False))  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False


def _gateway(cidr: str) -> str:
    net = ipaddress.ip_network(cidr, strict=False)
    return f"{net[1]}/{net.prefixlen}"


def cni_kind(ds: Json) -> str:
    name = ds["metadata"]["name"]
    images = " ".join(c.get("image", "") for c in (ds["spec"]["template"].get("spec") or {}).get("containers", []))
    if "flannel" in name or "flannel" in images:
        return "flannel"
    if name == "calico-node" or "calico/node" in images:
        return "calico"
    if name == "cilium" or "cilium/cilium" in images:
        return "cilium"
    return ""


def schedulable(ds: Json, node: Json) -> bool:
    """Would the DaemonSet controller place a pod on the node: nodeSelector and NoSchedule/NoExecute taints
    (not-ready, unreachable and unschedulable are tolerated for DaemonSet pods)."""
    spec = ds["spec"]["template"].get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    tolerations = spec.get("tolerations") or []
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("key") in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable",
                                "node.kubernetes.io/unschedulable") or taint.get("effect") == "PreferNoSchedule":
            continue
        if not any(_tolerates(t, taint) for t in tolerations):
            return False
    return True


def _tolerates(toleration: Json, taint: Json) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.get("key")
    return bool(toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get("value", ""))


def load_config(path: str) -> Json | str:
    p = host.path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        return (f"failed to load kubelet config file, path: {path}, error: failed to load Kubelet config file {path}, "
                f'error failed to read kubelet config file \\"{path}\\", error: open {path}: {reason}')
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        return f"failed to load kubelet config file, path: {path}, error: {exc}"
    if doc.get("kind") != "KubeletConfiguration":
        return (f"failed to load kubelet config file, path: {path}, error: failed to load Kubelet config file {path}, "
                f"error failed to decode: Object 'Kind' is missing in '{text.strip()}'")
    return dict(doc)


def run(argv: list[str]) -> int:
    flags = parse_flags(argv)
    if "version" in flags:
        print(f"Kubernetes {versions.version()}")
        return 0
    config = load_config(flags.get("config", "/var/lib/kubelet/config.yaml")) if flags.get("config") else {
        "kind": "KubeletConfiguration"}
    if isinstance(config, str):
        return fail(config)
    swaps = host.swaps()
    fail_swap = config.get("failSwapOn", True) and flags.get("fail-swap-on", "true") != "false"
    if len(swaps) > 1 and fail_swap:
        return fail("failed to run Kubelet: running with swap on is not supported, please disable swap! or set "
                    f"--fail-swap-on flag to false. /proc/swaps contained: [{' '.join(swaps)}]")
    kubelet = Kubelet(flags, config)
    try:
        health = ThreadingHTTPServer((str(config.get("healthzBindAddress", "127.0.0.1")),
                                      int(config.get("healthzPort", 10248))), _Health)
        _listen_10250()
    except OSError as exc:
        return fail(f"failed to run Kubelet: listen tcp: {exc}")
    threading.Thread(target=health.serve_forever, daemon=True).start()
    klog.info("server.go", f'"Kubelet version" kubeletVersion="{versions.version()}"')
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    manifest_dir = host.path(str(config.get("staticPodPath") or "/etc/kubernetes/manifests"))
    warned = ""
    seen: tuple[tuple[str, int, int], ...] | None = None
    next_status = 0.0
    while not stop.is_set():
        # Static pods: a changed manifest folder is synced within a second (the real kubelet watches it with
        # inotify); otherwise on every status round, which also restarts a unit that died.
        now_seen = pods.manifest_signature(manifest_dir)
        if now_seen != seen or time.monotonic() >= next_status:
            pods.sync(manifest_dir, kubelet.node_name)
            seen = now_seen
        if time.monotonic() < next_status:
            stop.wait(1.0)
            continue
        try:
            if kubelet.api is None:
                kubelet.api = kubelet.credentials()
            if kubelet.api is not None:
                if not kubelet.registered:
                    kubelet.register(kubelet.api)
                kubelet.heartbeat(kubelet.api)
                kubelet.cni_work(kubelet.api)
                ready, message = kubelet._ready()
                if not ready and message != warned:
                    klog.error("kubelet.go", f'"Container runtime network not ready" networkReady="{message}"')
                warned = "" if ready else message
        except (ApiError, OSError, ValueError, KeyError) as exc:
            klog.error("kubelet_node_status.go", f'"Unable to register node with API server" err="{exc}" '
                       f'node="{kubelet.node_name}"')
        next_status = time.monotonic() + (2.0 if not kubelet.registered else STATUS_SECONDS / 2)
        stop.wait(1.0)
    sys.stdout.flush()
    return 0
