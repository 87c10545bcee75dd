"""The crictl stand-in published in the lab's cri-tools archives: its version line (the kubeadm role reads it) and a
runtime check that fails when no runtime answers, as real crictl's does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.standin.build_kube import build_kube_standin

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def crictl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = build_kube_standin("crictl", "v1.30.1", "amd64", tmp_path_factory.mktemp("crictl") / "crictl")
    # Lab hosts run it with Debian's python3 (python3-yaml in the image); this machine's python3 may lack PyYAML,
    # so here it runs under the test interpreter.
    path.write_bytes(f"#!{sys.executable}\n".encode() + path.read_bytes().split(b"\n", 1)[1])
    return path


def test_version_line_is_crictls(crictl: Path) -> None:
    out = subprocess.run([str(crictl), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout == "crictl version v1.30.1\n"


def test_version_fails_when_no_runtime_answers(crictl: Path, tmp_path: Path) -> None:
    missing = tmp_path / "containerd.sock"
    out = subprocess.run([str(crictl), "--runtime-endpoint", f"unix://{missing}", "version"], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 1
    assert f"dial unix {missing}: connect: no such file or directory" in out.stderr
    assert "level=fatal" in out.stderr


def test_unmodelled_subcommands_say_so(crictl: Path) -> None:
    out = subprocess.run([str(crictl), "pods"], capture_output=True, text=True, check=False)
    assert out.returncode == 1 and "not modelled" in out.stderr
