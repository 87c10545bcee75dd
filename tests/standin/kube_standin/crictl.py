"""``crictl`` (cri-tools) as far as kubeadm and the kubeadm role use it: ``--version`` and ``version``/``info``.

kubeadm before 1.31 refuses to run without crictl on the PATH and asks it whether the runtime answers; the kubeadm
role installs it from cri-tools' release archive and reads ``crictl --version``. ``version`` and ``info`` answer only
when the real containerd answers on the endpoint (the same check as kubeadm's, module ``cri``); every other subcommand
exits 1 saying it is not modelled. The endpoint comes from ``--runtime-endpoint``/``-r``, else ``/etc/crictl.yaml``'s
``runtime-endpoint``, else containerd's socket (real crictl warns about that default and tries several sockets).
"""

from __future__ import annotations

import json
import sys

import yaml

from . import _buildinfo, cri, host

DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"


def _endpoint(args: list[str]) -> tuple[str, list[str]]:
    rest: list[str] = []
    endpoint = ""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in ("--runtime-endpoint", "-r") and index + 1 < len(args):
            endpoint = args[index + 1]
            index += 2
            continue
        if arg.startswith("--runtime-endpoint="):
            endpoint = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        index += 1
    if not endpoint:
        try:
            config = yaml.safe_load(host.path("/etc/crictl.yaml").read_text()) or {}
            endpoint = str(config.get("runtime-endpoint") or "")
        except (OSError, yaml.YAMLError):
            endpoint = ""
    return endpoint or DEFAULT_ENDPOINT, rest


def run(args: list[str]) -> int:
    if args[:1] in (["--version"], ["-v"]):
        print(f"crictl version {_buildinfo.VERSION}")
        return 0
    endpoint, rest = _endpoint(args)
    command = rest[0] if rest else ""
    if command not in ("version", "info"):
        print(f"crictl stand-in: {command or '(no command)'!r} is not modelled (only --version, version, info)",
              file=sys.stderr)
        return 1
    reason = cri.probe(endpoint)
    if reason is not None:
        print(f'time="{cri._now()}" level=fatal msg="validate service connection: validate CRI v1 runtime API for '
              f'endpoint \\"{endpoint}\\": {reason}"', file=sys.stderr)
        return 1
    if command == "version":
        print("Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  1.6.20~ds1\nRuntimeApiVersion:  v1")
    else:
        print(json.dumps({"status": {"conditions": [{"type": "RuntimeReady", "status": True}]}}, indent=2))
    return 0
