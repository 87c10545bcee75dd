"""Benchmark: adding one agent to an existing cluster, and resetting hosts.

    python bench/add_node.py [--sizes 3+7 3+27] [--no-reset]

For each size SxA: install S servers (embedded etcd) and A agents with `provision up`, then add one agent to the
inventory and time a second `provision up` (which touches only the new host and reads the token from one server),
print which hosts the runner reported, then time `provision reset --yes` of the whole cluster and print seconds per
host. Numbers depend heavily on the machine's load (2 shared cores here). Everything runs on lab hosts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import LabCluster, Outcome
from tests.lab import image
from tests.lab.lab import HostSpec, Lab
from tests.lab.mirror import build_mirror


def _must(outcome: Outcome, what: str) -> Outcome:
    if outcome.rc != 0:
        raise SystemExit(f"{what} failed (rc {outcome.rc}):\n{outcome.stdout[-3000:]}\n{outcome.stderr[-3000:]}")
    return outcome


def run_size(servers: int, agents: int, mirror: Path, work: Path, reset: bool) -> None:
    names_s = [f"s{i}" for i in range(1, servers + 1)]
    names_a = [f"a{i}" for i in range(1, agents + 1)]
    lab = Lab.create(f"badd{servers}x{agents}", [HostSpec(n) for n in [*names_s, *names_a, "new"]], work,
                     mirror_dir=mirror)
    try:
        cluster = LabCluster(lab, work / "cluster", servers=names_s, agents=names_a)
        began = time.monotonic()
        _must(cluster.up(), "initial up")
        install = time.monotonic() - began
        cluster.agents = [*names_a, "new"]
        cluster.write_inventory()
        began = time.monotonic()
        added = _must(cluster.up(), "up with the new agent")
        add = time.monotonic() - began
        contacted = sorted({h for p in added.report["phases"] for h in p["changed"]})
        print(f"{servers}+{agents}: install {install:.1f}s; add one agent {add:.1f}s; hosts contacted: {contacted}")
        if reset:
            hosts = servers + agents + 1
            began = time.monotonic()
            _must(cluster.provision("reset", "--yes", "--json", "--known-hosts", str(lab.known_hosts)), "reset")
            took = time.monotonic() - began
            print(f"{servers}+{agents}: reset of {hosts} hosts {took:.1f}s ({took / hosts:.2f}s per host, parallel)")
    finally:
        lab.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["3+7", "3+27"], help="SERVERS+AGENTS before adding one")
    parser.add_argument("--no-reset", action="store_true", help="skip the reset timing")
    args = parser.parse_args()
    image.ensure_image("amd64")
    with tempfile.TemporaryDirectory(prefix="bench-add-") as tmp:
        mirror = build_mirror(Path(tmp) / "mirror")
        for size in args.sizes:
            servers, agents = (int(x) for x in size.split("+"))
            run_size(servers, agents, mirror, Path(tmp) / size, reset=not args.no_reset)


if __name__ == "__main__":
    main()
