"""HA lab clusters driven through the real `provision` CLI: a datastore password in the environment, VIP helpers."""

from __future__ import annotations

import ipaddress
import json
import ssl
import subprocess
import threading
import time
import urllib.request
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


HTTP_OK = 200


class ReadyzPoller(threading.Thread):
    """GET /readyz every `interval` s, each request given `timeout` s (a client's request timeout); records
    (start time, ok, seconds to the answer). A GET that meets a reset connection or an EOF is sent once more, as
    client-go does; such retries are counted."""

    def __init__(self, url: str, context: ssl.SSLContext, interval: float = 0.2, timeout: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.url, self.context, self.interval, self.timeout = url + "/readyz", context, interval, timeout
        self.samples: list[tuple[float, bool, float]] = []
        self.errors: list[tuple[float, str]] = []  # (start time, what went wrong) of each failed poll
        self.retried: list[float] = []  # polls that met a reset connection or EOF and were sent once more
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.time()
            ok, error = self._get()
            if not ok and error and _reset_or_eof(error):
                self.retried.append(started)  # client-go retries a GET once more on a reset connection or EOF
                ok, error = self._get()
            if not ok:
                self.errors.append((started, error))
            self.samples.append((started, ok, time.time() - started))
            self.stop.wait(max(self.interval - (time.time() - started), 0))

    def _get(self) -> tuple[bool, str]:
        try:
            with urllib.request.urlopen(self.url, context=self.context, timeout=self.timeout) as answer:  # noqa: S310
                return answer.status == HTTP_OK, f"HTTP {answer.status}"
        except OSError as error:
            return False, f"{type(error).__name__}: {error}"

    def unavailable(self, start: float, end: float) -> tuple[float, int, int]:
        """Seconds without an ok answer in [start, end], failed and total samples."""
        window = [(t, ok) for t, ok, _ in self.samples if start <= t <= end]
        down, failed = 0.0, 0
        for (t, ok), (t_next, _) in zip(window, [*window[1:], (end, True)], strict=False):
            if not ok:
                down += t_next - t
                failed += 1
        return down, failed, len(window)

    def slow(self, start: float, end: float, limit: float = 1.0) -> tuple[int, float]:
        """Answers in [start, end] that took longer than `limit` s, and the slowest answer's time."""
        took = [seconds for t, ok, seconds in self.samples if start <= t <= end and ok]
        return sum(1 for seconds in took if seconds > limit), max(took, default=0.0)


def _reset_or_eof(error: str) -> bool:
    return any(mark in error for mark in ("Connection reset", "EOF occurred", "RemoteDisconnected"))
