"""The ``k3s`` command: global flags and subcommands (urfave/cli shaped)."""

from __future__ import annotations

import sys

from . import _buildinfo
from .main import version_text

_USAGE = """NAME:
   k3s - Kubernetes, but small and simple

USAGE:
   k3s [global options] command [command options] [arguments...]

VERSION:
   {version}

COMMANDS:
   server         Run management server
   agent          Run node agent
   kubectl        Run kubectl
   crictl         Run crictl
   ctr            Run ctr
   check-config   Run config check
   etcd-snapshot  Manage etcd snapshots
   help, h        Shows a list of commands or help for one command

GLOBAL OPTIONS:
   --debug                     (logging) Turn on debug logs [$K3S_DEBUG]
   --data-dir value, -d value  (data) Folder to hold state (default: /var/lib/rancher/k3s)
   --help, -h                  show help
   --version, -v               print the version
"""


def usage() -> str:
    return _USAGE.format(version=f"{_buildinfo.VERSION} ({_buildinfo.COMMIT})")


def run(args: list[str]) -> int:
    """Run ``k3s ARGS``; returns the exit code."""
    global_args: list[str] = []
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in ("--version", "-v"):
            sys.stdout.write(version_text())
            return 0
        if flag in ("--help", "-h"):
            sys.stdout.write(usage())
            return 0
        global_args.append(flag)
    if not args or args[0] in ("help", "h"):
        sys.stdout.write(usage())
        return 0
    command, rest = args[0], args[1:]
    if "--debug" in global_args:
        rest = ["--debug", *rest]
    if command == "server":
        from . import server

        return server.main(rest)
    if command == "agent":
        from . import agent

        return agent.main(rest)
    if command == "kubectl":
        from . import kubectl

        return kubectl.run(rest)
    if command == "crictl":
        from . import stubs

        return stubs.crictl(rest)
    if command == "ctr":
        from . import stubs

        return stubs.ctr(rest)
    if command == "check-config":
        from . import checkconfig

        return checkconfig.main(rest)
    if command == "etcd-snapshot":
        from . import etcdsnapshot

        return etcdsnapshot.main(rest)
    sys.stderr.write(f"No help topic for '{command}'\n")
    return 3
