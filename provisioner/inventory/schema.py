"""JSON Schema (draft 2020-12) of the inventory file, for editors and `provision schema`.

The schema describes the shape and the per-field formats; rules that span fields or need Ansible's resolution
(one role per host, exactly one of version/channel, quorum, duplicate addresses) are load_inventory's job.
It is built from the same constants the loader checks against, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from provisioner import arch as arch_table
from provisioner.grammar import k3s_version_pattern, kubeadm_version
from provisioner.inventory.k3s_checks import MANAGED_KEYS, UNSUPPORTED_KEYS, Command, config_keys
from provisioner.inventory.model import (
    BOARDS,
    FLAVORS,
    KUBEADM_CNIS,
    KUBEADM_ETCD,
    KUBEADM_PACKAGE_SOURCES,
    TAINT_EFFECTS,
)

_DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]"
_LABEL_KEY = f"({_DNS_LABEL}(\\.{_DNS_LABEL})*/)?{_LABEL_NAME}"
_LABEL_VALUE = f"({_LABEL_NAME})?"
_SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean"]}


def _config_schema(command: Command) -> dict[str, Any]:
    keys = sorted(k for k, flag in config_keys(command).items() if flag.name not in MANAGED_KEYS | UNSUPPORTED_KEYS)
    return {
        "description": f"extra keys of /etc/rancher/k3s/config.yaml for k3s {command} (flag names; `key+` appends)",
        "type": "object",
        "propertyNames": {"enum": keys + [k + "+" for k in keys]},
        "additionalProperties": {"anyOf": [_SCALAR, {"type": "array", "items": _SCALAR}]},
    }


def _registries_schema(description: str, *, rewrite: bool) -> dict[str, Any]:
    mirror_keys: dict[str, Any] = {"endpoint": {"type": "array", "items": {"type": "string", "pattern": "^https?://"}}}
    if rewrite:
        mirror_keys["rewrite"] = {"type": "object", "additionalProperties": {"type": "string"}}
    mirror = {
        "type": "object",
        "properties": mirror_keys,
        "additionalProperties": False,
    }
    config = {
        "type": "object",
        "properties": {"auth": {"type": "object"}, "tls": {"type": "object"}},
        "additionalProperties": False,
    }
    return {
        "description": description,
        "type": "object",
        "properties": {
            "mirrors": {"type": "object", "additionalProperties": mirror},
            "configs": {"type": "object", "additionalProperties": config},
        },
        "additionalProperties": False,
        "minProperties": 1,
    }


def _variables_schema() -> dict[str, Any]:
    """Every variable provision reads; any other variable (Ansible's, the roles') is allowed as is."""
    return {
        "type": ["object", "null"],
        "properties": {
            "provision_cluster_name": {"type": "string", "pattern": f"^{_DNS_LABEL}$", "maxLength": 63},
            "provision_flavor": {"enum": list(FLAVORS)},
            "provision_api_endpoint": {"type": "string", "description": "host name or IP of the API (LB, VIP)"},
            "provision_accept_even_servers": {"type": "boolean"},
            "k3s_version": {"type": "string", "pattern": k3s_version_pattern()},
            "k3s_channel": {"type": "string", "pattern": r"^(stable|latest|testing|v\d+\.\d+)$"},
            "k3s_release_url": {"type": "string", "pattern": "^https?://[^/]"},
            "k3s_artifact_dir": {"type": "string", "minLength": 1},
            "k3s_airgap_images": {"type": "boolean", "description": "place the release's image archive on every node"},
            "k3s_airgap_images_format": {"enum": ["tar", "tar.gz", "tar.zst"]},
            "k3s_registries": _registries_schema("content of /etc/rancher/k3s/registries.yaml, written on every node",
                                                 rewrite=True),
            "k3s_server_config": _config_schema("server"),
            "k3s_agent_config": _config_schema("agent"),
            "k3s_token": {
                "type": "string",
                "minLength": 1,
                "description": "better vault-encrypted or from the environment",
            },
            "k3s_datastore_endpoint": {
                "type": "string",
                "pattern": "^(sqlite|postgres|postgresql|mysql|http|https)://",
            },
            "k3s_datastore_password_file": {"type": "string", "minLength": 1},
            **_kubeadm_variables(),
            "provision_hardware": {
                "type": "object",
                "properties": {
                    "arch": {"enum": [*arch_table.inventory_arches(), *arch_table.inventory_aliases()]},
                    "board": {"enum": list(BOARDS)},
                    "memory_mb": {"type": "integer", "minimum": 1},
                },
                "additionalProperties": False,
            },
            "k3s_node_labels": {
                "type": "object",
                "propertyNames": {"pattern": f"^{_LABEL_KEY}$"},
                "additionalProperties": {
                    "type": ["string", "integer"],
                    "pattern": f"^{_LABEL_VALUE}$",
                    "maxLength": 63,
                },
            },
            "k3s_node_taints": {
                "type": "array",
                "items": {"type": "string", "pattern": f"^{_LABEL_KEY}(={_LABEL_VALUE})?:({'|'.join(TAINT_EFFECTS)})$"},
            },
            "ansible_host": {"type": "string", "minLength": 1},
            "ansible_port": {
                "anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, {"type": "string", "pattern": r"^\d+$"}]
            },
            "ansible_user": {"type": "string"},
            "ansible_become": {"type": ["boolean", "string"]},
        },
        "additionalProperties": True,
    }


def _kubeadm_variables() -> dict[str, Any]:
    """The kubeadm flavor's cluster-wide fields (provisioner/inventory/kubeadm_checks.py checks them)."""
    path = {"type": "string", "minLength": 1}
    return {
        "kubeadm_version": {
            "type": "string", "pattern": kubeadm_version().VERSION.pattern,
            "description": "Kubernetes release to install, e.g. v1.30.2",
        },
        "kubeadm_package_source": {"enum": list(KUBEADM_PACKAGE_SOURCES)},
        "kubeadm_apt_url": {"type": "string", "pattern": "^https?://[^/]", "description": "pkgs.k8s.io or a mirror"},
        "kubeadm_release_url": {"type": "string", "pattern": "^https?://[^/]", "description": "dl.k8s.io or a mirror"},
        "kubeadm_github_url": {
            "type": "string", "pattern": "^https?://[^/]",
            "description": "github.com or a mirror laid out like it (CNI release manifests)",
        },
        "kubeadm_artifact_dir": path,
        "kubeadm_cni": {"enum": list(KUBEADM_CNIS)},
        "kubeadm_pod_subnet": {"type": "string", "description": "CIDR; the CNI is configured with it"},
        "kubeadm_service_subnet": {"type": "string", "description": "CIDR"},
        "kubeadm_etcd": {"enum": list(KUBEADM_ETCD)},
        "kubeadm_etcd_endpoints": {"type": "array", "items": {"type": "string", "pattern": "^https://"}},
        "kubeadm_etcd_ca_file": path,
        "kubeadm_etcd_cert_file": path,
        "kubeadm_etcd_key_file": path,
        "kubeadm_reset_keep_packages": {
            "type": "boolean",
            "description": "reset keeps kubeadm, kubelet, kubectl, the kubelet unit and the apt repository",
        },
        "kubeadm_registries": _registries_schema(
            "registry mirrors and auth/TLS in K3s's registries.yaml format (no rewrite), written as containerd's "
            "certs.d/<registry>/hosts.toml files", rewrite=False),
    }


def json_schema() -> dict[str, Any]:
    """The JSON Schema of an inventory file: groups (recursive) holding vars, children and hosts."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:provision:inventory",
        "title": "provision inventory (an Ansible YAML inventory)",
        "type": "object",
        "properties": {"all": {"$ref": "#/$defs/group"}},
        "additionalProperties": {"$ref": "#/$defs/group"},
        "$defs": {
            "group": {
                "type": ["object", "null"],
                "properties": {
                    "vars": {"$ref": "#/$defs/variables"},
                    "children": {"type": ["object", "null"], "additionalProperties": {"$ref": "#/$defs/group"}},
                    "hosts": {
                        "type": ["object", "null", "string"],
                        "additionalProperties": {"$ref": "#/$defs/variables"},
                    },
                },
                "additionalProperties": False,
            },
            "variables": _variables_schema(),
        },
    }
