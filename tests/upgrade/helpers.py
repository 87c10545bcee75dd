"""Helpers for the upgrade lab tests and the upgrade bench: run the CLI, read what the hosts' journals saw."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.lab.inventory import lab_inventory, write_lab_inventory
from tests.lab.lab import Lab

OLD = "v1.28.4+k3s2"
NEW = "v1.29.0+k3s1"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LabCluster:
    """A lab plus the files the CLI needs: inventory, known_hosts, a private state dir and kubeconfig."""

    lab: Lab
    servers: list[str]
    agents: list[str]
    inventory: Path
    state_dir: Path
    kubeconfig: Path

    def env(self) -> dict[str, str]:
        return os.environ | {"PROVISION_STATE_DIR": str(self.state_dir), "KUBECONFIG": str(self.kubeconfig)}

    def args(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "provisioner.cli.main", *extra[:1], "-i", str(self.inventory),
                "--known-hosts", str(self.lab.known_hosts), *extra[1:]]

    def provision(self, *extra: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.args(*extra), capture_output=True, text=True, env=self.env(), cwd=ROOT,
                              timeout=timeout, check=False)

    def start_provision(self, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.args(*extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env(), cwd=ROOT)

    def kubectl(self, *args: str, via: str | None = None) -> subprocess.CompletedProcess[str]:
        """kubectl on a server through docker exec (a back door for assertions only)."""
        return self.lab.exec(via or self.servers[0], "k3s kubectl " + " ".join(args))

    def binary_version(self, host: str) -> str:
        out = self.lab.exec(host, "/usr/local/bin/k3s --version").stdout
        match = re.search(r"v\d+\.\d+\.\d+\+k3s\d+", out)
        return match.group(0) if match else ""


def make_cluster(
    lab: Lab, servers: Sequence[str], agents: Sequence[str], workdir: Path, extra_vars: dict[str, object] | None = None
) -> LabCluster:
    inventory = write_lab_inventory(
        workdir / "inventory.yml", lab_inventory(lab, servers, agents, version=OLD, extra_vars=extra_vars)
    )
    return LabCluster(lab, list(servers), list(agents), inventory, workdir / "state", workdir / "kubeconfig")


@dataclass(frozen=True)
class Restart:
    """When a host's old k3s stopped and the new version started, from its journal (realtime, shared clock)."""

    host: str
    stopped: float
    started: float


_LINE = re.compile(r"^(\d+\.\d+) \S+ \S+: (.*)$")


def journal(lab: Lab, host: str) -> list[tuple[float, str]]:
    out = lab.exec(host, "journalctl -u k3s -u k3s-agent -o short-unix --no-pager").stdout
    lines = []
    for raw in out.splitlines():
        match = _LINE.match(raw)
        if match:
            lines.append((float(match.group(1)), match.group(2)))
    return lines


def restarts_to(lab: Lab, host: str, version: str) -> list[Restart]:
    """Every start of `version` on `host`, with the SIGTERM of the process it replaced."""
    found: list[Restart] = []
    last_term = 0.0
    for stamp, text in journal(lab, host):
        if "Received SIGTERM" in text:
            last_term = stamp
        elif re.search(rf"Starting k3s (agent )?{re.escape(version)} ", text):
            found.append(Restart(host, last_term, stamp))
    return found


def wait_for(predicate: object, timeout: float, interval: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False


def node_ready(cluster: LabCluster, name: str, via: str | None = None) -> bool:
    result = cluster.kubectl("get", "node", name, "-o",
                             "jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}'", via=via)
    return result.returncode == 0 and result.stdout.strip() == "True"
