"""Benchmark: wall time of probe_hosts() against lab hosts over real SSH.

    python bench/probe.py [--sizes 3 10] [--rounds 3] [--parallel 20]

For each size, starts a lab of that many hosts (not timed), probes them ``--rounds`` times and prints the
fastest, median and slowest wall time plus the slowest single host of the median round, then removes the lab.
Also probes once with parallel=1 to show what the parallelism buys.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provisioner.inventory.model import Host
from provisioner.probe import HostFacts, probe_hosts
from provisioner.ssh_config import SshSettings
from tests.lab.lab import HostSpec, Lab


def timed_probe(hosts: list[Host], ssh: SshSettings, parallel: int) -> tuple[float, dict[str, HostFacts]]:
    started = time.monotonic()
    facts = probe_hosts(hosts, ssh, parallel=parallel)
    return time.monotonic() - started, facts


def bench_size(size: int, rounds: int, parallel: int, workdir: Path) -> None:
    lab_id = f"pbench{size}"
    lab = Lab.create(lab_id, [HostSpec(f"host{i}") for i in range(1, size + 1)], workdir / lab_id)
    try:
        hosts = [
            Host(name=name, address=info.ip, port=22, user="root", role="server", ssh_key=lab.key_path)
            for name, info in lab.hosts.items()
        ]
        ssh = SshSettings(known_hosts=lab.known_hosts)
        runs = [timed_probe(hosts, ssh, parallel) for _ in range(rounds)]
        walls = sorted(wall for wall, _ in runs)
        failed = sorted({name for _, facts in runs for name, fact in facts.items() if not fact.reachable})
        median_facts = sorted(runs, key=lambda run: run[0])[len(runs) // 2][1]
        slowest_host = max(fact.elapsed_s for fact in median_facts.values())
        serial_wall, _ = timed_probe(hosts, ssh, 1)
        print(
            f"{size:3d} hosts: min {walls[0]:.2f}s  median {statistics.median(walls):.2f}s  max {walls[-1]:.2f}s"
            f"  (slowest host {slowest_host:.2f}s; parallel=1: {serial_wall:.2f}s)"
            + (f"  UNREACHABLE: {', '.join(failed)}" if failed else "")
        )
    finally:
        lab.destroy()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="provision-probe-bench-") as tmp:
        for size in args.sizes:
            bench_size(size, args.rounds, args.parallel, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
