"""Objects kubeadm creates through the API: bootstrap RBAC, CoreDNS and kube-proxy (as objects; nothing runs them
except the stand-in kubelet's status reporting)."""

from __future__ import annotations

from typing import Any

from . import manifests, versions
from .client import Api, ApiError
from .config import Config

Json = dict[str, Any]
RBAC = "/apis/rbac.authorization.k8s.io/v1"


def _apply(api: Api, collection: str, obj: Json) -> None:
    try:
        api.create_or_update(collection, obj)
    except ApiError as exc:
        if exc.code != 409:
            raise


def _binding(name: str, role: str, group: str, kind: str = "ClusterRoleBinding", namespace: str = "") -> Json:
    meta: Json = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole" if kind ==
                        "ClusterRoleBinding" else "Role", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]}


def bootstrap_rbac(api: Api) -> None:
    bootstrappers = "system:bootstrappers:kubeadm:default-node-token"
    _apply(api, f"{RBAC}/clusterroles", {"metadata": {"name": "kubeadm:get-nodes"}, "rules": [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]})
    for name, role, group in (
            ("kubeadm:get-nodes", "kubeadm:get-nodes", bootstrappers),
            ("kubeadm:kubelet-bootstrap", "system:node-bootstrapper", bootstrappers),
            ("kubeadm:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
             bootstrappers),
            ("kubeadm:node-autoapprove-certificate-rotation",
             "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", "system:nodes")):
        _apply(api, f"{RBAC}/clusterrolebindings", _binding(name, role, group))
    _apply(api, f"{RBAC}/namespaces/kube-public/roles", {"metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo",
                                                                      "namespace": "kube-public"}, "rules": [
        {"apiGroups": [""], "resourceNames": ["cluster-info"], "resources": ["configmaps"], "verbs": ["get"]}]})
    _apply(api, f"{RBAC}/namespaces/kube-public/rolebindings",
           {**_binding("kubeadm:bootstrap-signer-clusterinfo", "kubeadm:bootstrap-signer-clusterinfo",
                       "system:anonymous", "RoleBinding", "kube-public"),
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}]})


COREFILE = """.:53 {{
    errors
    health {{
       lameduck 5s
    }}
    ready
    kubernetes {domain} in-addr.arpa ip6.arpa {{
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    prometheus :9153
    forward . /etc/resolv.conf {{
       max_concurrent 1000
    }}
    cache 30
    loop
    reload
    loadbalance
}}
"""


def coredns(api: Api, cfg: Config) -> None:
    ns = "/api/v1/namespaces/kube-system"
    labels = {"k8s-app": "kube-dns"}
    _apply(api, f"{ns}/configmaps", {"metadata": {"name": "coredns", "namespace": "kube-system"},
                                     "data": {"Corefile": COREFILE.format(domain=cfg.dns_domain)}})
    _apply(api, f"{ns}/serviceaccounts", {"metadata": {"name": "coredns", "namespace": "kube-system"}})
    _apply(api, f"{RBAC}/clusterroles", {"metadata": {"name": "system:coredns"}, "rules": [
        {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]}]})
    _apply(api, f"{RBAC}/clusterrolebindings", {
        "metadata": {"name": "system:coredns"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
        "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]})
    image = f"{cfg.image_repository}/coredns/coredns:{versions.COREDNS[versions.minor()]}"
    _apply(api, "/apis/apps/v1/namespaces/kube-system/deployments", {
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels}, "spec": {
                "containers": [{"name": "coredns", "image": image, "args": ["-conf", "/etc/coredns/Corefile"]}],
                "priorityClassName": "system-cluster-critical", "serviceAccountName": "coredns",
                "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                {"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}]}}}})
    _apply(api, f"{ns}/services", {
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {**labels, "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}},
        "spec": {"clusterIP": manifests.cluster_dns(cfg), "selector": labels, "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}})


def kube_proxy(api: Api, cfg: Config, endpoint: str) -> None:
    ns = "/api/v1/namespaces/kube-system"
    labels = {"k8s-app": "kube-proxy"}
    config = ("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nbindAddress: 0.0.0.0\nclientConnection:\n"
              "  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\n"
              f"clusterCIDR: {cfg.pod_subnet}\nkind: KubeProxyConfiguration\nmode: \"\"\n")
    kubeconfig = ("apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n"
                  "    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n"
                  f"    server: {endpoint}\n  name: default\ncontexts:\n- context:\n    cluster: default\n"
                  "    namespace: default\n    user: default\n  name: default\ncurrent-context: default\nusers:\n"
                  "- name: default\n  user:\n    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n")
    _apply(api, f"{ns}/configmaps", {"metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": {
        "app": "kube-proxy"}}, "data": {"config.conf": config, "kubeconfig.conf": kubeconfig}})
    _apply(api, f"{ns}/serviceaccounts", {"metadata": {"name": "kube-proxy", "namespace": "kube-system"}})
    _apply(api, "/apis/apps/v1/namespaces/kube-system/daemonsets", {
        "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": labels},
        "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
            "containers": [{"name": "kube-proxy", "image": f"{cfg.image_repository}/kube-proxy:"
                            f"{cfg.kubernetes_version or versions.version()}",
                            "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                                        "--hostname-override=$(NODE_NAME)"]}],
            "hostNetwork": True, "nodeSelector": {"kubernetes.io/os": "linux"},
            "priorityClassName": "system-node-critical", "serviceAccountName": "kube-proxy",
            "tolerations": [{"operator": "Exists"}]}}}})
