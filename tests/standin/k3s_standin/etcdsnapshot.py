"""``k3s etcd-snapshot save|ls|list|delete|prune``.

Snapshots are taken by the running server (it owns embedded etcd), reached through its
supervisor ``/db/snapshot`` with the server token, as newer k3s releases do. A server
without embedded etcd has no ``server/db/etcd`` and the command fails with k3s's
``etcd datastore disabled``. Listing and deleting work on the snapshot directory.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from . import log
from . import token as tokens
from .config import Settings, UsageError, parse

_SUBCOMMANDS = ("save", "ls", "list", "l", "delete", "prune")


def _settings(argv: list[str]) -> Settings:
    # etcd-snapshot accepts the server's flags (config.yaml keys filtered the same way) plus its own.
    own = {"--name", "--dir", "--snapshot-retention", "--s3", "--etcd-s3", "-o", "--output"}
    passthrough: list[str] = []
    extras: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in own:
            if not eq and i + 1 < len(argv) and name not in ("--s3", "--etcd-s3"):
                value = argv[i + 1]
                i += 1
            extras[name.lstrip("-")] = value
        else:
            passthrough.append(arg)
        i += 1
    settings = parse("server", passthrough)
    settings.values.update({f"snapshot-{k}": v for k, v in extras.items()})
    return settings


def _snapshot_dir(settings: Settings) -> Path:
    explicit = settings.values.get("snapshot-dir") or settings.text("etcd-snapshot-dir")
    return Path(explicit) if explicit else settings.data_dir / "server" / "db" / "snapshots"


def _require_etcd(settings: Settings) -> None:
    if not (settings.data_dir / "server" / "db" / "etcd" / "member" / "wal").is_dir():
        log.fatal("Error: see server log for details: etcd datastore disabled")


def _server_url(settings: Settings) -> str:
    bind = settings.text("bind-address")
    address = bind if bind and bind not in ("0.0.0.0", "::") else "127.0.0.1"
    return f"https://{address}:{settings.number('https-listen-port', 6443)}"


def save(settings: Settings) -> int:
    _require_etcd(settings)
    from .joinclient import JoinError, fetch_json, validate_server

    token_file = settings.data_dir / "server" / "token"
    try:
        info = tokens.parse(token_file.read_text().strip())
    except (OSError, tokens.TokenError) as exc:
        log.fatal(f"Error: failed to read server token from {token_file}: {exc}")
    name = str(settings.values.get("snapshot-name") or settings.text("etcd-snapshot-name") or "on-demand")
    directory = _snapshot_dir(settings)
    try:
        validate_server(_server_url(settings), info.ca_hash)
        result = fetch_json(_server_url(settings), "/db/snapshot", "server", info.password, method="POST",
                            body={"name": name, "dir": str(directory)})
    except JoinError as exc:
        log.fatal(f"Error: see server log for details: {exc}")
    log.info(f"Snapshot {result['name']} saved.")
    return 0


def list_snapshots(settings: Settings) -> int:
    _require_etcd(settings)
    directory = _snapshot_dir(settings)
    rows = []
    for path in sorted(directory.glob("*")) if directory.is_dir() else []:
        if path.is_file():
            stat = path.stat()
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stat.st_mtime))
            rows.append((path.name, f"file://{path}", str(stat.st_size), created))
    headers = ("Name", "Location", "Size", "Created")
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(4)]
    for row in [headers, *rows]:
        sys.stdout.write(" ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n")
    return 0


def delete(settings: Settings, names: list[str]) -> int:
    _require_etcd(settings)
    directory = _snapshot_dir(settings)
    if not names:
        log.fatal("Error: no snapshots given for removal")
    for name in names:
        path = directory / Path(name).name
        if path.exists():
            path.unlink()
            log.info(f"Snapshot {name} deleted.")
        else:
            log.warn(f"Snapshot {name} not found")
    return 0


def prune(settings: Settings) -> int:
    _require_etcd(settings)
    keep = int(settings.values.get("snapshot-snapshot-retention") or settings.text("etcd-snapshot-retention") or 5)
    directory = _snapshot_dir(settings)
    files = sorted((p for p in directory.glob("on-demand-*") if p.is_file()), key=lambda p: p.stat().st_mtime)
    for path in files[:-keep] if keep else files:
        path.unlink()
        log.info(f"Removing local snapshot {path}")
    return 0


def main(argv: list[str]) -> int:
    sub = "save"
    if argv and argv[0] in _SUBCOMMANDS:
        sub, argv = argv[0], argv[1:]
    positional = [a for a in argv if not a.startswith("-")] if sub == "delete" else []
    flags = [a for a in argv if a not in positional]
    try:
        settings = _settings(flags)
    except UsageError as exc:
        log.emit("fatal", str(exc))
        return 1
    if sub == "save":
        return save(settings)
    if sub in ("ls", "list", "l"):
        return list_snapshots(settings)
    if sub == "delete":
        return delete(settings, positional)
    return prune(settings)
