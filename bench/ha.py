"""Benchmark: K3s HA with `provision up` on lab hosts.

    python bench/ha.py [--scenarios etcd postgres] [--servers 3] [--agents 3]

For each scenario, the wall seconds from starting `provision up` to every node Ready (checked with kubectl
through the merged kubeconfig, i.e. through the API endpoint). The etcd scenario puts the API behind a keepalived
VIP and then measures the API's unavailability during a failover: the server holding the VIP is stopped
(`docker stop`, a clean shutdown; `--power-cut`: `docker kill`)
while `kubectl get nodes` is probed through the VIP every 0.25 s; printed are
the seconds until the VIP sits on another server with the API answering, and the longest gap between two answers.
The PostgreSQL scenario runs a real PostgreSQL (Debian's package) on this machine, bound only to the lab
network's gateway address. Numbers depend heavily on the machine's load (2 shared cores here).
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.ha.datastores import gateway_of, postgres_on
from tests.ha.harness import HaCluster, vip_for, vip_holder, wait_until
from tests.lab import image
from tests.lab.lab import HostSpec, Lab
from tests.lab.mirror import build_mirror


def _up_until_ready(cluster: HaCluster) -> float:
    began = time.monotonic()
    outcome = cluster.up()
    if outcome.rc != 0:
        raise SystemExit(f"provision up failed (rc {outcome.rc}):\n{outcome.stdout[-3000:]}\n{outcome.stderr[-3000:]}")
    if wait_until(cluster.all_ready, 300, interval=0.5) is None:
        raise SystemExit("nodes did not all become Ready")
    return time.monotonic() - began


def _failover(cluster: HaCluster, servers: list[str], vip: str, power_cut: bool) -> tuple[float, float]:
    holder = vip_holder(cluster.lab, servers, vip)
    if holder is None:
        raise SystemExit("no server holds the VIP")
    answers: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            result = subprocess.run(
                ["kubectl", "get", "nodes", "--request-timeout=1s", "-o", "name"],
                capture_output=True, env=cluster.env(), timeout=10, check=False,
            )  # fmt: skip
            if result.returncode == 0:
                answers.append(time.monotonic())
            time.sleep(0.25)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    time.sleep(2)
    stopped_at = time.monotonic()
    action = cluster.lab.kill if power_cut else cluster.lab.stop
    threading.Thread(target=action, args=(holder,), daemon=True).start()
    back = wait_until(lambda: any(t > stopped_at + 1 for t in answers)
                      and vip_holder(cluster.lab, servers, vip) not in (None, holder), 120, interval=0.25)
    time.sleep(2)
    stop.set()
    thread.join(timeout=15)
    if back is None:
        raise SystemExit("the API did not answer through the VIP after the failover")
    gaps = [b - a for a, b in itertools.pairwise(answers)]
    return back, max(gaps, default=0.0)


def run_scenario(kind: str, servers: int, agents: int, tmp: Path, mirror: Path, *, power_cut: bool) -> None:
    names_s = [f"s{i}" for i in range(1, servers + 1)]
    names_a = [f"a{i}" for i in range(1, agents + 1)]
    lab = Lab.create(f"bha{kind[:3]}", [HostSpec(n) for n in names_s + names_a], tmp / kind, mirror_dir=mirror)
    try:
        if kind == "etcd":
            vip = vip_for(lab)
            cluster = HaCluster(lab, tmp / kind / "c", servers=names_s, agents=names_a,
                                extra_vars={"keepalived_vip_address": vip})
            seconds = _up_until_ready(cluster)
            print(f"etcd     {servers} servers + {agents} agents (keepalived VIP): up -> all Ready {seconds:6.1f}s")
            moved, gap = _failover(cluster, names_s, vip, power_cut)
            how = "docker kill (power cut)" if power_cut else "docker stop (clean shutdown)"
            print(f"VIP failover, {how}: VIP moved and API answering {moved:5.1f}s after; "
                  f"longest gap between API answers {gap:5.1f}s (probe period ~0.25s + kubectl)")
            return
        with postgres_on(gateway_of(lab), lab.subnet) as store:
            cluster = HaCluster(lab, tmp / kind / "c", servers=names_s, agents=names_a,
                                extra_vars={"k3s_datastore_endpoint": store.endpoint},
                                datastore_password=store.password)
            seconds = _up_until_ready(cluster)
            print(f"postgres {servers} servers + {agents} agents: up -> all Ready {seconds:6.1f}s")
    finally:
        lab.destroy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", choices=["etcd", "postgres"], default=["etcd", "postgres"])
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--power-cut", action="store_true", help="fail the VIP holder with docker kill, not stop")
    args = parser.parse_args()
    image.ensure_image("amd64")
    with tempfile.TemporaryDirectory(prefix="provision-ha-bench-", dir="/var/tmp") as tmp:
        mirror = build_mirror(Path(tmp) / "mirror")
        for kind in args.scenarios:
            run_scenario(kind, args.servers, args.agents, Path(tmp), mirror, power_cut=args.power_cut)
    return 0


if __name__ == "__main__":
    sys.exit(main())
