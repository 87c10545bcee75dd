"""Drive the real `provision` command against a lab, the way a user would, and read back what it reported."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.lab.inventory import lab_inventory, write_lab_inventory
from tests.lab.lab import Lab

PROVISION = [sys.executable, "-m", "provisioner.cli.main"]
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        return json.loads(self.stdout)

    def changed_total(self) -> int:
        return sum(sum(p["changed"].values()) for p in self.report["phases"])

    def changed_by_host(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for phase in self.report["phases"]:
            for host, count in phase["changed"].items():
                totals[host] = totals.get(host, 0) + count
        return totals


@dataclass
class LabCluster:
    """A lab plus an inventory for it and an isolated state dir and kubeconfig."""

    lab: Lab
    workdir: Path
    servers: list[str]
    agents: list[str]
    name: str = "lab"
    extra_vars: dict[str, Any] = field(default_factory=dict)
    flavor: str = "k3s"
    host_vars: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_inventory()

    @property
    def inventory(self) -> Path:
        return self.workdir / "inventory.yml"

    @property
    def state_dir(self) -> Path:
        return self.workdir / "state"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def write_inventory(self) -> None:
        data = lab_inventory(self.lab, self.servers, self.agents, cluster_name=self.name, extra_vars=self.extra_vars,
                             host_vars=self.host_vars, **({"flavor": self.flavor} if self.flavor != "k3s" else {}))
        write_lab_inventory(self.inventory, data)

    def env(self) -> dict[str, str]:
        return os.environ | {"PROVISION_STATE_DIR": str(self.state_dir), "KUBECONFIG": str(self.kubeconfig)}

    def provision(self, *args: str, timeout: float = 900, env: dict[str, str] | None = None) -> Outcome:
        argv = [*PROVISION, *args]
        if "--inventory" not in args and args[0] not in ("schema",):
            argv += ["--inventory", str(self.inventory)]
        result = subprocess.run(
            argv, capture_output=True, text=True, env=self.env() | (env or {}), cwd=REPO, timeout=timeout, check=False
        )
        return Outcome(result.returncode, result.stdout, result.stderr)

    def up(self, *args: str) -> Outcome:
        return self.provision("up", "--known-hosts", str(self.lab.known_hosts), "--json", *args)

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "--context", self.name, *args], capture_output=True, text=True, env=self.env(), timeout=60,
            check=False,
        )

    def nodes(self) -> dict[str, dict[str, Any]]:
        result = self.kubectl("get", "nodes", "-o", "json")
        assert result.returncode == 0, result.stderr
        return {n["metadata"]["name"]: n for n in json.loads(result.stdout)["items"]}

    def kubeconfig_data(self) -> dict[str, Any]:
        return yaml.safe_load(self.kubeconfig.read_text())


INTERRUPT_PLUGIN = Path(__file__).resolve().parent / "interrupt_plugin"


def interrupted_after(cluster: LabCluster, task: str, host: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`provision <args>`, Ctrl-C'd (SIGINT to its process group) right after `task` changed `host`
    (tests/e2e/interrupt_plugin, enabled only here)."""
    argv = [*PROVISION, *args, "--inventory", str(cluster.inventory)]
    process = subprocess.Popen(
        argv, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        env=cluster.env() | {
            "ANSIBLE_CALLBACK_PLUGINS": str(INTERRUPT_PLUGIN),
            "ANSIBLE_CALLBACKS_ENABLED": "lab_interrupt",
            "LAB_INTERRUPT_TASK": task,
            "LAB_INTERRUPT_HOST": host,
        },
    )
    # start_new_session: the command leads its own process group, so the SIGINT reaches it and not pytest.
    try:
        stdout, stderr = process.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def node_ready(node: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


def unit_invocation(lab: Lab, host: str, unit: str) -> str:
    """systemd's InvocationID changes on every (re)start of a unit: equal IDs mean it was not restarted."""
    return lab.exec(host, f"systemctl show --property=InvocationID --value {unit}", check=True).stdout.strip()


# ------------------------------------------------------------------------------------- host snapshots, reports
SNAPSHOT_SCRIPT = Path(__file__).resolve().parents[1] / "lab" / "host_snapshot.sh"
# What changes when a lab host's container restarts, whatever the product did: Docker's embedded DNS (127.0.0.11)
# listens on new ports with new DNAT rules, and the lab's one-shot host-key unit is inactive after a restart.
LAB_RESTART_NOISE = re.compile(r"127\.0\.0\.11|^ssh-hostkeys\.service (active|inactive) ")


def snapshot(lab: Lab, host: str) -> dict[str, list[str]]:
    """The host's cluster-relevant state by section (tests/lab/host_snapshot.sh, also used by molecule/reset)."""
    out = lab.exec(host, ["bash", "-s"], input=SNAPSHOT_SCRIPT.read_text(), check=True).stdout
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in out.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        elif line.strip() and not LAB_RESTART_NOISE.search(line):
            current.append(line)
    return sections


def diff(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, dict[str, list[str]]]:
    changes = {}
    for key, old in before.items():
        added = sorted(set(after[key]) - set(old))
        gone = sorted(set(old) - set(after[key]))
        if added or gone:
            changes[key] = {"left behind": added, "missing": gone}
    return changes


def report_of(cluster: LabCluster, command: str) -> dict[str, Any]:
    reports = sorted((cluster.state_dir / cluster.name / "reports").glob(f"*-{command}.json"))
    assert reports, f"no {command} report"
    assert reports[-1].stat().st_mode & 0o777 == 0o600
    return dict(json.loads(reports[-1].read_text()))
