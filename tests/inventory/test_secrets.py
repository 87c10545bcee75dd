"""Secrets written in an inventory never show up in problems, warnings or the model's repr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provisioner.errors import InventoryError
from provisioner.inventory import cluster_to_dict, load_inventory, to_ansible_vars

TOKEN = "K10" + "ab" * 32 + "::server:very-secret-token-value"
PASSWORD = "Sup3r-Secret-Pw"  # noqa: S105 - a fake secret to look for


def _write(tmp_path: Path, extra_vars: str) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(
        "all:\n  vars:\n    provision_cluster_name: edge\n    k3s_version: v1.28.4+k3s2\n"
        f"{extra_vars}"
        "  children:\n    server:\n      hosts:\n        s1: {ansible_host: 10.0.0.1}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.unit
def test_plain_token_is_warned_about_but_never_shown(tmp_path: Path) -> None:
    cluster = load_inventory(_write(tmp_path, f"    k3s_token: {TOKEN}\n"))
    assert cluster.k3s.token_given
    shown = repr(cluster) + json.dumps(cluster_to_dict(cluster)) + json.dumps(to_ansible_vars(cluster))
    assert "very-secret-token-value" not in shown
    assert [w.field for w in cluster.warnings] == ["k3s_token"]


@pytest.mark.unit
def test_token_differing_between_hosts_is_reported_without_values(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(
        "all:\n  vars:\n    provision_cluster_name: edge\n    k3s_version: v1.28.4+k3s2\n"
        f"    k3s_token: {TOKEN}\n"
        "  children:\n    server:\n      hosts:\n        s1:\n"
        "        s2: {k3s_token: other-secret-value}\n        s3:\n",
        encoding="utf-8",
    )
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    text = "\n".join(caught.value.details() + [w.render() for w in caught.value.warnings])
    assert "k3s_token" in text
    assert "very-secret-token-value" not in text
    assert "other-secret-value" not in text


@pytest.mark.unit
def test_datastore_password_in_url_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = _write(tmp_path, f"    k3s_datastore_endpoint: mysql://k3s:{PASSWORD}@tcp(db:3306)/k3s\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    text = "\n".join(caught.value.details())
    assert "contains a password" in text
    assert PASSWORD not in text
