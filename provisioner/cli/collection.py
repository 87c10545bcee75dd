"""`provision collection`: build the Ansible collection provision.cluster from the shipped playbooks (offline)."""

from __future__ import annotations

import argparse
from pathlib import Path

from provisioner import collection
from provisioner.cli.common import reporter_for


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "collection",
        help=f"build the Ansible collection {collection.FQCN} (for ansible-playbook, AWX) from these playbooks",
    )
    parser.add_argument(
        "--out", type=Path, default=Path(), help="folder for the archive and its execution-environment.yml (default: .)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    reporter = reporter_for(args)
    archive = collection.build(args.out)
    definition = collection.write_execution_environment(archive)
    if args.json:
        result = {"collection": collection.FQCN, "archive": str(archive), "execution_environment": str(definition)}
        reporter.document({"status": "ok"} | result)
    else:
        reporter.info(f"built {collection.FQCN} {collection.galaxy_version()}: {archive}")
        reporter.info(f"install it with: ansible-galaxy collection install {archive}")
        reporter.info(f"AWX execution environment: ansible-builder build -f {definition} (docs/awx.md)")
    return 0
