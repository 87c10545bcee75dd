"""The single CLI boundary: parse, dispatch, and turn errors into one red line and an exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from provisioner.cli import backup, remove_node, reset, restore, schema, status, up, upgrade, validate
from provisioner.cli.output import JsonReporter, TextReporter
from provisioner.errors import ExitCode, ProvisionError

COMMANDS = (up, status, validate, schema, upgrade, backup, restore, reset, remove_node)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provision", description="Turn edge devices or VMs into a Kubernetes cluster from one inventory file."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reporter: TextReporter = JsonReporter() if getattr(args, "json", False) else TextReporter()
    try:
        code: int = args.handler(args)
    except ProvisionError as exc:
        if not exc.reported:
            reporter.error(str(exc), exc.details())
        return exc.exit_code
    except KeyboardInterrupt:
        reporter.error("interrupted; rerun the same command to resume", [])
        return ExitCode.INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
