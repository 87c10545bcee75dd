"""The k3s role's converge filters: which config changes need a restart, and the kubectl calls that give an existing
node the inventory's labels and taints without touching anyone else's."""

from __future__ import annotations

import pytest

from tests.playbook_code import load

pytestmark = pytest.mark.unit

converge = load("roles/k3s/filter_plugins/k3s_converge.py")

BASE = {"node-name": "a1", "server": "https://10.0.0.1:6443"}


def node(labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None) -> dict:
    return {"metadata": {"name": "a1", "labels": labels or {}}, "spec": {"taints": taints or []}}


def test_labels_and_taints_alone_need_no_restart_other_keys_do() -> None:
    labelled = BASE | {"node-label": ["tier=edge"], "node-taint": ["gpu=yes:NoSchedule"]}
    assert not converge.needs_restart(BASE, labelled)
    assert not converge.needs_restart(labelled, BASE)
    assert converge.needs_restart(BASE, BASE | {"kubelet-arg": ["max-pods=150"]})
    assert converge.needs_restart(None, BASE)  # no config.yaml yet: K3s has never read one


def test_desired_labels_and_taints_are_set_others_left_alone() -> None:
    have = node({"owner": "me", "tier": "core"}, [{"key": "maint", "effect": "NoSchedule"}])
    commands = converge.node_meta_commands(have, {"tier": "edge"}, ["dedicated=gpu:NoSchedule"], {})
    assert commands == [
        ["label", "node", "a1", "tier=edge", "--overwrite"],
        ["taint", "node", "a1", "dedicated=gpu:NoSchedule", "--overwrite"],
    ]


def test_managed_ones_the_inventory_dropped_are_removed_only_when_present() -> None:
    have = node({"tier": "edge", "owner": "me"}, [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    managed = {"labels": ["tier", "zone"], "taints": ["dedicated:NoSchedule", "old:NoExecute"]}
    assert converge.node_meta_commands(have, {}, [], managed) == [
        ["label", "node", "a1", "tier-", "--overwrite"],
        ["taint", "node", "a1", "dedicated:NoSchedule-", "--overwrite"],
    ]


def test_a_changed_taint_value_or_effect_is_rewritten() -> None:
    have = node(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    managed = {"taints": ["dedicated:NoSchedule"]}
    assert converge.node_meta_commands(have, {}, ["dedicated=ml:NoSchedule"], managed) == [
        ["taint", "node", "a1", "dedicated=ml:NoSchedule", "--overwrite"],
    ]
    assert converge.node_meta_commands(have, {}, ["dedicated=gpu:NoExecute"], managed) == [
        ["taint", "node", "a1", "dedicated=gpu:NoExecute", "dedicated:NoSchedule-", "--overwrite"],
    ]


def test_a_node_already_as_described_needs_no_call() -> None:
    have = node({"tier": "edge"}, [{"key": "only", "effect": "NoSchedule"}])
    assert converge.node_meta_commands(have, {"tier": "edge"}, ["only:NoSchedule"], {"labels": ["tier"]}) == []


def test_managed_set_is_the_union_of_record_and_configs() -> None:
    record = {"labels": ["old"], "taints": ["t:NoSchedule"]}
    config = {"node-label": ["tier=edge"], "node-taint": ["gpu=yes:NoExecute"]}
    assert converge.managed_node_meta(record, config, None) == {
        "labels": ["old", "tier"], "taints": ["gpu:NoExecute", "t:NoSchedule"],
    }
    assert converge.desired_node_meta({"b": 1, "a": 2}, ["x=1:NoSchedule", "x=2:NoSchedule"]) == {
        "labels": ["a", "b"], "taints": ["x:NoSchedule"],
    }


def test_config_changes_name_each_key_and_hide_secret_values() -> None:
    before = BASE | {"etcd-s3-secret-key": "old-secret", "node-label": ["tier=edge"]}
    after = BASE | {"etcd-s3-secret-key": "new-secret", "node-label": ["tier=core"], "kubelet-arg": ["max-pods=150"]}
    lines = converge.config_changes(before, after)
    assert lines == [
        "etcd-s3-secret-key: (hidden) -> (hidden)",
        "kubelet-arg: (unset) -> [max-pods=150]",
        "node-label: [tier=edge] -> [tier=core]",
    ]
    assert converge.config_changes(BASE, BASE) == []


def test_secret_values_inside_argument_lists_are_hidden_too() -> None:
    before = BASE | {"kube-apiserver-arg": ["oidc-client-id=k3s", "oidc-client-secret=s3cr3t"]}
    after = BASE | {"kube-apiserver-arg": ["oidc-client-id=k3s", "oidc-client-secret=n3w"]}
    lines = converge.config_changes(before, after)
    assert lines == [
        "kube-apiserver-arg: [oidc-client-id=k3s, oidc-client-secret=(hidden)] -> "
        "[oidc-client-id=k3s, oidc-client-secret=(hidden)]"
    ]
    assert "s3cr3t" not in " ".join(lines) and "n3w" not in " ".join(lines)
