"""``kube-controller-manager`` and ``kube-scheduler`` as the kubelet runs them from their static pod manifests.

The controller-manager stand-in polls the API (``--kubeconfig``) every 2 s and does what the cluster needs from
the real controllers: node IPAM (``--allocate-node-cidrs`` + ``--cluster-cidr``: the next free /24 per node, as
``--node-cidr-mask-size`` defaults), CSR approval and signing for kubelet client certificates (``--cluster-signing-
cert-file``/``-key-file``; requests from bootstrap tokens or from the node itself), the bootstrap signer (the
``jws-kubeconfig-<id>`` entries of ``kube-public/cluster-info`` for every signing token), the token cleaner and the
garbage collector for Secrets owned by a deleted Secret (``kubeadm-certs``), DaemonSet/Deployment status (from
the nodes' ``kube-standin.lab/ready-daemonsets`` annotation and node readiness), and the disruption controller
(each PodDisruptionBudget's status from the pods it selects, every pod counted healthy). Both listen on their secure port
(10257 / 10259) on ``--bind-address`` so the ports are in use, as kubeadm's preflight sees them.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import signal
import socket
import threading
import time
import uuid
from typing import Any

from cryptography import x509

from . import apiserver, builtin, host, kubelet, pki
from .client import Api, ApiError

Json = dict[str, Any]


def _listen(address: str, port: int) -> None:
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(8)

    def loop() -> None:
        while True:
            conn, _ = sock.accept()
            conn.close()

    threading.Thread(target=loop, daemon=True).start()


def _wait_forever() -> int:
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    return 0


def scheduler(argv: list[str]) -> int:
    flags = apiserver.parse_flags(argv)
    _listen(flags.get("bind-address", "0.0.0.0"), int(flags.get("secure-port", "10259")))  # noqa: S104
    return _wait_forever()


def _decoded(secret: Json) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def _expired(data: dict[str, str]) -> bool:
    exp = data.get("expiration")
    return bool(exp) and datetime.datetime.strptime(exp, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.UTC).timestamp() < time.time()


LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager"
LEASE_SECONDS = 15


def _micro(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_micro(text: str) -> float:
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.UTC).timestamp()
        except ValueError:
            continue
    return 0.0


class Controllers:
    def __init__(self, flags: dict[str, str]) -> None:
        self.flags = flags
        self.api = Api.from_kubeconfig(host.path(flags["kubeconfig"]))
        self.identity = f"{host.hostname()}_{uuid.uuid4()}"
        self.leading = False
        self.signer: pki.Pair | None = None
        cert, key = flags.get("cluster-signing-cert-file"), flags.get("cluster-signing-key-file")
        if cert and key:
            self.signer = pki.Pair(host.path(cert).read_bytes(), host.path(key).read_bytes())

    def leader(self) -> bool:
        """Leader election on the Lease ``kube-system/kube-controller-manager`` (``--leader-elect``, on by kubeadm's
        manifest): only the holder runs the controllers, so several control planes do not race each other."""
        if self.flags.get("leader-elect", "true") == "false":
            return True
        now = time.time()
        lease = self.api.get_or_none(LEASE)
        spec = {"holderIdentity": self.identity, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": _micro(now)}
        if lease is None:
            if not self.leading:
                print('I "attempting to acquire leader lease..." lease="kube-system/kube-controller-manager"',
                      flush=True)
            obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": "kube-controller-manager", "namespace": "kube-system"},
                   "spec": {**spec, "acquireTime": _micro(now), "leaseTransitions": 0}}
            try:
                self.api.request("POST", LEASE.rsplit("/", 1)[0], obj)
            except ApiError as exc:
                if exc.code == 409:
                    return False
                raise
            return self._won(True)
        current = lease.get("spec") or {}
        if current.get("holderIdentity") == self.identity:
            lease["spec"] = {**current, **spec}
            self.api.request("PUT", LEASE, lease)
            return self._won(True)
        renewed = _parse_micro(str(current.get("renewTime") or ""))
        if renewed + float(current.get("leaseDurationSeconds") or LEASE_SECONDS) > now:
            return self._won(False)
        lease["spec"] = {**spec, "acquireTime": _micro(now),
                         "leaseTransitions": int(current.get("leaseTransitions") or 0) + 1}
        self.api.request("PUT", LEASE, lease)
        return self._won(True)

    def _won(self, leading: bool) -> bool:
        if leading and not self.leading:
            print('I "successfully acquired lease" lease="kube-system/kube-controller-manager"', flush=True)
        self.leading = leading
        return leading

    def loop(self) -> None:
        try:
            if not self.leader():
                return
        except (ApiError, OSError, ValueError, KeyError) as exc:
            print(f'E "error retrieving resource lock kube-system/kube-controller-manager" err="{exc}"', flush=True)
            self.leading = False
            return
        for step in (self.ipam, self.csrs, self.tokens, self.workloads, self.disruption):
            try:
                step()
            except (ApiError, OSError, ValueError, KeyError) as exc:
                print(f"E controller {step.__name__}: {exc}", flush=True)

    def ipam(self) -> None:
        if self.flags.get("allocate-node-cidrs") != "true" or not self.flags.get("cluster-cidr"):
            return
        network = ipaddress.ip_network(self.flags["cluster-cidr"].split(",")[0], strict=False)
        mask = int(self.flags.get("node-cidr-mask-size", "24" if network.version == 4 else "64"))
        nodes = self.api.get("/api/v1/nodes")["items"]
        used = {n["spec"].get("podCIDR") for n in nodes if n.get("spec", {}).get("podCIDR")}
        for node in nodes:
            if node.get("spec", {}).get("podCIDR"):
                continue
            free = next((str(s) for s in network.subnets(new_prefix=mask) if str(s) not in used), None)
            if free is None:
                print(f'E "Error allocating a node CIDR" err="CIDR allocation failed; there are no remaining CIDRs left '
                      f'to allocate in the accepted range" node="{node["metadata"]["name"]}"', flush=True)
                return
            used.add(free)
            self.api.request("PATCH", f"/api/v1/nodes/{node['metadata']['name']}",
                             {"spec": {"podCIDR": free, "podCIDRs": [free]}}, "application/strategic-merge-patch+json")

    def csrs(self) -> None:
        if self.signer is None:
            return
        base = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
        for csr in self.api.get(base)["items"]:
            spec, status = csr.get("spec") or {}, csr.get("status") or {}
            if status.get("certificate") or spec.get("signerName") != "kubernetes.io/kube-apiserver-client-kubelet":
                continue
            name = csr["metadata"]["name"]
            request = x509.load_pem_x509_csr(base64.b64decode(spec["request"]))
            cn = request.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
            orgs = [a.value for a in request.subject.get_attributes_for_oid(x509.oid.NameOID.ORGANIZATION_NAME)]
            cn_text = str(cn[0].value) if cn else ""
            groups = spec.get("groups") or []
            from_bootstrap = "system:bootstrappers" in groups
            self_renewal = spec.get("username") == cn_text
            if not cn_text.startswith("system:node:") or orgs != ["system:nodes"] or not (from_bootstrap or
                                                                                         self_renewal):
                continue
            if not any(c.get("type") == "Approved" for c in status.get("conditions") or []):
                now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                csr.setdefault("status", {})["conditions"] = [{
                    "type": "Approved", "status": "True", "reason": "AutoApproved",
                    "message": "Auto approving kubelet client certificate after SubjectAccessReview.",
                    "lastUpdateTime": now, "lastTransitionTime": now}]
                csr = self.api.request("PUT", f"{base}/{name}/approval", csr)
            signed = pki.issue(self.signer, cn_text, organizations=("system:nodes",), client=True,
                               public_key=request.public_key())
            csr.setdefault("status", {})["certificate"] = base64.b64encode(signed.cert).decode()
            self.api.request("PUT", f"{base}/{name}/status", csr)

    def tokens(self) -> None:
        secrets = self.api.get("/api/v1/namespaces/kube-system/secrets")["items"]
        live: dict[str, str] = {}
        uids = set()
        for secret in secrets:
            if secret.get("type") != "bootstrap.kubernetes.io/token":
                uids.add(secret["metadata"]["uid"])
                continue
            data = _decoded(secret)
            if _expired(data):
                self.api.request("DELETE", f"/api/v1/namespaces/kube-system/secrets/{secret['metadata']['name']}")
                continue
            uids.add(secret["metadata"]["uid"])
            if data.get("usage-bootstrap-signing") == "true":
                live[data["token-id"]] = data["token-secret"]
        for secret in secrets:  # garbage collector: owner gone → dependent goes
            owners = secret["metadata"].get("ownerReferences") or []
            if owners and all(o.get("kind") == "Secret" and o.get("uid") not in uids for o in owners):
                self.api.request("DELETE", f"/api/v1/namespaces/kube-system/secrets/{secret['metadata']['name']}")
        info = self.api.get_or_none("/api/v1/namespaces/kube-public/configmaps/cluster-info")
        if info is None:
            return
        data = dict(info.get("data") or {})
        content = data.get("kubeconfig", "")
        wanted = {f"jws-kubeconfig-{tid}": pki.jws_detached(content, tid, sec) for tid, sec in live.items()}
        current = {k: v for k, v in data.items() if k.startswith("jws-kubeconfig-")}
        if current != wanted:
            info["data"] = {"kubeconfig": content, **wanted}
            self.api.request("PUT", "/api/v1/namespaces/kube-public/configmaps/cluster-info", info)

    def workloads(self) -> None:
        nodes = self.api.get("/api/v1/nodes")["items"]

        def ready(node: Json) -> bool:
            return any(c.get("type") == "Ready" and c.get("status") == "True"
                       for c in node.get("status", {}).get("conditions") or [])

        for ds in self.api.get("/apis/apps/v1/daemonsets")["items"]:
            ref = f"{ds['metadata']['namespace']}/{ds['metadata']['name']}"
            placed = [n for n in nodes if kubelet.schedulable(ds, n)]
            up = [n for n in placed if ref in ((n["metadata"].get("annotations") or {}).get(
                kubelet.READY_ANNOTATION, "")).split(",")]
            status = {"currentNumberScheduled": len(placed), "desiredNumberScheduled": len(placed),
                      "numberMisscheduled": 0, "numberReady": len(up), "numberAvailable": len(up),
                      "updatedNumberScheduled": len(placed), "observedGeneration": ds["metadata"].get("generation", 1)}
            if len(placed) > len(up):
                status["numberUnavailable"] = len(placed) - len(up)
            if ds.get("status") != status:
                ds["status"] = status
                self.api.request("PUT", f"/apis/apps/v1/namespaces/{ref.replace('/', '/daemonsets/', 1)}/status", ds)
        any_ready = any(ready(n) and not n.get("spec", {}).get("unschedulable") for n in nodes)
        for deploy in self.api.get("/apis/apps/v1/deployments")["items"]:
            want = int((deploy.get("spec") or {}).get("replicas", 1))
            up = want if any_ready else 0
            status: Json = {"observedGeneration": deploy["metadata"].get("generation", 1), "replicas": want,
                            "updatedReplicas": want, "readyReplicas": up, "availableReplicas": up}
            if want > up:
                status["unavailableReplicas"] = want - up
            status = {k: v for k, v in status.items() if v or k == "replicas"}
            status["conditions"] = [{"type": "Available", "status": "True" if up >= want else "False",
                                     "reason": "MinimumReplicasAvailable" if up >= want else
                                     "MinimumReplicasUnavailable",
                                     "message": "Deployment has minimum availability." if up >= want else
                                     "Deployment does not have minimum availability."}]
            if {k: v for k, v in (deploy.get("status") or {}).items() if k != "conditions"} != {
                    k: v for k, v in status.items() if k != "conditions"}:
                deploy["status"] = status
                ns, name = deploy["metadata"]["namespace"], deploy["metadata"]["name"]
                self.api.request("PUT", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}/status", deploy)


    def disruption(self) -> None:
        """The disruption controller: each PodDisruptionBudget's status from the pods it selects."""
        pods = self.api.get("/api/v1/pods")["items"]
        for pdb in self.api.get("/apis/policy/v1/poddisruptionbudgets")["items"]:
            ns, name = pdb["metadata"]["namespace"], pdb["metadata"]["name"]
            status = builtin.pdb_status(pdb, [p for p in pods if p["metadata"].get("namespace") == ns])
            if {k: v for k, v in (pdb.get("status") or {}).items() if k in status} != status:
                pdb["status"] = status
                self.api.request("PUT", f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/{name}/status", pdb)


def controller_manager(argv: list[str]) -> int:
    flags = apiserver.parse_flags(argv)
    _listen(flags.get("bind-address", "0.0.0.0"), int(flags.get("secure-port", "10257")))  # noqa: S104
    controllers = Controllers(flags)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    while not done.is_set():
        controllers.loop()
        done.wait(2.0)
    return 0
