"""Benchmark: a rolling upgrade of 3 servers + 7 agents (embedded etcd) from v1.28.4+k3s2 to v1.29.0+k3s1, or with
--flavor kubeadm of 3 control planes + 3 workers (stacked etcd) from v1.30.2 to v1.31.1.

    python bench/upgrade.py [--flavor k3s|kubeadm] [--servers 3] [--agents 7] [--max-unavailable 1] [--vip] [--keep]

Starts a lab (not timed), installs the old version with `provision up` (timed separately), then runs
`provision upgrade --yes --json` while a thread polls GET /readyz on the API endpoint every 0.2 s with the admin
client certificate: the first server's address, or with --vip a keepalived virtual IP that the servers hold (the
endpoint users should have in HA; through it the server phase should cost no availability). Prints the upgrade's
wall time, each phase's time, each node's time (K3s) and how long the API endpoint did not answer `ok` during the
server phase (K3s) or the whole upgrade phase (kubeadm: apply, node, then the kubelets).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.ha.harness import ReadyzPoller, vip_for
from tests.lab.fixtures import new_lab_id
from tests.lab.image import ensure_image
from tests.lab.inventory import lab_inventory, write_lab_inventory
from tests.lab.lab import HostSpec, Lab
from tests.lab.mirror import build_mirror
from tests.upgrade.helpers import NEW, LabCluster, make_cluster

KUBEADM_FROM, KUBEADM_TO = "v1.30.2", "v1.31.1"


def _client_context(kubeconfig: Path, workdir: Path) -> tuple[ssl.SSLContext, str]:
    """TLS context and server URL from the admin kubeconfig (key material written 0600 for ssl only)."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    files = {}
    for name, data in (("ca", cluster["certificate-authority-data"]), ("crt", user["client-certificate-data"]),
                       ("key", user["client-key-data"])):
        path = workdir / f"bench-{name}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64decode(data))
        files[name] = path
    context = ssl.create_default_context(cafile=str(files["ca"]))
    context.load_cert_chain(str(files["crt"]), str(files["key"]))
    return context, cluster["server"]


def _phase_window(report: dict[str, Any], name: str) -> tuple[float, float]:
    start = float(report["started"])
    for phase in report["phases"]:
        if phase["name"] == name:
            return start, start + float(phase["duration_s"])
        start += float(phase["duration_s"])
    raise KeyError(name)


def _kubeadm_cluster(lab: Lab, servers: list[str], agents: list[str], workdir: Path,
                     extra: dict[str, object]) -> LabCluster:
    data = lab_inventory(lab, servers, agents, flavor="kubeadm",
                         extra_vars={"kubeadm_version": KUBEADM_FROM, **extra})
    inventory = write_lab_inventory(workdir / "inventory.yml", data)
    return LabCluster(lab, servers, agents, inventory, workdir / "state", workdir / "kubeconfig")


def _print_report(report: dict[str, Any], poller: ReadyzPoller, url: str, wall: float, *, kubeadm: bool,
                  poll_timeout: float) -> None:
    steps = ("check + plan + upgrade + verify" if kubeadm
             else "check + plan + stage + backup + servers + agents + verify")
    print(f"upgrade wall time ({steps}): {wall:.1f}s")
    for phase in report["phases"]:
        print(f"  phase {phase['name']:<8} {phase['duration_s']:7.1f}s")
    for host, row in report.get("hosts", {}).items():
        if "upgrade_s" in row:
            print(f"  node {host:<4} {row['upgrade_s']:6.1f}s (sum of its task times in the server/agent phase)")
    begin, end = _phase_window(report, "upgrade" if kubeadm else "servers")
    down, failed, total = poller.unavailable(begin, end)
    slow, slowest = poller.slow(begin, end)
    print(f"API endpoint {url}/readyz during the {'upgrade' if kubeadm else 'server'} phase ({end - begin:.1f}s): "
          f"unavailable {down:.1f}s ({failed}/{total} polls every 0.2 s failed or got no answer within "
          f"{poll_timeout:g}s); {slow} answered but took over 1 s, the slowest {slowest:.2f}s")
    retried = sum(1 for when in poller.retried if begin <= when <= end)
    print(f"  {retried} polls met a reset connection or EOF and were sent once more (as client-go does for GETs)")
    for when, what in poller.errors:
        if begin <= when <= end:
            print(f"  failed poll at +{when - begin:.2f}s: {what[:200]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flavor", choices=["k3s", "kubeadm"], default="k3s")
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--agents", type=int, default=None, help="default 7 (K3s), 3 (kubeadm)")
    parser.add_argument("--max-unavailable", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    parser.add_argument("--vip", action="store_true", help="put the API endpoint on a keepalived virtual IP")
    parser.add_argument("--poll-timeout", type=float, default=5.0,
                        help="request timeout of each /readyz poll (a client's; kubectl has none by default)")
    args = parser.parse_args()
    kubeadm = args.flavor == "kubeadm"
    agents_n = args.agents if args.agents is not None else (3 if kubeadm else 7)
    ensure_image("amd64")
    workdir = Path(tempfile.mkdtemp(prefix="bench-upgrade-"))
    servers = [f"{'cp' if kubeadm else 's'}{i}" for i in range(1, args.servers + 1)]
    agents = [f"{'w' if kubeadm else 'a'}{i}" for i in range(1, agents_n + 1)]
    # kubeadm's preflight wants 2 CPUs and 1700 MB on a control plane.
    specs = [HostSpec(n, cpus=2, memory_mb=2048) if kubeadm and n in servers else HostSpec(n) for n in servers + agents]
    lab = Lab.create(new_lab_id("bu"), specs, workdir / "lab", mirror_dir=build_mirror(workdir / "mirror"))
    try:
        extra = {"keepalived_vip_address": vip_for(lab)} if args.vip else None
        if kubeadm:
            cluster = _kubeadm_cluster(lab, servers, agents, workdir, extra or {})
        else:
            cluster = make_cluster(lab, servers, agents, workdir, extra_vars=extra)
        started = time.monotonic()
        up = cluster.provision("up", timeout=3600)
        if up.returncode != 0:
            print(up.stderr[-3000:])
            return 1
        print(f"install (provision up, {len(servers)}+{len(agents)} nodes): {time.monotonic() - started:.1f}s")
        context, url = _client_context(cluster.state_dir / "lab" / "kubeconfig", workdir)
        poller = ReadyzPoller(url, context, timeout=args.poll_timeout)
        poller.start()
        started = time.monotonic()
        result = subprocess.run(
            cluster.args("upgrade", "--version", KUBEADM_TO if kubeadm else NEW, "--yes", "--json",
                         "--max-unavailable", str(args.max_unavailable)),
            capture_output=True, text=True, env=cluster.env(), check=False, timeout=7200,
        )
        wall = time.monotonic() - started
        poller.stop.set()
        poller.join()
        if result.returncode != 0:
            print(result.stdout[-2000:], result.stderr[-3000:])
            return 1
        _print_report(json.loads(result.stdout), poller, url, wall, kubeadm=kubeadm, poll_timeout=args.poll_timeout)
        return 0
    finally:
        if not args.keep:
            lab.destroy()


if __name__ == "__main__":
    sys.exit(main())
