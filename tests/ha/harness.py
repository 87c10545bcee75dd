"""HA lab clusters driven through the real `provision` CLI: a datastore password in the environment, VIP helpers."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from dataclasses import dataclass

from tests.e2e.harness import LabCluster, node_ready
from tests.lab.lab import Lab


@dataclass
class HaCluster(LabCluster):
    """A LabCluster whose `provision` runs may get PROVISION_DATASTORE_PASSWORD (never written to the inventory)."""

    datastore_password: str | None = None

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("PROVISION_DATASTORE_PASSWORD", None)
        if self.datastore_password is not None:
            env["PROVISION_DATASTORE_PASSWORD"] = self.datastore_password
        return env

    def api_answers(self) -> bool:
        """kubectl through the merged kubeconfig (server = the API endpoint) lists every node as Ready."""
        result = self.kubectl("get", "nodes", "-o", "json", "--request-timeout=4s")
        if result.returncode != 0:
            return False
        return bool(json.loads(result.stdout)["items"])

    def all_ready(self) -> bool:
        result = self.kubectl("get", "nodes", "-o", "json", "--request-timeout=4s")
        if result.returncode != 0:
            return False
        items = json.loads(result.stdout)["items"]
        return {n["metadata"]["name"] for n in items} == set(self.servers + self.agents) and all(
            node_ready(n) for n in items
        )


def vip_for(lab: Lab) -> str:
    """An unused address in the lab's subnet (hosts start at .10, the mirror is .2)."""
    return str(list(ipaddress.ip_network(lab.subnet).hosts())[199])


def vip_holder(lab: Lab, hosts: list[str], vip: str) -> str | None:
    for host in hosts:
        if not lab.is_running(host):
            continue
        out = lab.exec(host, "ip -4 -o addr show dev eth0", check=False).stdout
        if f" {vip}/" in out:
            return host
    return None


def wait_until(predicate: object, timeout: float, interval: float = 1.0) -> float | None:
    """Seconds until predicate() is true, or None after timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(interval)
    return None


def k3s_file(lab: Lab, host: str, path: str) -> subprocess.CompletedProcess[str]:
    return lab.exec(host, f"cat {path}", check=False)
