"""`provision backup`: the cluster state and what restoring it needs onto this machine (K3s: the etcd snapshot or
SQLite copy and the server token); the flavor says what it runs, or why it cannot."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from provisioner.cli.common import add_connection_options, add_inventory_options, open_session
from provisioner.errors import PhaseFailedError, UsageError
from provisioner.runner import PlaybookRun


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("backup", help="back up the cluster state and token to this machine")
    add_inventory_options(parser)
    add_connection_options(parser)
    parser.add_argument("--dest", type=Path, help="directory receiving the backup (default: <state dir>/backups)")
    parser.add_argument("--name", help="name of the backup (default: <cluster>-<UTC time>)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    session = open_session(args)
    dest_root = (args.dest or session.state.root / "backups").expanduser().resolve()
    name = args.name or f"{session.cluster.name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    if "/" in name or name in ("", ".", ".."):
        raise UsageError(f"--name {name!r}: use a plain directory name")
    step = session.flavor.backup_step(session, dest_root, name)
    session.reporter.phase_started("backup", step.title)
    result = session.runner().run(
        PlaybookRun(playbook=step.playbook, inventory=session.inventory, extravars=dict(step.extravars))
    )
    if not result.ok:
        raise PhaseFailedError(
            phase="backup", rc=result.rc, failed=result.failed_hosts, unreachable=result.unreachable_hosts,
            resume_hint="nothing on the cluster was changed; fix the problem above and rerun",
        )
    path = dest_root / name
    if args.json:
        files = sorted(p.name for p in path.iterdir())
        session.reporter.document({"status": "ok", "backup": str(path), "files": files})
    else:
        session.reporter.info(f"backup written to {path} (token file mode 0600; keep it secret)")
    return 0
