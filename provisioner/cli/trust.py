"""`provision trust`: show each host's SSH host key fingerprints and record the new ones, deliberately.

Host-key checking stays on for every other command; this is how keys of freshly flashed boards get into the
known_hosts file the runs use, after the user compared the fingerprints (the board's console, or
`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on it). A changed key is refused, never replaced.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from provisioner import trust
from provisioner.cli.common import add_inventory_options, reporter_for
from provisioner.cli.lifecycle import confirm
from provisioner.errors import ExitCode, ProvisionError, UsageError
from provisioner.inventory import load_inventory
from provisioner.ssh_config import SshSettings, resolve


class HostKeyError(ProvisionError):
    """Some hosts' keys could not be trusted: changed (refused) or not fetched (unreachable)."""

    def __init__(self, message: str, lines: list[str], exit_code: int) -> None:
        super().__init__(message)
        self.lines = lines
        self.exit_code = exit_code

    def details(self) -> list[str]:
        return self.lines


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "trust", help="show each host's SSH host key fingerprints and record new ones in known_hosts (asks first)"
    )
    add_inventory_options(parser)
    parser.add_argument(
        "--known-hosts", type=Path,
        help="the known_hosts file to check and write (created when missing); default: the one each host uses",
    )
    parser.add_argument("--limit", help="only these hosts (comma-separated inventory names)")
    parser.add_argument("-y", "--yes", action="store_true", help="record new keys without asking (after you compared "
                        "the fingerprints some other way)")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    reporter = reporter_for(args)
    cluster = load_inventory(Path(args.inventory), flavor_override=args.flavor)
    hosts = list(cluster.hosts)
    if args.limit:
        wanted = [name.strip() for name in args.limit.split(",") if name.strip()]
        unknown = sorted(set(wanted) - {h.name for h in hosts})
        if unknown:
            raise UsageError(f"--limit names hosts the inventory does not have: {', '.join(unknown)}")
        hosts = [h for h in hosts if h.name in wanted]
    cli_file = args.known_hosts.resolve() if args.known_hosts else None
    # The file, address and port each host's key is checked against, exactly as ssh resolves them for Ansible.
    resolved = resolve(hosts, SshSettings(known_hosts=cli_file))

    judged: list[trust.HostTrust] = []
    for host in hosts:
        found = resolved[host.name]
        target = trust.HostTrust(host.name, found.endpoint.hostname, found.endpoint.port, found.known_hosts_file,
                                 "known")
        if found.endpoint.proxy_command:
            judged.append(dataclasses.replace(target, state="unreachable", error=trust.BEHIND_A_PROXY_COMMAND))
            continue
        via = trust.through_jump(found.config_file, found.endpoint.proxy_jump) if found.endpoint.proxy_jump else []
        keys, error = trust.scan(target.address, target.port, via=via)
        judged.append(trust.judge(target, keys, error))

    rows = [[t.host, t.entry_name, t.state.upper() if t.state in ("new", "changed") else t.state,
             " ".join(k.fingerprint for k in (t.new or t.keys)[:1]) or t.error, str(t.known_hosts)] for t in judged]
    reporter.table(["HOST", "ADDRESS", "KEY", "FINGERPRINT", "KNOWN_HOSTS"], rows)

    new = [t for t in judged if t.state == "new"]
    written = 0
    if new:
        listing = "; ".join(f"{t.host} {k.key_type} {k.fingerprint}" for t in new for k in t.new)
        confirm(args, f"Compare these fingerprints with the hosts' own ({listing}). Record them?")
        for t in new:
            written += trust.record(t.known_hosts, [(t.entry_name, k) for k in t.new])

    document: dict[str, Any] = {
        "hosts": {t.host: _host_document(t) for t in judged},
        "recorded": written,
    }
    changed = [t for t in judged if t.state == "changed"]
    unreachable = [t for t in judged if t.state == "unreachable"]
    if changed or unreachable:
        lines = [
            f"{t.host}: {k.key_type} key CHANGED: offers {k.fingerprint}, {t.known_hosts} has {old}; if the host was "
            f"reinstalled, check the new fingerprint on its console, remove the old entry (ssh-keygen -f "
            f"{t.known_hosts} -R '{t.entry_name}') and run provision trust again; otherwise do not connect to it"
            for t in changed for k, old in t.changed
        ] + [f"{t.host}: no host key fetched from {t.entry_name}: {t.error}" for t in unreachable]
        refusal = HostKeyError(
            f"{len(changed)} host(s) offer a changed key, {len(unreachable)} could not be asked; "
            f"{written} new key(s) recorded",
            lines, ExitCode.REFUSED if changed else ExitCode.UNREACHABLE,
        )
        if args.json:
            reporter.document({**document, "error": {"message": str(refusal), "details": lines}})
            refusal.reported = True
        raise refusal
    if args.json:
        reporter.document(document)
    else:
        reporter.info(f"{written} new key(s) recorded; {len(judged) - len(new)} host(s) were known already")
    return ExitCode.OK


def _host_document(t: trust.HostTrust) -> dict[str, Any]:
    return {
        "address": t.entry_name,
        "state": t.state,
        "known_hosts": str(t.known_hosts),
        "keys": [{"type": k.key_type, "fingerprint": k.fingerprint} for k in t.keys],
        "recorded": [k.fingerprint for k in t.new] if t.state == "new" else [],
        "changed": [{"type": k.key_type, "offered": k.fingerprint, "on_record": old} for k, old in t.changed],
        "error": t.error,
    }
