"""Filters that let a rerun converge a host whatever happened before: owed restarts and labels/taints via the API.

K3s reads config.yaml only when it starts, and applies `node-label`/`node-taint` only when a node registers. So:
- a change to config.yaml other than labels and taints needs a restart (`needs_restart`);
- labels and taints of an existing node are set through the API (`node_meta_commands`); config.yaml keeps them so a
  node that registers again gets the same ones.

Which labels and taints provision manages is kept on the host (`provision-state.json` in K3s's config directory),
written before anything changes, so an interrupted run cannot forget a label it must remove or a restart it owes.
"""

from __future__ import annotations

from typing import Any

# config.yaml keys K3s applies at registration only; provision sets them on existing nodes through the API.
_REGISTRATION_ONLY = ("node-label", "node-taint")


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def needs_restart(current: Any, intended: Any) -> bool:
    """True when K3s must restart to read `intended`: no config yet, or a change outside labels and taints."""
    if not isinstance(current, dict):
        return True
    have = {k: v for k, v in _as_dict(current).items() if k not in _REGISTRATION_ONLY}
    want = {k: v for k, v in _as_dict(intended).items() if k not in _REGISTRATION_ONLY}
    return have != want


# Words that mark a config.yaml key whose value is a secret (token, agent-token, etcd-s3-secret-key, vpn-auth, ...):
# its value is never shown, only that it changes.
_SECRET_WORDS = ("token", "secret", "password", "auth", "access-key", "datastore-endpoint")


def _secret(name: str) -> bool:
    return any(word in name.lower() for word in _SECRET_WORDS)


def _shown_item(item: Any) -> str:
    """One list item; `name=value` items whose name looks secret (kube-apiserver-arg: oidc-client-secret=...)
    show the name only."""
    text = str(item)
    name, sep, _ = text.partition("=")
    return f"{name}=(hidden)" if sep and _secret(name) else text


def _shown_value(key: str, value: Any) -> str:
    if value is None:
        return "(unset)"
    if _secret(key):
        return "(hidden)"
    if isinstance(value, list):
        return "[" + ", ".join(_shown_item(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else _shown_item(value)


def config_changes(current: Any, intended: Any) -> list[str]:
    """One line per config.yaml key that changes ('kubelet-arg: (unset) -> [max-pods=150]'), secret values hidden."""
    have, want = _as_dict(current), _as_dict(intended)
    return [
        f"{key}: {_shown_value(key, have.get(key))} -> {_shown_value(key, want.get(key))}"
        for key in sorted(set(have) | set(want))
        if have.get(key) != want.get(key)
    ]


def _taint_parts(text: str) -> tuple[str, str, str]:
    """'key=value:Effect' (value optional) -> (key, value, effect)."""
    spec, _, effect = str(text).rpartition(":")
    key, _, value = spec.partition("=")
    return key, value, effect


def _label_keys(config: Any) -> list[str]:
    return [str(item).partition("=")[0] for item in _as_dict(config).get("node-label", []) or []]


def _taint_ids(config: Any) -> list[str]:
    return [f"{key}:{effect}" for key, _, effect in map(_taint_parts, _as_dict(config).get("node-taint", []) or [])]


def managed_node_meta(record: Any, *configs: Any) -> dict[str, list[str]]:
    """The label keys and taint ids ('key:Effect') provision manages: those of the host's state record
    ({"labels": [...], "taints": [...]}) and of the config.yaml contents given, sorted.
    """
    record = _as_dict(record)
    labels = {str(k) for k in record.get("labels", []) or []}
    taints = {str(t) for t in record.get("taints", []) or []}
    for config in configs:
        labels.update(_label_keys(config))
        taints.update(_taint_ids(config))
    return {"labels": sorted(labels), "taints": sorted(taints)}


def desired_node_meta(labels: Any, taints: Any) -> dict[str, list[str]]:
    """The state record for the inventory's labels (a mapping) and taints ('key=value:Effect' strings)."""
    return {
        "labels": sorted(str(k) for k in _as_dict(labels)),
        "taints": sorted({f"{key}:{effect}" for key, _, effect in map(_taint_parts, taints or [])}),
    }


def node_meta_commands(node: Any, labels: Any, taints: Any, managed: Any) -> list[list[str]]:
    """kubectl argument lists that give `node` the inventory's labels and taints and drop the managed ones it no
    longer lists; labels and taints set by anyone else are left alone. At most one `label` and one `taint` command.
    """
    node = _as_dict(node)
    name = str(_as_dict(node.get("metadata")).get("name", ""))
    have_labels = _as_dict(_as_dict(node.get("metadata")).get("labels"))
    want_labels = {str(k): str(v) for k, v in _as_dict(labels).items()}
    managed = _as_dict(managed)

    label_args = [f"{k}={v}" for k, v in sorted(want_labels.items()) if have_labels.get(k) != v]
    dropped = [k for k in sorted(managed.get("labels", []) or []) if k not in want_labels and k in have_labels]
    label_args += [f"{k}-" for k in dropped]

    have_taints = {
        f"{t.get('key')}:{t.get('effect')}": str(t.get("value") or "")
        for t in _as_dict(node.get("spec")).get("taints", []) or []
        if isinstance(t, dict)
    }
    want_taints = {f"{key}:{effect}": (key, value, effect) for key, value, effect in map(_taint_parts, taints or [])}
    taint_args = []
    for taint_id, (key, value, effect) in sorted(want_taints.items()):
        if have_taints.get(taint_id) != value:
            taint_args.append(f"{key}={value}:{effect}" if value else f"{key}:{effect}")
    taint_args += [
        f"{t}-" for t in sorted(managed.get("taints", []) or []) if t not in want_taints and t in have_taints
    ]

    commands = []
    if label_args:
        commands.append(["label", "node", name, *label_args, "--overwrite"])
    if taint_args:
        commands.append(["taint", "node", name, *taint_args, "--overwrite"])
    return commands


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict[str, Any]:
        return {
            "k3s_needs_restart": needs_restart,
            "k3s_config_changes": config_changes,
            "k3s_managed_node_meta": managed_node_meta,
            "k3s_desired_node_meta": desired_node_meta,
            "k3s_node_meta_commands": node_meta_commands,
        }
