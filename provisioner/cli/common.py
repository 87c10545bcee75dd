"""Options and set-up shared by the commands."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from provisioner.cli.output import JsonReporter, TextReporter
from provisioner.errors import UsageError
from provisioner.inventory import Cluster, load_inventory
from provisioner.probe import SshSettings
from provisioner.runner import Runner, SshOptions
from provisioner.state import ClusterState


def add_inventory_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--inventory", type=Path, required=True, help="the cluster's inventory file")
    parser.add_argument("--flavor", choices=["k3s", "kubeadm"], help="override provision_flavor from the inventory")


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--known-hosts", type=Path, help="known_hosts file to check host keys against")
    parser.add_argument(
        "--no-host-key-checking",
        action="store_true",
        help="do NOT verify SSH host keys (insecure; printed as a warning on every run)",
    )
    parser.add_argument(
        "--state-dir", type=Path, help="root of the per-cluster state (default ~/.local/state/provision)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of progress")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show each task as it starts")


def reporter_for(args: argparse.Namespace) -> TextReporter:
    """The command's one reporter: made on first use and kept on the parsed arguments, so that the CLI boundary
    (cli/main.py) reports an error through the same reporter that gathered the command's warnings."""
    reporter = getattr(args, "reporter", None)
    if not isinstance(reporter, TextReporter):
        json_mode = getattr(args, "json", False)
        reporter = JsonReporter() if json_mode else TextReporter(verbose=getattr(args, "verbose", False))
        args.reporter = reporter
    return reporter


@dataclass
class Session:
    """What every command that talks to hosts needs, built once from the arguments."""

    cluster: Cluster
    inventory: Path
    state: ClusterState
    reporter: TextReporter
    ssh: SshSettings
    ssh_options: SshOptions

    def runner(self) -> Runner:
        return Runner(self.state.runner_dir, self.ssh_options, on_event=self.reporter.host_event)


def open_session(args: argparse.Namespace) -> Session:
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
    state = ClusterState.for_cluster(cluster.name, root=args.state_dir)
    return Session(
        cluster=cluster,
        inventory=inventory.resolve(),
        state=state,
        reporter=reporter,
        ssh=SshSettings(known_hosts=known_hosts, strict_host_key_checking=checking),
        ssh_options=SshOptions(known_hosts=known_hosts, host_key_checking=checking),
    )


def take_secret_from_env(name: str) -> str | None:
    """Read a secret from the environment and remove it, so no child process or runner artifact sees it."""
    return os.environ.pop(name, None) or None
