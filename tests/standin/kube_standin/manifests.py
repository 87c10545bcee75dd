"""Static pod manifests, kubelet configuration and kubeadm-flags.env as kubeadm writes them (1.28–1.31 layout)."""

from __future__ import annotations

import ipaddress
from typing import Any

import yaml

from . import versions
from .config import Config

Json = dict[str, Any]
PKI = "/etc/kubernetes/pki"


def _flags(defaults: dict[str, str], extra: list[tuple[str, str]]) -> list[str]:
    """kubeadm's argument building: defaults overridden by extraArgs, sorted by name; v1beta4 duplicates kept."""
    merged = dict(defaults)
    repeated: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, value in extra:
        if name in seen:
            repeated.append((name, value))
        else:
            merged[name] = value
            seen.add(name)
    items = sorted([*merged.items(), *repeated], key=lambda kv: kv[0])
    return [f"--{k}={v}" for k, v in items]


def _probe(port: int, path: str, host_: str, scheme: str = "HTTPS", failure: int = 8) -> Json:
    return {"failureThreshold": failure, "httpGet": {"host": host_, "path": path, "port": port, "scheme": scheme},
            "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 15}


def _pod(name: str, image: str, command: list[str], volumes: list[tuple[str, str, str, bool]], probe_port: int,
         probe_host: str, scheme: str = "HTTPS", annotations: Json | None = None, cpu: str = "250m") -> Json:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {**({"annotations": annotations} if annotations else {}), "creationTimestamp": None,
                     "labels": {"component": name, "tier": "control-plane"}, "name": name,
                     "namespace": "kube-system"},
        "spec": {
            "containers": [{
                "command": command, "image": image, "imagePullPolicy": "IfNotPresent",
                "livenessProbe": _probe(probe_port, "/livez" if name == "kube-apiserver" else
                                        "/health?exclude=NOSPACE&serializable=true" if name == "etcd" else "/healthz",
                                        probe_host, scheme),
                "name": name, "resources": {"requests": {"cpu": cpu, **({"memory": "100Mi"} if name == "etcd" else {})}},
                "startupProbe": _probe(probe_port, "/livez" if name == "kube-apiserver" else
                                       "/health?serializable=false" if name == "etcd" else "/healthz", probe_host,
                                       scheme, 24),
                "volumeMounts": [{"mountPath": path, "name": vol, **({"readOnly": True} if ro else {})}
                                 for vol, path, _, ro in volumes],
            }],
            "hostNetwork": True, "priority": 2000001000, "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"hostPath": {"path": path, "type": kind}, "name": vol} for vol, path, kind, _ in volumes],
        },
        "status": {},
    }


def dump(pod: Json) -> str:
    return str(yaml.safe_dump(pod, default_flow_style=False, sort_keys=True))


def etcd(cfg: Config, node: str, address: str, initial_cluster: str = "", existing: bool = False) -> Json:
    client = f"https://{address}:2379"
    peer = f"https://{address}:2380"
    defaults = {
        "advertise-client-urls": client, "cert-file": f"{PKI}/etcd/server.crt", "client-cert-auth": "true",
        "data-dir": cfg.etcd_data_dir, "experimental-initial-corrupt-check": "true",
        "experimental-watch-progress-notify-interval": "5s", "initial-advertise-peer-urls": peer,
        "initial-cluster": initial_cluster or f"{node}={peer}", "key-file": f"{PKI}/etcd/server.key",
        "listen-client-urls": f"https://127.0.0.1:2379,{client}", "listen-metrics-urls": "http://127.0.0.1:2381",
        "listen-peer-urls": peer, "name": node, "peer-cert-file": f"{PKI}/etcd/peer.crt",
        "peer-client-cert-auth": "true", "peer-key-file": f"{PKI}/etcd/peer.key",
        "peer-trusted-ca-file": f"{PKI}/etcd/ca.crt", "snapshot-count": "10000",
        "trusted-ca-file": f"{PKI}/etcd/ca.crt",
    }
    if existing:
        defaults["initial-cluster-state"] = "existing"
    command = ["etcd", *_flags(defaults, cfg.extra_args.get("etcd-local", []))]
    volumes = [("etcd-certs", f"{PKI}/etcd", "DirectoryOrCreate", False),
               ("etcd-data", cfg.etcd_data_dir, "DirectoryOrCreate", False)]
    return _pod("etcd", f"{cfg.image_repository}/etcd:{versions.ETCD_IMAGE[versions.minor()]}", command, volumes,
                2381, "127.0.0.1", "HTTP", {"kubeadm.kubernetes.io/etcd.advertise-client-urls": client}, "100m")


def _k8s_image(cfg: Config, name: str) -> str:
    return f"{cfg.image_repository}/{name}:{cfg.kubernetes_version or versions.version()}"


_CERT_VOLUMES = [("ca-certs", "/etc/ssl/certs", "DirectoryOrCreate", True),
                 ("etc-ca-certificates", "/etc/ca-certificates", "DirectoryOrCreate", True),
                 ("k8s-certs", PKI, "DirectoryOrCreate", True),
                 ("usr-local-share-ca-certificates", "/usr/local/share/ca-certificates", "DirectoryOrCreate", True),
                 ("usr-share-ca-certificates", "/usr/share/ca-certificates", "DirectoryOrCreate", True)]


def apiserver(cfg: Config, address: str, port: int, etcd_servers: str = "https://127.0.0.1:2379") -> Json:
    defaults = {
        "advertise-address": address, "allow-privileged": "true", "authorization-mode": "Node,RBAC",
        "client-ca-file": f"{PKI}/ca.crt", "enable-admission-plugins": "NodeRestriction",
        "enable-bootstrap-token-auth": "true",
        "kubelet-client-certificate": f"{PKI}/apiserver-kubelet-client.crt",
        "kubelet-client-key": f"{PKI}/apiserver-kubelet-client.key",
        "kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
        "proxy-client-cert-file": f"{PKI}/front-proxy-client.crt",
        "proxy-client-key-file": f"{PKI}/front-proxy-client.key",
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-client-ca-file": f"{PKI}/front-proxy-ca.crt",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-", "requestheader-group-headers": "X-Remote-Group",
        "requestheader-username-headers": "X-Remote-User", "secure-port": str(port),
        "service-account-issuer": f"https://kubernetes.default.svc.{cfg.dns_domain}",
        "service-account-key-file": f"{PKI}/sa.pub", "service-account-signing-key-file": f"{PKI}/sa.key",
        "service-cluster-ip-range": cfg.service_subnet, "tls-cert-file": f"{PKI}/apiserver.crt",
        "tls-private-key-file": f"{PKI}/apiserver.key",
    }
    if cfg.external_etcd:
        ext = cfg.external_etcd
        defaults["etcd-servers"] = ",".join(ext.get("endpoints") or [])
        for flag, key in (("etcd-cafile", "caFile"), ("etcd-certfile", "certFile"), ("etcd-keyfile", "keyFile")):
            if ext.get(key):
                defaults[flag] = ext[key]
    else:
        defaults.update({"etcd-cafile": f"{PKI}/etcd/ca.crt", "etcd-certfile": f"{PKI}/apiserver-etcd-client.crt",
                         "etcd-keyfile": f"{PKI}/apiserver-etcd-client.key", "etcd-servers": etcd_servers})
    command = ["kube-apiserver", *_flags(defaults, cfg.extra_args.get("apiServer", []))]
    return _pod("kube-apiserver", _k8s_image(cfg, "kube-apiserver"), command, _CERT_VOLUMES, port, address, "HTTPS",
                {"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": f"{address}:{port}"})


def controller_manager(cfg: Config) -> Json:
    conf = "/etc/kubernetes/controller-manager.conf"
    defaults = {
        "authentication-kubeconfig": conf, "authorization-kubeconfig": conf, "bind-address": "127.0.0.1",
        "client-ca-file": f"{PKI}/ca.crt", "cluster-name": cfg.cluster_name,
        "cluster-signing-cert-file": f"{PKI}/ca.crt", "cluster-signing-key-file": f"{PKI}/ca.key",
        "controllers": "*,bootstrapsigner,tokencleaner", "kubeconfig": conf, "leader-elect": "true",
        "requestheader-client-ca-file": f"{PKI}/front-proxy-ca.crt", "root-ca-file": f"{PKI}/ca.crt",
        "service-account-private-key-file": f"{PKI}/sa.key", "service-cluster-ip-range": cfg.service_subnet,
        "use-service-account-credentials": "true",
    }
    if cfg.pod_subnet:
        defaults.update({"allocate-node-cidrs": "true", "cluster-cidr": cfg.pod_subnet})
    command = ["kube-controller-manager", *_flags(defaults, cfg.extra_args.get("controllerManager", []))]
    volumes = [*_CERT_VOLUMES[:2], ("flexvolume-dir", "/usr/libexec/kubernetes/kubelet-plugins/volume/exec",
                                    "DirectoryOrCreate", False), _CERT_VOLUMES[2],
               ("kubeconfig", conf, "FileOrCreate", True), *_CERT_VOLUMES[3:]]
    return _pod("kube-controller-manager", _k8s_image(cfg, "kube-controller-manager"), command, volumes, 10257,
                "127.0.0.1", "HTTPS", None, "200m")


def scheduler(cfg: Config) -> Json:
    conf = "/etc/kubernetes/scheduler.conf"
    defaults = {"authentication-kubeconfig": conf, "authorization-kubeconfig": conf, "bind-address": "127.0.0.1",
                "kubeconfig": conf, "leader-elect": "true"}
    command = ["kube-scheduler", *_flags(defaults, cfg.extra_args.get("scheduler", []))]
    return _pod("kube-scheduler", _k8s_image(cfg, "kube-scheduler"), command,
                [("kubeconfig", conf, "FileOrCreate", True)], 10259, "127.0.0.1", "HTTPS", None, "100m")


def cluster_dns(cfg: Config) -> str:
    network = ipaddress.ip_network(cfg.service_subnet.split(",")[0], strict=False)
    return str(network[10])


def kubelet_config(cfg: Config) -> str:
    doc: Json = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"cacheTTL": "0s", "enabled": True},
                           "x509": {"clientCAFile": f"{PKI}/ca.crt"}},
        "authorization": {"mode": "Webhook", "webhook": {"cacheAuthorizedTTL": "0s", "cacheUnauthorizedTTL": "0s"}},
        "cgroupDriver": "systemd", "clusterDNS": [cluster_dns(cfg)], "clusterDomain": cfg.dns_domain,
        "containerRuntimeEndpoint": "", "cpuManagerReconcilePeriod": "0s", "evictionPressureTransitionPeriod": "0s",
        "fileCheckFrequency": "0s", "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
        "httpCheckFrequency": "0s", "imageMaximumGCAge": "0s", "imageMinimumGCAge": "0s",
        "kind": "KubeletConfiguration",
        "logging": {"flushFrequency": 0, "options": {"json": {"infoBufferSize": "0"}}, "verbosity": 0},
        "memorySwap": {}, "nodeStatusReportFrequency": "0s", "nodeStatusUpdateFrequency": "0s",
        "rotateCertificates": True, "runtimeRequestTimeout": "0s", "shutdownGracePeriod": "0s",
        "shutdownGracePeriodCriticalPods": "0s", "staticPodPath": "/etc/kubernetes/manifests",
        "streamingConnectionIdleTimeout": "0s", "syncFrequency": "0s", "volumeStatsAggPeriod": "0s",
    }
    if versions.minor() >= 31:
        doc["logging"]["options"]["text"] = {"infoBufferSize": "0"}
    doc.update({k: v for k, v in (cfg.kubelet or {}).items() if k not in ("apiVersion", "kind")})
    return str(yaml.safe_dump(doc, default_flow_style=False, sort_keys=True))


def kubeadm_flags(cfg: Config, node_name: str, hostname: str) -> str:
    flags = [f"--container-runtime-endpoint={cfg.node.cri_socket}",
             f"--pod-infra-container-image={cfg.image_repository}/pause:{versions.PAUSE[versions.minor()]}"]
    if node_name != hostname:
        flags.append(f"--hostname-override={node_name}")
    flags += [f"--{k}={v}" for k, v in cfg.node.kubelet_extra_args]
    text = " ".join(flags).replace("\\", "\\\\").replace('"', '\\"')
    return f'KUBELET_KUBEADM_ARGS="{text}"\n'
