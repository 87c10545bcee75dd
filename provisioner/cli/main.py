"""The single CLI boundary: parse, dispatch, and turn errors into one red line and an exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from provisioner import paths, tool_version
from provisioner.cli import (
    backup,
    collection,
    completion,
    remove_node,
    reset,
    restore,
    schema,
    status,
    trust,
    up,
    upgrade,
    validate,
)
from provisioner.cli.common import held_locks, reporter_for, transient_files
from provisioner.cli.output import emit_text
from provisioner.errors import ExitCode, ProvisionError

COMMANDS = (
    up, status, validate, schema, trust, upgrade, backup, restore, reset, remove_node, collection, completion,
)


def version_text() -> str:
    """What `provision --version` prints: this tool, the ansible-core it drives, and where its playbooks are."""
    try:
        ansible_core = metadata.version("ansible-core")
    except metadata.PackageNotFoundError:
        ansible_core = "not installed"
    return "\n".join(
        [f"provision {tool_version()}", f"ansible-core {ansible_core}", f"playbooks {paths.playbook_dir()}"]
    )


class _VersionAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the versions and where the playbooks are read from")

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kwargs: object) -> None:
        emit_text(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provision", description="Turn edge devices or VMs into a Kubernetes cluster from one inventory file."
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reporter = reporter_for(args)
    try:
        code: int = args.handler(args)
    except ProvisionError as exc:
        if not exc.reported:
            reporter.error(str(exc), exc.details())
        return exc.exit_code
    except KeyboardInterrupt:
        reporter.error("interrupted; rerun the same command to resume", [])
        return ExitCode.INTERRUPTED
    finally:
        reporter.flush()
        for path in transient_files(args):
            path.unlink(missing_ok=True)
        for lock in held_locks(args):
            lock.release()
    return code


if __name__ == "__main__":
    sys.exit(main())
