"""`provision schema`: the inventory's JSON Schema, for editors."""

from __future__ import annotations

import argparse

from provisioner.cli.output import emit_json
from provisioner.inventory import json_schema


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("schema", help="print the inventory file's JSON Schema")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    emit_json(json_schema())
    return 0
