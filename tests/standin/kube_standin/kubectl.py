"""``kubectl`` as published next to kubeadm: the K3s stand-in's kubectl with the upstream defaults.

Differences from ``k3s kubectl``: the kubeconfig is ``--kubeconfig``, ``$KUBECONFIG`` or ``~/.kube/config`` (no
``/etc/rancher/k3s/k3s.yaml``; without any, kubectl's ``localhost:8080`` refusal), built-in types (ConfigMap,
DaemonSet, ...) can be applied because this cluster's apiserver serves them, ``version --client`` prints the
upstream version document, and ``rollout status`` waits for a DaemonSet or Deployment.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from k3s_standin import kubectl as base

from . import versions


def _kubeconfig_known(args: base.Args) -> bool:
    return bool(args.get("--kubeconfig") or os.environ.get("KUBECONFIG") or (Path.home() / ".kube" / "config").exists())


def _rollout_status(args: base.Args) -> int:
    target = args.positional[1] if len(args.positional) > 1 else ""
    kind, _, name = target.partition("/")
    plural = {"ds": "daemonsets", "daemonset": "daemonsets", "daemonsets": "daemonsets", "deploy": "deployments",
              "deployment": "deployments", "deployments": "deployments"}.get(kind)
    if not plural or not name:
        sys.stderr.write("error: the stand-in kubectl rolls out daemonset/NAME or deployment/NAME only\n")
        return 1
    client = base.Client(base.kubeconfig_path(args))
    namespace = args.get("--namespace", "default")
    deadline = time.time() + base._timeout_seconds(args.get("--timeout"), 1e9)
    reported = ""
    while True:
        try:
            obj = client.request("GET", f"/apis/apps/v1/namespaces/{namespace}/{plural}/{name}")
        except base.KubectlError as exc:
            sys.stderr.write(f"{exc}\n")
            return 1
        status = obj.get("status") or {}
        if plural == "daemonsets":
            want, ready = int(status.get("desiredNumberScheduled", 0)), int(status.get("numberAvailable", 0))
            if want and ready >= want:
                sys.stdout.write(f'daemon set "{name}" successfully rolled out\n')
                return 0
            line = f'Waiting for daemon set "{name}" rollout to finish: {ready} of {want} updated pods are available...\n'
        else:
            want = int((obj.get("spec") or {}).get("replicas", 1))
            ready = int(status.get("availableReplicas", 0))
            if ready >= want:
                sys.stdout.write(f'deployment "{name}" successfully rolled out\n')
                return 0
            line = (f'Waiting for deployment "{name}" rollout to finish: {ready} of {want} updated replicas are '
                    "available...\n")
        if line != reported:
            sys.stdout.write(line)
            sys.stdout.flush()
            reported = line
        if time.time() > deadline:
            sys.stderr.write("error: timed out waiting for the condition\n")
            return 1
        time.sleep(1)


def run(argv: list[str]) -> int:
    base.APPLY_BUILTINS = True
    args = base.parse_args(list(argv))
    verb = args.positional[0] if args.positional else ""
    if verb == "version" and args.has("--client"):
        output = args.get("--output")
        if output == "json":
            sys.stdout.write(versions.kubectl_client_json())
        elif output == "yaml":
            import yaml

            doc = {"clientVersion": versions.info(), "kustomizeVersion": versions.KUSTOMIZE}
            sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))
        else:
            sys.stdout.write(f"Client Version: {versions.version()}\nKustomize Version: {versions.KUSTOMIZE}\n")
        return 0
    if verb and not _kubeconfig_known(args) and not args.get("--server"):
        sys.stderr.write("The connection to the server localhost:8080 was refused - did you specify the right host "
                         "or port?\n")
        return 1
    if verb == "rollout" and len(args.positional) > 1 and args.positional[1] == "status":
        args.positional.pop(1)
        return _rollout_status(args)
    return base.run(list(argv))
