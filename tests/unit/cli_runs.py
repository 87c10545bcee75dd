"""Run the real `provision` command against an inventory whose one server is on loopback, where nothing answers
(port 1) or a test's own listener does: commands fail fast at their first playbook, after ansible-runner wrote its
artifacts, without any lab. Used by the unit tests of secrets, locks, artifacts, JSON output and interrupts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

PROVISION = [sys.executable, "-m", "provisioner.cli.main"]


def loopback_inventory(folder: Path, cluster: str, port: int = 1) -> Path:
    path = folder / "edge.yml"
    path.write_text(
        f"all:\n  vars: {{provision_cluster_name: {cluster}, k3s_version: v1.28.4+k3s2}}\n  children:\n    server:\n"
        f"      hosts:\n        s1: {{ansible_host: 127.0.0.1, ansible_port: {port}}}\n"
    )
    (folder / "known_hosts").touch()
    return path


def command_line(folder: Path, *args: str, provision: list[str] | None = None) -> list[str]:
    """`provision <args> --inventory edge.yml --known-hosts known_hosts` for the inventory in `folder`."""
    return [*(provision or PROVISION), *args, "--inventory", str(folder / "edge.yml"), "--known-hosts",
            str(folder / "known_hosts")]


def environment(folder: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return os.environ | {"PROVISION_STATE_DIR": str(folder / "state"), "KUBECONFIG": str(folder / "kubeconfig")} | (
        dict(extra or {}))


def run(folder: Path, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command_line(folder, *args), capture_output=True, text=True, env=environment(folder, env),
                          timeout=300, check=False, cwd=folder)
