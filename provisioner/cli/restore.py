"""`provision restore`: put a backup taken by `provision backup` (or `upgrade`) back onto the servers.

The flavor checks the backup and names what runs. K3s: every server stops; the first gets the state and token back
(SQLite: the database file; embedded etcd: `k3s server --cluster-reset --cluster-reset-restore-path`), the other
servers drop their etcd data and rejoin one at a time, then every inventory node must be Ready. The API is down
for the duration: asks before starting.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from provisioner.cli.common import add_connection_options, add_inventory_options, open_session
from provisioner.errors import PhaseFailedError, UsageError
from provisioner.runner import PlaybookRun


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("restore", help="restore the cluster state from a backup (stops the API meanwhile)")
    add_inventory_options(parser)
    add_connection_options(parser)
    parser.add_argument("--from", dest="source", type=Path, required=True, help="backup directory to restore")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    session = open_session(args)
    source = session.flavor.restore_source(session, args.source.expanduser().resolve())
    session.reporter.info(
        f"restore {source.path.name} ({source.description}): every server stops; the API is unavailable until it ends"
    )
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("not asking for confirmation without a terminal; rerun with --yes")
        if input("Restore? [y/N] ").strip().lower() not in ("y", "yes"):
            raise UsageError("restore cancelled; nothing was changed")
    step = session.flavor.restore_step(session, source)
    session.reporter.phase_started("restore", step.title)
    result = session.runner().run(
        PlaybookRun(playbook=step.playbook, inventory=session.inventory, extravars=dict(step.extravars))
    )
    if not result.ok:
        raise PhaseFailedError(
            phase="restore", rc=result.rc, failed=result.failed_hosts, unreachable=result.unreachable_hosts,
            resume_hint="servers may be stopped; fix the problem above and rerun the same restore",
        )
    if args.json:
        session.reporter.document({"status": "ok", "restored": str(source.path), "kind": source.kind})
    else:
        session.reporter.info(f"restored {source.path}; every inventory node is Ready")
    return 0
