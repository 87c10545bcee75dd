"""Installed like a tool: the sdist and wheel carry the playbooks; a fresh virtualenv with the wheel alone runs
`provision` from a folder that is not the checkout, up to a one-server lab cluster; the Ansible collection built by
that install runs its `up` playbook with plain ansible-playbook (no `provision` on PATH) against a second lab host.

The virtualenv takes provision's dependencies from the package index (PyPI, or pip's cache), as a user's would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import node_ready
from tests.lab.fixtures import new_lab_id, require_docker
from tests.lab.inventory import lab_inventory, write_lab_inventory
from tests.lab.lab import HostSpec, Lab

pytestmark = [pytest.mark.lab, pytest.mark.packaging, pytest.mark.xdist_group("packaging-installed-tool")]

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "provisioner", "playbooks")
RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
                   r"failed=(?P<failed>\d+)", re.MULTILINE)


def _run(argv: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _tracked_playbook_files() -> set[str]:
    listed = _run(["git", "ls-files", "playbooks"], cwd=REPO)
    assert listed.returncode == 0, listed.stderr
    return {line.removeprefix("playbooks/") for line in listed.stdout.splitlines() if line}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist built from a copy of the sources, and the wheel built from that sdist (so the sdist is complete)."""
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, source / name)
    dist = work / "dist"
    sdist = _run([sys.executable, "-c", f"import setuptools.build_meta as b; print(b.build_sdist({str(dist)!r}))"],
                 cwd=source)
    assert sdist.returncode == 0, sdist.stderr[-3000:]
    sdist_path = dist / sdist.stdout.strip().splitlines()[-1]
    wheel = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, sdist_path],
                 cwd=work)
    assert wheel.returncode == 0, wheel.stderr[-3000:]
    (wheel_path,) = dist.glob("provision-*.whl")
    return {"sdist": sdist_path, "wheel": wheel_path}


@pytest.fixture(scope="module")
def venv(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv outside the repository with the wheel and its declared dependencies only."""
    root = tmp_path_factory.mktemp("fresh") / "venv"
    made = _run([sys.executable, "-m", "venv", root], cwd=root.parent)
    assert made.returncode == 0, made.stderr
    installed = _run([root / "bin" / "python", "-m", "pip", "install", "--quiet", built["wheel"]], cwd=root.parent)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def lab(lab_image: str, mirror_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Two lab hosts: s1 for the installed CLI, c1 for the collection run with plain ansible-playbook."""
    require_docker()
    lab_id = new_lab_id("p")
    made = Lab.create(lab_id, [HostSpec("s1"), HostSpec("c1")], tmp_path_factory.mktemp(lab_id), mirror_dir)
    yield made
    made.destroy()


@pytest.fixture
def home() -> Iterator[Path]:
    """A home folder of a usual length: ssh's ControlPath (~/.ansible/cp/...) must fit a Unix socket name."""
    path = Path(tempfile.mkdtemp(prefix="home-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _clean_env(home: Path, elsewhere: Path, path: str) -> dict[str, str]:
    """No trace of the checkout or the test venv: not on PATH, not on PYTHONPATH; state and kubeconfig elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "ANSIBLE_"))}
    env.update(PATH=path, HOME=str(home), PROVISION_STATE_DIR=str(elsewhere / "state"),
               KUBECONFIG=str(elsewhere / "kubeconfig"))
    return env


def test_sdist_and_wheel_carry_every_playbook_file(built: dict[str, Path]) -> None:
    wanted = _tracked_playbook_files()
    assert {"up.yml", "roles/k3s/tasks/main.yml", "roles/k3s_upgrade/filter_plugins/k3s_upgrade_filters.py"} <= wanted
    with zipfile.ZipFile(built["wheel"]) as wheel:
        in_wheel = {n.removeprefix("provisioner/playbooks/") for n in wheel.namelist()
                    if n.startswith("provisioner/playbooks/")}
    assert wanted - in_wheel == set()
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in in_wheel)
    with tarfile.open(built["sdist"]) as sdist:
        in_sdist = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {f"playbooks/{n}" for n in wanted} - in_sdist == set()


def test_installed_tool_runs_from_elsewhere_and_installs_a_cluster(
    venv: Path, lab: Lab, home: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env(home, elsewhere, f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin")
    provision = venv / "bin" / "provision"

    version = _run([provision, "--version"], cwd=elsewhere, env=env)
    assert version.returncode == 0, version.stderr
    lines = version.stdout.splitlines()
    assert re.fullmatch(r"provision \d+\.\d+\.\d+\S*", lines[0]) and lines[1].startswith("ansible-core 2.")
    playbooks = Path(lines[2].removeprefix("playbooks "))
    assert playbooks.is_relative_to(venv) and (playbooks / "up.yml").is_file(), lines

    schema = _run([provision, "schema"], cwd=elsewhere, env=env)
    assert schema.returncode == 0 and json.loads(schema.stdout)["$schema"].startswith("https://json-schema.org/")
    samples = sorted((REPO / "inventories").glob("*.yml"))
    assert samples
    for sample in samples:
        checked = _run([provision, "validate", "--inventory", sample], cwd=elsewhere, env=env)
        assert checked.returncode == 0, f"{sample.name}: {checked.stderr}"

    inventory = write_lab_inventory(elsewhere / "edge.yml", lab_inventory(lab, ["s1"], [], cluster_name="wheel"))
    up = _run([provision, "up", "--json", "--inventory", inventory, "--known-hosts", lab.known_hosts], cwd=elsewhere,
              env=env)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    report = json.loads(up.stdout)
    assert report["status"] == "ok" and report["hosts"]["s1"]["ready"] == "yes", report
    assert report["provision_version"] == lines[0].removeprefix("provision ")
    # the runner used the fresh venv's ansible-playbook: its artifacts name that interpreter's folder
    commands = list((elsewhere / "state" / "wheel" / "runner" / "artifacts").rglob("command"))
    assert commands and all(str(venv) in c.read_text() for c in commands)


def test_collection_up_with_plain_ansible_playbook_then_rerun_changes_nothing(
    venv: Path, lab: Lab, home: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tool_env = _clean_env(home, elsewhere, f"{venv / 'bin'}:/usr/bin:/bin")
    built = _run([venv / "bin" / "provision", "collection", "--out", elsewhere / "dist", "--json"], cwd=elsewhere,
                 env=tool_env)
    assert built.returncode == 0, built.stderr
    archive = Path(json.loads(built.stdout)["archive"])
    collections = elsewhere / "collections"
    installed = _run([venv / "bin" / "ansible-galaxy", "collection", "install", archive, "-p", collections],
                     cwd=elsewhere, env=tool_env)
    assert installed.returncode == 0, installed.stderr

    # Plain Ansible: no provision on PATH, the collection found through ANSIBLE_COLLECTIONS_PATH only.
    env = _clean_env(home, elsewhere, "/usr/bin:/bin") | {"ANSIBLE_COLLECTIONS_PATH": str(collections),
                                                   "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False", "ANSIBLE_NOCOLOR": "1"}
    assert shutil.which("provision", path=env["PATH"]) is None
    inventory = write_lab_inventory(elsewhere / "site.yml", lab_inventory(lab, ["c1"], [], cluster_name="coll"))
    playbook = [venv / "bin" / "ansible-playbook", "-i", inventory, "provision.cluster.up"]

    first = _run(playbook, cwd=elsewhere, env=env)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert "ansible_collections/provision/cluster/playbooks" in _run(
        [*playbook, "--list-tasks", "-v"], cwd=elsewhere, env=env).stdout
    nodes = json.loads(lab.exec("c1", "k3s kubectl get nodes -o json", check=True).stdout)["items"]
    assert [n["metadata"]["name"] for n in nodes] == ["c1"] and node_ready(nodes[0])
    assert (elsewhere / ".provision" / "coll" / "kubeconfig").is_file()

    second = _run(playbook, cwd=elsewhere, env=env)
    assert second.returncode == 0, second.stdout[-4000:]
    recap = {m["host"]: int(m["changed"]) for m in RECAP.finditer(second.stdout)}
    assert recap.get("c1") == 0, second.stdout[-4000:]
