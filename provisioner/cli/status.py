"""`provision status`: nodes, versions and readiness as the cluster reports them."""

from __future__ import annotations

import argparse
import json

from provisioner.cli.common import add_connection_options, add_inventory_options, open_session
from provisioner.errors import PhaseFailedError
from provisioner.runner import PlaybookRun


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("status", help="show the cluster's nodes, versions and readiness")
    add_inventory_options(parser)
    add_connection_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    session = open_session(args, changes=False)
    result = session.runner().run(
        PlaybookRun(
            playbook=session.flavor.node_list_playbook(), inventory=session.inventory,
            capture=frozenset({"Read the node list"}),
        )
    )
    if not result.ok:
        raise PhaseFailedError(
            phase="status", rc=result.rc, failed=result.failed_hosts, unreachable=result.unreachable_hosts
        )
    raw = next(iter(result.captured.values()))["Read the node list"]["stdout"]
    items = json.loads(raw).get("items", [])
    rows = []
    declared = {h.name: h for h in session.cluster.hosts}
    for node in items:
        name = node["metadata"]["name"]
        labels = node["metadata"].get("labels", {})
        ready = next(
            (c["status"] for c in node.get("status", {}).get("conditions", []) if c.get("type") == "Ready"), "Unknown"
        )
        roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
        rows.append(
            {
                "name": name,
                "ready": ready == "True",
                "roles": ",".join(roles) or "<none>",
                "version": node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", ""),
                "arch": labels.get("kubernetes.io/arch", ""),
                "schedulable": not node.get("spec", {}).get("unschedulable", False),
                "in_inventory": name in declared,
            }
        )
    missing = sorted(set(declared) - {r["name"] for r in rows})
    if args.json:
        session.reporter.document({"cluster": session.cluster.name, "nodes": rows, "missing": missing})
    else:
        headers = ["NAME", "READY", "ROLES", "VERSION", "ARCH", "SCHEDULABLE", "IN_INVENTORY"]
        session.reporter.table(headers, [[str(r[h.lower()]) for h in headers] for r in rows])
        for name in missing:
            session.reporter.warn(f"{name} is in the inventory but not registered in the cluster")
    return 0 if not missing and all(r["ready"] for r in rows) else 1
