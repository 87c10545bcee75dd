"""`provision restore`: put a backup taken by `provision backup` (or `upgrade`) back onto the servers.

Every server stops; the first gets the state and token back (SQLite: the database file; embedded etcd:
`k3s server --cluster-reset --cluster-reset-restore-path`), the other servers drop their etcd data and rejoin
one at a time, then every inventory node must be Ready. The API is down for the duration: asks before starting.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from provisioner.cli.common import add_connection_options, add_inventory_options, open_session
from provisioner.errors import PhaseFailedError, UsageError
from provisioner.runner import PlaybookRun

_KINDS = {"sqlite": "state.db", "etcd-snapshot": "etcd-snapshot"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("restore", help="restore the cluster state from a backup (stops the API meanwhile)")
    add_inventory_options(parser)
    add_connection_options(parser)
    parser.add_argument("--from", dest="source", type=Path, required=True, help="backup directory to restore")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(handler=run)


def _read_manifest(source: Path) -> dict[str, str]:
    """The backup must be complete and private before anything stops."""
    manifest_path = source / "manifest.json"
    if not manifest_path.is_file():
        raise UsageError(f"--from {source}: no manifest.json; is this a directory written by `provision backup`?")
    manifest: dict[str, str] = json.loads(manifest_path.read_text(encoding="utf-8"))
    kind = manifest.get("kind", "")
    if kind not in _KINDS:
        raise UsageError(f"--from {source}: unknown backup kind {kind!r}")
    for name in (_KINDS[kind], "token"):
        if not (source / name).is_file():
            raise UsageError(f"--from {source}: {name} is missing")
    if (source / "token").stat().st_mode & 0o077:
        raise UsageError(f"{source / 'token'} is readable by others; run: chmod 600 {source / 'token'}")
    return manifest


def run(args: argparse.Namespace) -> int:
    session = open_session(args)
    source = args.source.expanduser().resolve()
    manifest = _read_manifest(source)
    expected = "etcd-snapshot" if session.cluster.datastore == "embedded-etcd" else "sqlite"
    if session.cluster.datastore == "external":
        raise UsageError("this cluster uses an external datastore: restore that database with its own tools")
    if manifest["kind"] != expected:
        raise UsageError(f"{source} is a {manifest['kind']} backup but this cluster needs {expected}")
    taken = f"taken {manifest.get('created', '?')} on {manifest.get('node', '?')}, {manifest.get('version', '?')}"
    session.reporter.info(
        f"restore {source.name} ({manifest['kind']}, {taken}): every server stops; the API is unavailable until it ends"
    )
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("not asking for confirmation without a terminal; rerun with --yes")
        if input("Restore? [y/N] ").strip().lower() not in ("y", "yes"):
            raise UsageError("restore cancelled; nothing was changed")
    session.reporter.phase_started("restore", "Restore the state and restart the servers")
    extravars = {"k3s_backup_restore_from": str(source)}
    result = session.runner().run(PlaybookRun(playbook="restore.yml", inventory=session.inventory, extravars=extravars))
    if not result.ok:
        raise PhaseFailedError(
            phase="restore", rc=result.rc, failed=result.failed_hosts, unreachable=result.unreachable_hosts,
            resume_hint="servers may be stopped; fix the problem above and rerun the same restore",
        )
    if args.json:
        session.reporter.document({"status": "ok", "restored": str(source), "kind": manifest["kind"]})
    else:
        session.reporter.info(f"restored {source}; every inventory node is Ready")
    return 0
