"""Options and set-up shared by the commands."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from provisioner.cli.output import JsonReporter, TextReporter
from provisioner.errors import UsageError
from provisioner.flavors import FlavorOptions, get_flavor
from provisioner.inventory import load_inventory
from provisioner.inventory.model import FLAVORS
from provisioner.runner import SECRET_ENV
from provisioner.session import SecretFiles, Session
from provisioner.ssh_config import HostSsh, SshSettings, resolve
from provisioner.state import ClusterLock, ClusterState, lock_cluster

SHOWN = 5  # items named in a one-line warning before "..."


def add_inventory_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--inventory", type=Path, required=True, help="the cluster's inventory file")
    parser.add_argument("--flavor", choices=FLAVORS, help="override provision_flavor from the inventory")


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--known-hosts", type=Path,
        help="known_hosts file to check host keys against (wins over the inventory's UserKnownHostsFile)",
    )
    parser.add_argument(
        "--ask-become-pass", "-K", action="store_true",
        help="ask once for sudo's password (never echoed or written to logs); or export PROVISION_BECOME_PASSWORD",
    )
    parser.add_argument(
        "--no-host-key-checking",
        action="store_true",
        help="do NOT verify SSH host keys (insecure; printed as a warning on every run)",
    )
    parser.add_argument(
        "--state-dir", type=Path, help="root of the per-cluster state (default ~/.local/state/provision)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of progress")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="-v: also each task as it starts; -vv: also every task's result, unchanged ones included",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings, errors and the results (no phase progress)"
    )


def held_locks(args: argparse.Namespace) -> list[ClusterLock]:
    """Locks this command took; cli/main.py releases them when the command ends."""
    locks = getattr(args, "locks", None)
    if not isinstance(locks, list):
        locks = []
        args.locks = locks
    return locks


def transient_files(args: argparse.Namespace) -> list[Path]:
    """Files that live only as long as the command (secrets moved out of the environment); cli/main.py removes
    them when it ends, however it ends."""
    files = getattr(args, "transient_files", None)
    if not isinstance(files, list):
        files = []
        args.transient_files = files
    return files


def reporter_for(args: argparse.Namespace) -> TextReporter:
    """The command's one reporter: made on first use and kept on the parsed arguments, so that the CLI boundary
    (cli/main.py) reports an error through the same reporter that gathered the command's warnings."""
    reporter = getattr(args, "reporter", None)
    if not isinstance(reporter, TextReporter):
        json_mode = getattr(args, "json", False)
        level = -1 if getattr(args, "quiet", False) else int(getattr(args, "verbose", 0) or 0)
        reporter = JsonReporter() if json_mode else TextReporter(verbosity=level)
        args.reporter = reporter
    return reporter


def move_env_secrets(secrets_dir: Path, ask_become_pass: bool = False) -> SecretFiles:
    token_name, password_name, become_name = SECRET_ENV
    token = take_secret_from_env(token_name)
    password = take_secret_from_env(password_name)
    become = take_secret_from_env(become_name)
    if ask_become_pass:
        if not sys.stdin.isatty():
            raise UsageError(f"--ask-become-pass needs a terminal to ask on; give the password in {become_name}")
        become = getpass.getpass("sudo password (become): ") or None
    return SecretFiles(
        token=None if token is None else _write_secret(secrets_dir / "cluster-token", token),
        datastore_password=None if password is None else _write_secret(secrets_dir / "datastore-password", password),
        become_password=None if become is None else _write_secret(secrets_dir / "become-password", become),
    )


def _write_secret(path: Path, value: str) -> Path:
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value.strip() + "\n")
    path.chmod(0o600)
    return path


def open_session(args: argparse.Namespace, *, changes: bool = True) -> Session:
    """Load and check the inventory, then (for commands that change hosts: `changes`) take the cluster's lock."""
    reporter = reporter_for(args)
    inventory = Path(args.inventory)
    cluster = load_inventory(inventory, flavor_override=args.flavor)
    for warning in cluster.warnings:
        reporter.warn(warning.render())
    checking = not args.no_host_key_checking
    if not checking:
        reporter.warn("SSH host-key checking is OFF (--no-host-key-checking): hosts are not authenticated")
    known_hosts = args.known_hosts.resolve() if args.known_hosts else None
    if known_hosts is not None and not known_hosts.is_file():
        raise UsageError(f"--known-hosts {known_hosts}: no such file")
    ssh = SshSettings(known_hosts=known_hosts, strict_host_key_checking=checking)
    report_ssh_conflicts(reporter, resolve(cluster.hosts, ssh).values())
    flavor = get_flavor(cluster.flavor, FlavorOptions(ssh=ssh))
    command = getattr(args, "command", None)
    if command is not None and command not in flavor.commands:
        raise UsageError(
            f"`provision {command}` is not built for {flavor.product} clusters yet; this release offers "
            f"{', '.join(sorted(flavor.commands))} for them"
        )
    state = ClusterState.for_cluster(cluster.name, root=args.state_dir)
    secrets = move_env_secrets(state.root / "secrets", getattr(args, "ask_become_pass", False))
    transient_files(args).extend(
        p for p in (secrets.token, secrets.datastore_password, secrets.become_password) if p is not None
    )
    if secrets.become_password is not None:
        ssh = dataclasses.replace(ssh, become_password=secrets.become_password.read_text().strip())
        flavor = get_flavor(cluster.flavor, FlavorOptions(ssh=ssh))
    if changes:
        lock = lock_cluster(state, cluster.name, args.command)
        held_locks(args).append(lock)
        if lock.previous:
            reporter.warn(
                f"the last `provision {lock.previous.get('command', '?')}` on this cluster (pid "
                f"{lock.previous.get('pid', '?')}) ended without finishing; this run picks up from what is on the hosts"
            )
    return Session(
        cluster=cluster,
        inventory=inventory.resolve(),
        state=state,
        reporter=reporter,
        ssh=ssh,
        flavor=flavor,
        secrets=secrets,
    )


def report_ssh_conflicts(reporter: TextReporter, resolved: Iterable[HostSsh]) -> None:
    """One warning per conflict between two sources of an SSH setting, with the hosts it concerns."""
    hosts: dict[str, list[str]] = {}
    for host in resolved:
        for conflict in host.conflicts:
            hosts.setdefault(conflict, []).append(host.name)
    for conflict, names in hosts.items():
        shown = ", ".join(names[:SHOWN]) + (" ..." if len(names) > SHOWN else "")
        reporter.warn(f"SSH settings of {shown}: {conflict} (probe and Ansible alike)")


def take_secret_from_env(name: str) -> str | None:
    """Read a secret from the environment and remove it, so no child process or runner artifact sees it."""
    return os.environ.pop(name, None) or None
