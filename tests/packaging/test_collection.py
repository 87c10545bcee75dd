"""The collection `provision.cluster` built from the shipped playbooks, and the AWX execution environment's build
context rendered from it by ansible-builder, both offline."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from provisioner import collection

pytestmark = [pytest.mark.unit, pytest.mark.packaging]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("collection")
    result = subprocess.run(
        [BIN / "provision", "collection", "--out", str(out), "--json"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return Path(json.loads(result.stdout)["archive"])


def test_collection_holds_every_playbook_and_role_file_and_the_playbook_modules(archive: Path) -> None:
    tracked = subprocess.run(["git", "ls-files", "playbooks"], cwd=REPO, capture_output=True, text=True, check=True)
    wanted = {line for line in tracked.stdout.splitlines() if not line.endswith("__init__.py")}
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("MANIFEST.json"))  # type: ignore[arg-type]
        runtime = yaml.safe_load(tar.extractfile("meta/runtime.yml"))  # type: ignore[arg-type]
    assert wanted - names == set()
    assert "playbooks/__init__.py" not in names
    assert {f"plugins/modules/{p.name}" for p in (REPO / "playbooks" / "library").glob("*.py")} <= names
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == ("provision", "cluster", version("provision"))
    assert runtime["requires_ansible"] == collection.requires_ansible() == ">=2.19,<2.20"
    assert archive.name == f"provision-cluster-{version('provision')}.tar.gz"


def test_execution_environment_context_renders_offline(archive: Path, tmp_path: Path) -> None:
    definition = archive.parent / "execution-environment.yml"
    ee = yaml.safe_load(definition.read_text())
    assert ee["version"] == 3
    assert ee["dependencies"]["ansible_core"]["package_pip"] == "ansible-core>=2.19,<2.20"
    assert ee["dependencies"]["galaxy"]["collections"] == [
        {"name": f"/build/collections/{archive.name}", "type": "file"}
    ]
    context = tmp_path / "context"
    result = subprocess.run(
        [BIN / "ansible-builder", "create", "-f", str(definition), "-c", str(context), "--output-filename",
         "Containerfile"],
        capture_output=True, text=True, check=False, cwd=archive.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (context / "_build" / "collections" / archive.name).read_bytes() == archive.read_bytes()
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert requirements["collections"][0]["name"] == f"/build/collections/{archive.name}"
    assert "ansible-galaxy collection install" in (context / "Containerfile").read_text()


def test_galaxy_versions_follow_semantic_versioning(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = {"0.1.0": "0.1.0", "1.2": "1.2.0", "0.2.0.dev3": "0.2.0-dev3", "1.0.0rc1": "1.0.0-rc1",
             "0+unknown": "0.0.0-unknown"}
    for given, expected in cases.items():
        monkeypatch.setattr(collection, "tool_version", lambda given=given: given)
        assert collection.galaxy_version() == expected, given
