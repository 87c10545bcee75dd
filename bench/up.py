"""Benchmark `provision up`: wall time of the first run and of the no-op rerun, and the orchestrator's peak memory.

    .venv/bin/python bench/up.py [--sizes 1+2 3+7 3+27] [--flavor k3s|kubeadm] [--package-source apt|binaries]

Each size N+M starts a lab of N servers and M agents (the K3s or kubeadm stand-ins, served by the lab mirror; kubeadm
control planes get 2 CPUs and 2048 MB, as kubeadm requires), runs `provision up` twice and prints one line per run.
Peak memory is the provision process's own maximum RSS and the largest child's (ansible-playbook and its
forks). Figures, not assertions: nothing here fails on slowness.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.lab.inventory import lab_inventory, write_lab_inventory  # noqa: E402
from tests.lab.lab import HostSpec, Lab  # noqa: E402
from tests.lab.mirror import build_mirror  # noqa: E402

MEASURE = """
import json, resource, sys
from provisioner.cli.main import main
code = main(sys.argv[1:])
print(json.dumps({"rc": code, "self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "child_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}), file=sys.stderr)
"""


def run_up(inventory: Path, known_hosts: Path, env: dict[str, str]) -> dict[str, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, "up", "--inventory", str(inventory), "--known-hosts", str(known_hosts),
         "--json"],
        capture_output=True, text=True, env=env, cwd=REPO, check=False,
    )  # fmt: skip
    wall = time.monotonic() - started
    usage = json.loads(result.stderr.strip().splitlines()[-1])
    report = json.loads(result.stdout)
    changed = sum(sum(p["changed"].values()) for p in report["phases"])
    phases = {p["name"]: p["duration_s"] for p in report["phases"]}
    return {"rc": usage["rc"], "wall_s": wall, "changed": changed, "self_mb": usage["self_kb"] / 1024,
            "child_mb": usage["child_kb"] / 1024, "phases": phases}  # fmt: skip


def bench(size: str, mirror: Path, root: Path, flavor: str, package_source: str) -> None:
    servers, agents = (int(n) for n in size.split("+"))
    sizing = {"cpus": 2, "memory_mb": 2048} if flavor == "kubeadm" else {}
    specs = [HostSpec(f"s{i}", **sizing) for i in range(1, servers + 1)]  # type: ignore[arg-type]
    specs += [HostSpec(f"a{i}") for i in range(1, agents + 1)]
    lab_id = f"bench{os.getpid()}x{servers}x{agents}"
    work = root / lab_id
    started = time.monotonic()
    lab = Lab.create(lab_id, specs, work, mirror_dir=mirror)
    print(f"{size}: lab of {len(specs)} hosts started in {time.monotonic() - started:.1f}s", flush=True)
    try:
        inventory = write_lab_inventory(
            work / "inventory.yml",
            lab_inventory(
                lab, [s.name for s in specs[:servers]], [s.name for s in specs[servers:]], cluster_name="bench",
                **({"flavor": "kubeadm", "extra_vars": {"kubeadm_package_source": package_source}}
                   if flavor == "kubeadm" else {}),
            ),
        )
        env = os.environ | {"PROVISION_STATE_DIR": str(work / "state"), "KUBECONFIG": str(work / "kubeconfig")}
        for label in ("up", "no-op rerun"):
            figures = run_up(inventory, lab.known_hosts, env)
            phases = " ".join(f"{k}={v:.1f}s" for k, v in figures["phases"].items())
            print(
                f"{size}: {label:<12} rc={figures['rc']} wall={figures['wall_s']:.1f}s changed={figures['changed']} "
                f"peak_rss provision={figures['self_mb']:.0f}MB largest_child={figures['child_mb']:.0f}MB [{phases}]",
                flush=True,
            )
    finally:
        lab.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["1+2", "3+7", "3+27"])
    parser.add_argument("--flavor", choices=["k3s", "kubeadm"], default="k3s")
    parser.add_argument("--package-source", choices=["apt", "binaries"], default="apt", help="kubeadm only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp:
        root = Path(tmp)
        mirror = build_mirror(root / "mirror")
        for size in args.sizes:
            bench(size, mirror, root, args.flavor, args.package_source)


if __name__ == "__main__":
    main()
