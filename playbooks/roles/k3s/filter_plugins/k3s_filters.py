"""Filters the k3s role uses to judge nodes and to rewrite the admin kubeconfig.

They live with the role so that plain ansible-playbook runs (AWX, CI) behave exactly like the provision CLI.
"""

from __future__ import annotations

from typing import Any

import yaml


def _node_ready(node: dict[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _taint_text(taint: dict[str, Any]) -> str:
    value = taint.get("value")
    key = taint["key"] if value in (None, "") else f"{taint['key']}={value}"
    return f"{key}:{taint['effect']}"


def node_problems(node_list: dict[str, Any], expected: list[dict[str, Any]]) -> list[str]:
    """One line per expected node that is missing, not Ready, at another version, or lacks a label or taint."""
    nodes = {n["metadata"]["name"]: n for n in node_list.get("items", [])}
    problems: list[str] = []
    for want in expected:
        name = want["name"]
        node = nodes.get(name)
        if node is None:
            problems.append(f"{name}: not registered in the cluster")
            continue
        if not _node_ready(node):
            problems.append(f"{name}: not Ready")
        version = node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
        if version != want["version"]:
            problems.append(f"{name}: runs {version or 'an unknown version'}, expected {want['version']}")
        labels = node["metadata"].get("labels", {})
        for key, value in want.get("labels", {}).items():
            if labels.get(key) != str(value):
                problems.append(f"{name}: label {key}={value} missing")
        if want["role"] == "server" and labels.get("node-role.kubernetes.io/control-plane") != "true":
            problems.append(f"{name}: lacks the control-plane role label")
        taints = {_taint_text(t) for t in node.get("spec", {}).get("taints", []) or []}
        problems.extend(f"{name}: taint {t} missing" for t in want.get("taints", []) if t not in taints)
    return problems


def kubeconfig_for(raw: str, server_url: str, cluster_name: str) -> str:
    """K3s's admin kubeconfig with the server address and the 'default' names replaced by the cluster's."""
    # Ansible hands over its own str subclasses; plain str keeps yaml.safe_dump happy.
    config = yaml.safe_load(str(raw))
    server_url, cluster_name = str(server_url), str(cluster_name)
    for cluster in config.get("clusters", []):
        cluster["name"] = cluster_name
        cluster["cluster"]["server"] = server_url
    for user in config.get("users", []):
        user["name"] = cluster_name
    for context in config.get("contexts", []):
        context["name"] = cluster_name
        context["context"]["cluster"] = cluster_name
        context["context"]["user"] = cluster_name
    config["current-context"] = cluster_name
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=True)


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict[str, Any]:
        return {"k3s_node_problems": node_problems, "k3s_kubeconfig_for": kubeconfig_for}
