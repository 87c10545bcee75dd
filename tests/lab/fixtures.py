"""pytest fixtures for the lab (loaded through ``pytest_plugins`` in tests/conftest.py).

* ``lab_image`` (session): the lab's base image, built once per machine and reused.
* ``mirror_dir`` (session): a release mirror tree with stand-ins for the default versions (K3s, and the
  Kubernetes trees for the kubeadm flavor: dl.k8s.io, pkgs.k8s.io, CNI manifests; about 1 s).
* ``make_lab`` (function): ``make_lab(specs, mirror=True) -> Lab``; every lab it made is destroyed
  when the test ends, pass or fail.

Without a usable Docker engine the lab fixtures FAIL, so that CI can never go green by skipping
the lab.  Set ``PROVISION_LAB_OPTIONAL=1`` (a developer laptop without Docker) to skip instead.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.lab.image import ensure_image
from tests.lab.lab import HostSpec, Lab
from tests.lab.mirror import build_mirror

MakeLab = Callable[..., Lab]
_lab_numbers = itertools.count(1)


def docker_problem() -> str | None:
    """Why the lab cannot run here, or None when Docker and debootstrap are usable."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    info = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, check=False
    )
    if info.returncode != 0:
        return f"the Docker engine does not answer: {info.stderr.strip()[:300]}"
    return None


def require_docker() -> None:
    """Fail (or, with PROVISION_LAB_OPTIONAL=1, skip) when the lab cannot run."""
    problem = docker_problem()
    if problem is None:
        return
    if os.environ.get("PROVISION_LAB_OPTIONAL") == "1":
        pytest.skip(f"lab test skipped: {problem} (PROVISION_LAB_OPTIONAL=1)")
    pytest.fail(f"lab tests need Docker: {problem}. Set PROVISION_LAB_OPTIONAL=1 to skip them.", pytrace=False)


@pytest.fixture(scope="session")
def lab_image() -> str:
    """Content tag of the amd64 lab image (built on first use, ~1.5 min; then reused)."""
    require_docker()
    return ensure_image("amd64")


@pytest.fixture(scope="session")
def mirror_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Release mirror tree with stand-ins for v1.28.4+k3s2 and v1.29.0+k3s1, and Kubernetes v1.30.2 and v1.31.1."""
    return build_mirror(tmp_path_factory.mktemp("mirror"))


def new_lab_id(prefix: str = "t") -> str:
    """Unique per process and call, short enough for container names."""
    return f"{prefix}{os.getpid()}x{next(_lab_numbers)}"


def as_specs(specs: Sequence[HostSpec | str] | int) -> list[HostSpec]:
    """Accept HostSpecs, plain names, or a count (host1..hostN)."""
    if isinstance(specs, int):
        return [HostSpec(f"host{index}") for index in range(1, specs + 1)]
    return [spec if isinstance(spec, HostSpec) else HostSpec(spec) for spec in specs]


@pytest.fixture
def make_lab(lab_image: str, mirror_dir: Path, tmp_path: Path) -> Iterator[MakeLab]:
    """Factory for labs that are torn down after the test, whatever its outcome."""
    labs: list[Lab] = []

    def factory(specs: Sequence[HostSpec | str] | int, *, mirror: bool = True) -> Lab:
        lab_id = new_lab_id()
        lab = Lab.create(lab_id, as_specs(specs), tmp_path / lab_id, mirror_dir=mirror_dir if mirror else None)
        labs.append(lab)
        return lab

    yield factory
    for lab in labs:
        lab.destroy()
