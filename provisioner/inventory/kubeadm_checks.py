"""Checks of the cluster-wide kubeadm fields (kubeadm_* in all.vars) and the KubeadmSettings they give.

All checks are local (no network). The groups keep their meaning: `server` hosts are control-plane nodes, `agent`
hosts are workers. kubeadm's own preflight refuses a control-plane node with fewer than 2 CPUs or 1700 MB of memory;
the memory the inventory states (provision_hardware.memory_mb) is checked here, the CPUs by the probe.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from provisioner.grammar import kubeadm_version
from provisioner.inventory import registries
from provisioner.inventory.model import (
    DEFAULT_KUBEADM_APT_URL,
    DEFAULT_KUBEADM_GITHUB_URL,
    DEFAULT_KUBEADM_RELEASE_URL,
    DEFAULT_POD_SUBNET,
    DEFAULT_SERVICE_SUBNET,
    KUBEADM_CNIS,
    KUBEADM_ETCD,
    KUBEADM_PACKAGE_SOURCES,
    ExternalEtcd,
    Host,
    KubeadmSettings,
)
from provisioner.inventory.report import Report

# kubeadm preflight: [ERROR Mem] below 1700 MB on a control-plane node. The comparison this project started from
# advises 2-4 GB (and 2-4 vCPU) for a control plane: warned below 2048 MB.
MIN_CONTROL_PLANE_MB = 1700
ADVISED_CONTROL_PLANE_MB = 2048
# kube-controller-manager hands every node a /24 (IPv4) or /64 (IPv6) of the pod subnet, so the subnet must be
# larger; kube-apiserver refuses a service range with more than 20 host bits (IPv4 /12, IPv6 /108).
_NODE_MASK = {4: 24, 6: 64}
_LARGEST_SERVICE_PREFIX = {4: 12, 6: 108}

CLUSTER_VARS = (
    "kubeadm_version",
    "kubeadm_package_source",
    "kubeadm_apt_url",
    "kubeadm_release_url",
    "kubeadm_artifact_dir",
    "kubeadm_cni",
    "kubeadm_github_url",
    "kubeadm_pod_subnet",
    "kubeadm_service_subnet",
    "kubeadm_etcd",
    "kubeadm_etcd_endpoints",
    "kubeadm_etcd_ca_file",
    "kubeadm_etcd_cert_file",
    "kubeadm_etcd_key_file",
    "kubeadm_reset_keep_packages",
    "kubeadm_registries",
)


def version_valid(text: object) -> bool:
    return bool(kubeadm_version().kubeadm_version_valid(text))


def version_minor(text: str) -> int:
    return int(kubeadm_version().kubeadm_minor(text))


def read_settings(report: Report, ref: Mapping[str, Any], hosts: Sequence[Host], base: Path) -> KubeadmSettings:
    """Check every kubeadm field and return the settings (defaults filled in); problems go to `report`."""
    version = _version(report, ref.get("kubeadm_version"))
    source = _choice(report, "kubeadm_package_source", ref.get("kubeadm_package_source"), KUBEADM_PACKAGE_SOURCES)
    apt_url = _url(report, "kubeadm_apt_url", ref.get("kubeadm_apt_url"), DEFAULT_KUBEADM_APT_URL)
    release_url = _url(report, "kubeadm_release_url", ref.get("kubeadm_release_url"), DEFAULT_KUBEADM_RELEASE_URL)
    artifact_dir = _artifact_dir(report, source, ref, base)
    cni = _choice(report, "kubeadm_cni", ref.get("kubeadm_cni"), KUBEADM_CNIS)
    github_url = _url(report, "kubeadm_github_url", ref.get("kubeadm_github_url"), DEFAULT_KUBEADM_GITHUB_URL)
    pod = _network(report, "kubeadm_pod_subnet", ref.get("kubeadm_pod_subnet"), DEFAULT_POD_SUBNET)
    service = _network(report, "kubeadm_service_subnet", ref.get("kubeadm_service_subnet"), DEFAULT_SERVICE_SUBNET)
    _check_subnets(report, pod, service, hosts)
    etcd = _etcd(report, ref, base)
    if ref.get("kubeadm_registries") is not None:
        registries.check(report, "kubeadm_registries", ref["kubeadm_registries"], rewrite=False)
    _check_memory(report, hosts)
    return KubeadmSettings(
        version=version,
        package_source=source,
        apt_url=apt_url,
        release_url=release_url,
        artifact_dir=artifact_dir,
        cni=cni,
        pod_subnet=str(pod) if pod is not None else str(ref.get("kubeadm_pod_subnet")),
        service_subnet=str(service) if service is not None else str(ref.get("kubeadm_service_subnet")),
        etcd=etcd,
        github_url=github_url,
    )


def _version(report: Report, value: object) -> str:
    if value is None:
        report.error(
            "kubeadm_version", "is missing", "add kubeadm_version: v1.30.2 (the Kubernetes release) to all.vars",
            line=report.all_line,
        )
        return ""
    if not version_valid(value):
        report.error(
            "kubeadm_version",
            f"{value!r} is not a Kubernetes release",
            "write it as v<major>.<minor>.<patch>, e.g. v1.30.2 (no release candidates, no build suffix)",
        )
        return str(value)
    oldest = int(kubeadm_version().OLDEST_MINOR)
    if version_minor(str(value)) < oldest:
        report.error(
            "kubeadm_version",
            f"{value} is older than v1.{oldest}, the oldest minor provision installs",
            f"install v1.{oldest} or newer (then upgrade one minor at a time)",
        )
    return str(value)


def _choice(report: Report, field: str, value: object, choices: tuple[str, ...]) -> str:
    if value is None:
        return choices[0]
    if value not in choices:
        report.error(field, f"{value!r} is not one of {', '.join(choices)}", f"use one of {', '.join(choices)}")
        return choices[0]
    return str(value)


def _url(report: Report, field: str, value: object, default: str) -> str:
    if value is None:
        return default
    parts = urlsplit(str(value)) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        report.error(field, f"{value!r} is not an http(s) URL", f"give the mirror's base URL, like {default}")
        return default
    if parts.scheme == "http":
        report.warn(
            field,
            "is plain http: packages and checksums could be altered on the way (the apt repository's signature "
            "still protects packages)",
            "use https for the mirror if it offers it",
        )
    return str(value).rstrip("/")


def _artifact_dir(report: Report, source: str, ref: Mapping[str, Any], base: Path) -> Path | None:
    """The air-gap folder: kubeadm_release_url's layout (<version>/bin/linux/<arch>/...) and kubeadm_github_url's
    (crictl, the CNI manifest) on this machine; the files and checksums are checked per host by the role."""
    value = ref.get("kubeadm_artifact_dir")
    if source != "artifacts":
        if value is not None:
            report.error(
                "kubeadm_artifact_dir", "is set but kubeadm_package_source is not artifacts",
                "set kubeadm_package_source: artifacts to install from it, or remove it",
            )
        return None
    for url in ("kubeadm_apt_url", "kubeadm_release_url", "kubeadm_github_url"):
        if ref.get(url) is not None:
            report.error(
                url, "is set but kubeadm_package_source is artifacts: everything comes from kubeadm_artifact_dir",
                f"remove {url}, or download from it with kubeadm_package_source: binaries",
            )
    if not isinstance(value, str) or not value:
        report.error(
            "kubeadm_artifact_dir", "is missing (kubeadm_package_source is artifacts)",
            "name the folder on this machine holding kubeadm, kubelet and kubectl per architecture",
            line=report.all_line,
        )
        return None
    path = (base / value).expanduser().resolve()
    version = ref.get("kubeadm_version")
    if not path.is_dir():
        report.error("kubeadm_artifact_dir", f"{path} is not a folder", "check the path (relative to the inventory)")
    elif isinstance(version, str) and version_valid(version) and not (path / version / "bin" / "linux").is_dir():
        report.error(
            "kubeadm_artifact_dir", f"{path} has no {version}/bin/linux/ folder",
            f"put the release binaries there as dl.k8s.io lays them out: {version}/bin/linux/<arch>/kubeadm and "
            "kubeadm.sha256, the same for kubelet and kubectl (docs/inventory.md)",
        )
    return path


def _network(
    report: Report, field: str, value: object, default: str
) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    text = default if value is None else value
    try:
        return ipaddress.ip_network(str(text), strict=True)
    except ValueError as exc:
        report.error(field, f"{text!r} is not a network in CIDR form ({exc})", "write it like 10.244.0.0/16")
        return None


def _check_subnets(
    report: Report,
    pod: ipaddress.IPv4Network | ipaddress.IPv6Network | None,
    service: ipaddress.IPv4Network | ipaddress.IPv6Network | None,
    hosts: Sequence[Host],
) -> None:
    if pod is not None and pod.prefixlen >= _NODE_MASK[pod.version]:
        report.error(
            "kubeadm_pod_subnet",
            f"{pod} is too small: every node gets a /{_NODE_MASK[pod.version]} of it",
            "use a larger subnet, e.g. 10.244.0.0/16",
        )
    if service is not None and service.prefixlen < _LARGEST_SERVICE_PREFIX[service.version]:
        report.error(
            "kubeadm_service_subnet",
            f"{service} is larger than kube-apiserver accepts (at most /{_LARGEST_SERVICE_PREFIX[service.version]})",
            "use e.g. 10.96.0.0/12",
        )
    if pod is not None and service is not None and pod.version == service.version and pod.overlaps(service):
        report.error(
            "kubeadm_service_subnet",
            f"{service} overlaps the pod subnet {pod}",
            "give pods and services separate ranges (defaults: 10.244.0.0/16 and 10.96.0.0/12)",
        )
    for host in hosts:
        try:
            address = ipaddress.ip_address(host.address)
        except ValueError:
            continue  # a name: resolved later, by the probe
        for field, network in (("kubeadm_pod_subnet", pod), ("kubeadm_service_subnet", service)):
            if network is not None and address.version == network.version and address in network:
                report.error(
                    field,
                    f"{network} contains {host.name}'s address {address}; traffic to the host would be routed into "
                    "the cluster",
                    "choose a range that none of the machines' networks use",
                )


def _etcd(report: Report, ref: Mapping[str, Any], base: Path) -> ExternalEtcd | None:
    topology = _choice(report, "kubeadm_etcd", ref.get("kubeadm_etcd"), KUBEADM_ETCD)
    fields = ("kubeadm_etcd_endpoints", "kubeadm_etcd_ca_file", "kubeadm_etcd_cert_file", "kubeadm_etcd_key_file")
    if topology == "stacked":
        for field in fields:
            if ref.get(field) is not None:
                report.error(
                    field, "is set but kubeadm_etcd is stacked (etcd runs on the control-plane nodes)",
                    "set kubeadm_etcd: external to use an etcd cluster of your own, or remove it",
                )
        return None
    endpoints = ref.get("kubeadm_etcd_endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        report.error(
            "kubeadm_etcd_endpoints", "is missing or empty (kubeadm_etcd is external)",
            "list the etcd client URLs, e.g. [https://10.0.0.21:2379, https://10.0.0.22:2379]",
            line=report.all_line,
        )
        endpoints = []
    for url in endpoints:
        parts = urlsplit(str(url))
        if parts.scheme != "https" or not parts.netloc:
            report.error(
                "kubeadm_etcd_endpoints", f"{url!r} is not an https:// client URL",
                "kubeadm talks to external etcd over TLS with the client certificate: use https://host:2379",
            )
    files = [_etcd_file(report, field, ref.get(field), base) for field in fields[1:]]
    return ExternalEtcd(tuple(str(u) for u in endpoints), *files)


def _etcd_file(report: Report, field: str, value: object, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        report.error(
            field, "is missing (kubeadm_etcd is external)",
            "name the PEM file on this machine; provision copies it to the control-plane nodes",
            line=report.all_line,
        )
        return Path()
    path = (base / value).expanduser().resolve()
    if not path.is_file():
        report.error(field, f"{path} does not exist", "check the path (relative to the inventory)")
    elif field == "kubeadm_etcd_key_file" and path.stat().st_mode & 0o077:
        report.error(field, f"{path} is readable by others (it is a private key)", f"run: chmod 600 {path}")
    return path


def _check_memory(report: Report, hosts: Sequence[Host]) -> None:
    for host in hosts:
        memory = host.hardware.memory_mb
        if host.role != "server" or memory is None:
            continue
        if memory < MIN_CONTROL_PLANE_MB:
            report.error(
                ("provision_hardware", "memory_mb"),
                f"{memory} MB is below the {MIN_CONTROL_PLANE_MB} MB kubeadm requires on a control-plane node "
                "(its preflight stops with [ERROR Mem])",
                "give this node more memory, make it a worker (agent group), or use the k3s flavor "
                "(a K3s server runs in 512 MB-1 GB)",
                host=host.name,
            )
        elif memory < ADVISED_CONTROL_PLANE_MB:
            report.warn(
                ("provision_hardware", "memory_mb"),
                f"{memory} MB is less than the 2-4 GB advised for a kubeadm control plane",
                "expect a slow API under load; 2 GB or more is advised",
                host=host.name,
            )
