"""`provision validate`: check the inventory without contacting any host."""

from __future__ import annotations

import argparse

from provisioner.cli.common import add_inventory_options, reporter_for
from provisioner.inventory import load_inventory


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("validate", help="check the inventory file (no SSH)")
    add_inventory_options(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    reporter = reporter_for(args)
    cluster = load_inventory(args.inventory, flavor_override=args.flavor)
    warnings = [w.render() for w in cluster.warnings]
    if args.json:
        reporter.document({"status": "ok", "cluster": cluster.name, "hosts": len(cluster.hosts), "warnings": warnings})
        return 0
    for warning in warnings:
        reporter.warn(warning)
    reporter.info(
        f"{args.inventory}: cluster {cluster.name!r} ({cluster.flavor}), "
        f"{len(cluster.servers)} server(s), {len(cluster.agents)} agent(s): valid"
    )
    return 0
