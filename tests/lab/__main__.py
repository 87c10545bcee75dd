"""Command line for a hand-driven lab.

    python -m tests.lab image [--arch amd64] [--rebuild]      # build the base image once per machine
    python -m tests.lab up --hosts 3 [--arm64 1] [--id dev]   # hosts + mirror, state in .lab/<id>/
    python -m tests.lab up --servers 1 --agents 2 --id demo   # ... plus .lab/<id>/inventory.yml for provision
    python -m tests.lab up --servers 1 --agents 1 --flavor kubeadm --id kdemo   # kubeadm-sized hosts + inventory
    python -m tests.lab ls                                    # labs on this machine
    python -m tests.lab down --id dev | --all                 # remove by label

``up`` writes ``.lab/<id>/`` in the repository root: ``hosts.json`` (addresses, arch, board, mirror URL),
``id_ed25519`` (0600), ``known_hosts``, the mirror tree and, with ``--servers``/``--agents``, an
``inventory.yml`` (server1..S, agent1..A), then prints how to reach the hosts.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.lab import LAB_ID_LABEL, LAB_LABEL, image
from tests.lab.lab import HostSpec, Lab, destroy_all_labs, destroy_lab
from tests.lab.mirror import build_mirror

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_ROOT = REPO_ROOT / ".lab"


def specs_for(args: argparse.Namespace) -> list[HostSpec]:
    """server1..S, agent1..A, host1..N (amd64), then arm1..K (arm64, emulated)."""
    if args.flavor == "kubeadm":
        from tests.lab.inventory import kubeadm_specs  # noqa: PLC0415 - coordinator's module

        cluster = kubeadm_specs(args.servers, args.agents)  # control planes with 2 CPUs / 2048 MB, containerd volume
    else:
        names = [f"server{i}" for i in range(1, args.servers + 1)] + [f"agent{i}" for i in range(1, args.agents + 1)]
        cluster = [HostSpec(name) for name in names]
    hosts = [HostSpec(f"host{i}") for i in range(1, args.hosts + 1)]
    return cluster + hosts + [HostSpec(f"arm{i}", arch="arm64") for i in range(1, args.arm64 + 1)]


def cmd_image(args: argparse.Namespace) -> int:
    tag = image.ensure_image(args.arch, rebuild=args.rebuild)
    built = f"built in {image.build_seconds[args.arch]:.1f}s" if args.arch in image.build_seconds else "reused"
    print(f"lab image {tag} ({built})")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    workdir = STATE_ROOT / args.id
    started = time.monotonic()
    mirror = build_mirror(workdir / "mirror") if not args.no_mirror else None
    lab = Lab.create(args.id, specs_for(args), workdir, mirror_dir=mirror)
    elapsed = time.monotonic() - started
    print(f"lab {lab.lab_id} up in {elapsed:.1f}s  (state: {workdir})")
    servers = [name for name in lab.hosts if name.startswith("server")]
    if servers and lab.mirror_url:
        from tests.lab.inventory import lab_inventory, write_lab_inventory  # noqa: PLC0415 - coordinator's module

        agents = [name for name in lab.hosts if name.startswith("agent")]
        inventory = lab_inventory(lab, servers, agents, flavor=args.flavor)
        path = write_lab_inventory(workdir / "inventory.yml", inventory)
        print(f"inventory {path}")
    if lab.mirror_url:
        print(f"mirror   {lab.mirror_url}")
    for name, info in lab.hosts.items():
        board = f"  board={info.board}" if info.board else ""
        print(f"{name:10} {info.ip:15} {info.arch}{board}")
    first = next(iter(lab.hosts), None)
    if first:
        print("ssh: " + " ".join(lab.ssh_args(first)))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    if args.all:
        destroy_all_labs()
        if STATE_ROOT.is_dir():
            shutil.rmtree(STATE_ROOT)
        print("removed every lab container and network (label provision.lab=1)")
    else:
        destroy_lab(args.id)
        shutil.rmtree(STATE_ROOT / args.id, ignore_errors=True)
        print(f"removed lab {args.id}")
    return 0


def cmd_ls(_: argparse.Namespace) -> int:
    listing = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label={LAB_LABEL}=1",
         "--format", f'{{{{.Label "{LAB_ID_LABEL}"}}}}\t{{{{.Names}}}}\t{{{{.Status}}}}'],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    print(listing.stdout, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="create a lab with a release mirror")
    up.add_argument("--hosts", type=int, default=None, help="amd64 hosts host1..N (default 3 without --servers)")
    up.add_argument("--servers", type=int, default=0, help="amd64 hosts server1..S, written into inventory.yml")
    up.add_argument("--agents", type=int, default=0, help="amd64 hosts agent1..A, written into inventory.yml")
    up.add_argument("--arm64", type=int, default=0, help="emulated arm64 hosts (arm1..K); slow to build and run")
    up.add_argument("--flavor", choices=["k3s", "kubeadm"], default="k3s", help="the inventory's flavor (default k3s)")
    up.add_argument("--id", default="dev", help="lab id (default: dev)")
    up.add_argument("--no-mirror", action="store_true", help="skip the release mirror container")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="remove a lab (or all labs) by label")
    which = down.add_mutually_exclusive_group()
    which.add_argument("--id", default="dev")
    which.add_argument("--all", action="store_true")
    down.set_defaults(func=cmd_down)
    sub.add_parser("ls", help="list lab containers").set_defaults(func=cmd_ls)
    build = sub.add_parser("image", help="build the lab base image (reused when the recipe is unchanged)")
    build.add_argument("--arch", choices=["amd64", "arm64"], default="amd64")
    build.add_argument("--rebuild", action="store_true")
    build.set_defaults(func=cmd_image)
    args = parser.parse_args(argv)
    if args.command == "up" and args.hosts is None:
        args.hosts = 0 if args.servers or args.agents else 3
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
