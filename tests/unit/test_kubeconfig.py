"""Merging never clobbers: other entries survive, this cluster's entries are replaced, files stay 0600."""

from pathlib import Path

import pytest
import yaml

from provisioner import kubeconfig

pytestmark = pytest.mark.unit


def _config(name: str, server: str, current: str | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server}}],
        "users": [{"name": name, "user": {"token": f"t-{name}"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": current or name,
        "preferences": {"colors": True},
    }


def test_merge_keeps_other_contexts_and_replaces_own(tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text(yaml.safe_dump(_config("work", "https://work:6443")))
    source = tmp_path / "new"
    source.write_text(yaml.safe_dump(_config("edge", "https://10.0.0.1:6443")))
    assert kubeconfig.merge(source, target) == ("edge", "edge")
    source.write_text(yaml.safe_dump(_config("edge", "https://10.0.0.2:6443")))
    kubeconfig.merge(source, target)
    merged = yaml.safe_load(target.read_text())
    assert [c["name"] for c in merged["clusters"]] == ["work", "edge"]
    assert merged["clusters"][1]["cluster"]["server"] == "https://10.0.0.2:6443"
    assert merged["users"][0]["user"]["token"] == "t-work"
    assert merged["preferences"] == {"colors": True}
    assert merged["current-context"] == "edge"
    assert target.stat().st_mode & 0o777 == 0o600


def test_merge_without_switch_keeps_current_context(tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text(yaml.safe_dump(_config("work", "https://work:6443")))
    source = tmp_path / "new"
    source.write_text(yaml.safe_dump(_config("edge", "https://e:6443")))
    assert kubeconfig.merge(source, target, switch_context=False) == ("edge", "work")
    assert yaml.safe_load(target.read_text())["current-context"] == "work"
    fresh = tmp_path / "fresh"
    assert kubeconfig.merge(source, fresh, switch_context=False) == ("edge", "edge")  # none before: this one


def test_merge_into_missing_file_creates_it(tmp_path: Path) -> None:
    source = tmp_path / "new"
    source.write_text(yaml.safe_dump(_config("edge", "https://e:6443")))
    target = tmp_path / "sub" / "config"
    kubeconfig.merge(source, target)
    assert yaml.safe_load(target.read_text())["contexts"][0]["name"] == "edge"


def test_broken_target_is_refused_and_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text("clusters: [unclosed\n")
    source = tmp_path / "new"
    source.write_text(yaml.safe_dump(_config("edge", "https://e:6443")))
    with pytest.raises(kubeconfig.KubeconfigError, match="not valid YAML"):
        kubeconfig.merge(source, target)
    assert target.read_text() == "clusters: [unclosed\n"


def test_remove_context_only_removes_own_entries(tmp_path: Path) -> None:
    target = tmp_path / "config"
    both = _config("work", "https://work:6443")
    edge = _config("edge", "https://e:6443")
    for key in ("clusters", "users", "contexts"):
        both[key] += edge[key]
    both["current-context"] = "edge"
    target.write_text(yaml.safe_dump(both))
    assert kubeconfig.remove_context(target, "edge") is True
    left = yaml.safe_load(target.read_text())
    assert [c["name"] for c in left["contexts"]] == ["work"]
    assert left["current-context"] == ""
    assert kubeconfig.remove_context(target, "edge") is False
