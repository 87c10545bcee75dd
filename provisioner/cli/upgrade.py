"""`provision upgrade`: the cluster's flavor runs the whole flow (read-only check, plan shown before anything
changes, refusals, --dry-run, confirmation, phases, report). K3s: flavors/k3s/upgrade.py; kubeadm:
flavors/kubeadm/upgrade.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from provisioner.cli.common import add_connection_options, add_inventory_options, open_session
from provisioner.errors import UsageError
from provisioner.flavors import UpgradeRequest


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("upgrade", help="upgrade every node: servers (control planes) one at a time, then agents")
    add_inventory_options(parser)
    add_connection_options(parser)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--version", dest="target_version", help="target release, e.g. v1.29.0+k3s1 (K3s) or v1.31.1 (kubeadm)"
    )
    target.add_argument("--channel", dest="target_channel", help="K3s release channel to follow, e.g. stable or v1.29")
    parser.add_argument("--max-unavailable", type=int, default=1, help="agents upgraded at the same time (default 1)")
    parser.add_argument("--drain-timeout", type=int, default=120, help="seconds a node's drain may take (default 120)")
    parser.add_argument(
        "--no-drain", action="store_true",
        help="do not cordon and drain nodes (not recommended; with --strategy plan the agents are not drained, "
        "the controller still cordons each node)",
    )
    parser.add_argument("--no-backup", action="store_true", help="K3s: skip the backup taken before the first server")
    parser.add_argument(
        "--dry-run", "--check", dest="dry_run", action="store_true",
        help="show the plan and the safety checks; change nothing",
    )
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--strategy", choices=["plan", "rolling"], default="rolling",
        help="rolling (default): provision upgrades each node over SSH; plan (K3s): apply system-upgrade-controller "
        "Plans (the controller must already be installed) and the nodes upgrade themselves",
    )
    parser.add_argument(
        "--plan-out", type=Path, metavar="FILE",
        help="with --strategy plan: write the Plans to FILE (with --dry-run instead of printing them)",
    )
    parser.set_defaults(handler=run)


def upgrade_request(args: argparse.Namespace) -> UpgradeRequest:
    """The parsed command line as the typed request flavors take."""
    if args.max_unavailable < 1:
        raise UsageError(f"--max-unavailable must be at least 1, not {args.max_unavailable}")
    return UpgradeRequest(
        target_version=args.target_version,
        target_channel=args.target_channel,
        max_unavailable=args.max_unavailable,
        drain_timeout_s=args.drain_timeout,
        drain=not args.no_drain,
        backup=not args.no_backup,
        dry_run=args.dry_run,
        assume_yes=args.yes,
        json=args.json,
        strategy=args.strategy,
        plan_out=args.plan_out,
    )


def run(args: argparse.Namespace) -> int:
    request = upgrade_request(args)
    session = open_session(args)
    return session.flavor.upgrade(session, request)
