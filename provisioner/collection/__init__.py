"""The Ansible collection `provision.cluster`, built from the playbooks this package ships (no second copy is kept).

Layout of the built collection:
    galaxy.yml, README.md, meta/runtime.yml
    playbooks/<x>.yml        the phase and flow playbooks, run as provision.cluster.<x>
    playbooks/roles/<role>/  the roles, found by the playbooks beside them (their library/ and filter_plugins/ load
                             as for any role next to a playbook)
    plugins/modules/         the playbook-level modules (playbooks/library/), since Ansible does not read a
                             library/ folder beside a playbook that runs from a collection
Version and the supported ansible-core range come from this package's metadata (pyproject.toml is their one source).
"""

from __future__ import annotations

import importlib.resources
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import jinja2
import yaml
from packaging.requirements import Requirement

from provisioner import tool_version
from provisioner.errors import ProvisionError
from provisioner.paths import playbook_dir

NAMESPACE = "provision"
NAME = "cluster"
FQCN = f"{NAMESPACE}.{NAME}"
# A base image with dnf and Python 3.11 (what ansible-core 2.19 needs), as ansible-builder's documentation uses.
EE_BASE_IMAGE = "docker.io/redhat/ubi9:latest"
_SKIP = shutil.ignore_patterns("__init__.py", "__pycache__", "*.pyc")


def galaxy_version() -> str:
    """The package version as a collection version (semantic versioning: 0.1.0.dev3 becomes 0.1.0-dev3)."""
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?(.*)", tool_version())
    if match is None:
        return "0.0.0-unknown"
    major, minor, patch, rest = match.groups()
    suffix = re.sub(r"[^0-9A-Za-z.]", "", rest.lstrip(".+-"))
    return f"{major}.{minor}.{patch or 0}" + (f"-{suffix}" if suffix else "")


def requires_ansible() -> str:
    """The ansible-core range this package declares, in the form meta/runtime.yml takes."""
    return _requirement("ansible-core")


def _requirement(name: str) -> str:
    """The version range this package declares for a dependency (e.g. '>=2.19,<2.20'), lower bound first."""
    for text in metadata.requires("provision") or ():
        requirement = Requirement(text)
        if requirement.name == name and requirement.marker is None:
            return ",".join(sorted((str(s) for s in requirement.specifier), key=lambda s: s[0] != ">"))
    raise ProvisionError(f"the installed provision declares no {name} requirement; reinstall it")


def stage(dest: Path) -> Path:
    """Write the collection's source tree into `dest` (created); return it."""
    source = playbook_dir()
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest / "playbooks", ignore=_SKIP)
    modules = dest / "plugins" / "modules"
    modules.mkdir(parents=True)
    for module in sorted((source / "library").glob("*.py")):
        shutil.copy2(module, modules / module.name)
    (dest / "meta").mkdir()
    (dest / "meta" / "runtime.yml").write_text(
        yaml.safe_dump({"requires_ansible": requires_ansible()}, sort_keys=False), encoding="utf-8"
    )
    readme = importlib.resources.files(__name__).joinpath("README.md").read_text(encoding="utf-8")
    (dest / "README.md").write_text(readme, encoding="utf-8")
    galaxy = {
        "namespace": NAMESPACE,
        "name": NAME,
        "version": galaxy_version(),
        "readme": "README.md",
        "authors": ["provision developers"],
        "description": "Install K3s clusters (single server, HA on embedded etcd or an external datastore) on edge "
        "devices and VMs from one inventory; the content the provision CLI runs.",
        "license": ["Apache-2.0"],
        "tags": ["k3s", "kubernetes", "edge", "raspberrypi", "cluster"],
        "dependencies": {},
        "build_ignore": [],
    }
    (dest / "galaxy.yml").write_text(yaml.safe_dump(galaxy, sort_keys=False), encoding="utf-8")
    return dest


def build(output_dir: Path) -> Path:
    """Build the collection archive into `output_dir` with ansible-galaxy (offline); return the archive's path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    galaxy = shutil.which("ansible-galaxy", path=str(Path(sys.executable).parent)) or shutil.which("ansible-galaxy")
    if galaxy is None:
        raise ProvisionError("ansible-galaxy not found: it comes with ansible-core; reinstall provision")
    archive = output_dir / f"{NAMESPACE}-{NAME}-{galaxy_version()}.tar.gz"
    with tempfile.TemporaryDirectory(prefix="provision-collection-") as tmp:
        root = stage(Path(tmp) / NAMESPACE / NAME)
        result = subprocess.run(
            [galaxy, "collection", "build", "--force", "--output-path", str(output_dir.resolve()), str(root)],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0 or not archive.is_file():
        raise ProvisionError(f"ansible-galaxy collection build failed: {(result.stderr or result.stdout).strip()}")
    return archive


def write_execution_environment(archive: Path) -> Path:
    """An ansible-builder (schema 3) definition beside `archive` that installs it with the ansible-core and
    ansible-runner ranges this package declares. Returns its path."""
    template = importlib.resources.files(__name__).joinpath("execution-environment.yml.j2").read_text(encoding="utf-8")
    # The output is YAML, not HTML: nothing to escape; an unknown name is an error.
    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701
    )
    text = environment.from_string(template).render(
        version=galaxy_version(),
        base_image=EE_BASE_IMAGE,
        ansible_core=_requirement("ansible-core"),
        ansible_runner=_requirement("ansible-runner"),
        archive=archive.name,
    )
    path = archive.parent / "execution-environment.yml"
    path.write_text(text, encoding="utf-8")
    return path
