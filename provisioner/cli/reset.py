"""`provision reset`: remove the cluster's software (K3s: flavors/k3s) from every host (or the --limit'ed ones) and
the cluster from the kubeconfig.

Hosts end as they were before `up`, except for prerequisite packages (listed in the report). Only the cluster's
own firewall chains go; the SSH session is never cut. A full reset also drops the cluster's context from the user's
kubeconfig and the fetched kubeconfig, membership record and record of fixed settings from the state directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from provisioner import kubeconfig
from provisioner.cli.common import add_connection_options, add_inventory_options, open_session
from provisioner.cli.lifecycle import (
    CLEANUP_TASK,
    PhaseRun,
    confirm,
    finish,
    host_rows,
    read_nodes,
)
from provisioner.errors import PhaseFailedError, RefusedError, UsageError
from provisioner.lifecycle_plan import RemovalRefusedError, check_partial_reset
from provisioner.phases.membership import MEMBERS_FILE, load_fingerprints, save_fingerprints
from provisioner.runner import PlaybookRun
from provisioner.session import Session
from provisioner.state import RunReport


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("reset", help="remove the cluster and everything it left from the hosts (asks first)")
    add_inventory_options(parser)
    add_connection_options(parser)
    parser.add_argument("--limit", nargs="+", metavar="HOST", help="reset only these hosts (they stay in the cluster)")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--kubeconfig", type=Path,
        help="kubeconfig to remove the cluster's context from (default: $KUBECONFIG or ~/.kube/config)",
    )
    parser.set_defaults(handler=run)


def _targets(args: argparse.Namespace, declared: list[str]) -> list[str]:
    if not args.limit:
        return declared
    unknown = [h for h in args.limit if h not in declared]
    if unknown:
        raise UsageError(f"--limit names hosts not in the inventory: {', '.join(unknown)}")
    return [h for h in declared if h in args.limit]


def _check_quorum(session: Session, targets: list[str]) -> None:
    """A partial reset that includes servers must leave a server, and embedded etcd a quorum (read from the nodes)."""
    if not any(s.name in targets for s in session.cluster.servers):
        return
    try:
        check_partial_reset(session.cluster, targets, {}, embedded_etcd=False)  # every server named: no need to ask
        nodes = read_nodes(session, avoid=targets)
        check_partial_reset(session.cluster, targets, nodes, embedded_etcd=session.flavor.embedded_etcd(nodes))
    except RemovalRefusedError as exc:
        raise RefusedError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    session = open_session(args)
    cluster, reporter = session.cluster, session.reporter
    declared = [h.name for h in cluster.hosts]
    targets = _targets(args, declared)
    whole = set(targets) == set(declared)
    if not whole:
        reporter.warn(
            "--limit resets hosts without removing them from the cluster; to take a node out, use "
            "`provision remove-node HOST`"
        )
        _check_quorum(session, targets)
    product = session.flavor.product
    confirm(args, f"Remove {product} and all its data from {len(targets)} host(s) of cluster {cluster.name!r}?")
    report = RunReport(command="reset", cluster=cluster.name, inventory=str(session.inventory))
    phases = PhaseRun(session, report)
    step = session.flavor.reset_step()
    result = phases.run(
        "reset",
        step.title,
        PlaybookRun(
            playbook=step.playbook,
            extravars=dict(step.extravars),
            inventory=session.inventory,
            limit=None if whole else ",".join(targets),
            capture=frozenset({CLEANUP_TASK}),
        ),
    )
    removed_context = False
    if result.ok and whole:
        target = Path(args.kubeconfig) if args.kubeconfig else kubeconfig.default_kubeconfig_path()
        removed_context = kubeconfig.remove_context(target, cluster.name)
        session.state.kubeconfig.unlink(missing_ok=True)
        (session.state.root / MEMBERS_FILE).unlink(missing_ok=True)
        # The cluster is gone, and with it what it fixed: the next `up` builds a new one from the inventory.
        (session.state.root / session.flavor.recorded_settings.file_name).unlink(missing_ok=True)
        if removed_context:
            reporter.info(f"kubeconfig: context {cluster.name!r} removed from {target}")
    elif result.ok:
        path = session.state.root / MEMBERS_FILE
        if path.exists():
            save_fingerprints(path, {h: d for h, d in load_fingerprints(path).items() if h not in targets})
    packages = session.flavor.kept_packages()
    report.hosts = host_rows(phases.results)
    for row in report.hosts.values():
        row["packages_left"] = packages
    saved = finish(report, session, result.ok)
    if args.json:
        session.reporter.document(report.to_json() | {"report_file": str(saved), "context_removed": removed_context})
    else:
        headers = ["HOST", "STATUS", "CHANGED", "TIME"]
        rows = [[h, r["status"], str(r["changed"]), f"{r['duration_s']:.1f}s"] for h, r in report.hosts.items()]
        reporter.table(headers, rows)
        reporter.info(f"prerequisite packages left in place: {', '.join(packages) or 'none'}; report: {saved}")
    if not result.ok:
        raise PhaseFailedError(
            phase="reset", rc=result.rc, failed=result.failed_hosts, unreachable=result.unreachable_hosts,
            resume_hint="rerun the same reset: hosts already clean are left as they are",
        )
    return 0
