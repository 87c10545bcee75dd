"""`provision remove-node HOST`: drain, reset the host, delete the node (a server's etcd member goes with it).

Safety first, from the node list one other server reports: the last server is never removed, nor a server whose
removal would leave embedded etcd without a majority. An unreachable host is refused unless --force, which
removes it from the cluster only and says so.
"""

from __future__ import annotations

import argparse

from provisioner.cli.common import add_connection_options, add_inventory_options, open_session
from provisioner.cli.lifecycle import CLEANUP_TASK, PhaseRun, confirm, finish, host_rows, read_nodes
from provisioner.errors import PhaseFailedError, RefusedError, UsageError
from provisioner.lifecycle_plan import (
    RemovalPlan,
    RemovalRefusedError,
    check_removable,
    plan_removal,
)
from provisioner.phases.membership import MEMBERS_FILE, load_fingerprints, save_fingerprints
from provisioner.probe import probe_hosts
from provisioner.runner import PlaybookRun
from provisioner.session import Session
from provisioner.state import RunReport


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("remove-node", help="take one node out of the cluster and clean its host (asks first)")
    parser.add_argument("host", help="inventory name of the host to remove")
    add_inventory_options(parser)
    add_connection_options(parser)
    parser.add_argument(
        "--force", action="store_true", help="the host is unreachable: remove it from the cluster only"
    )
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(handler=run)


def _plan(session: Session, args: argparse.Namespace) -> RemovalPlan:
    cluster = session.cluster
    if args.host not in {h.name for h in cluster.hosts}:
        raise UsageError(f"{args.host} is not in {session.inventory}; name a host listed under server or agent")
    try:
        check_removable(cluster, args.host)  # before contacting anything: the last server needs no node list
    except RemovalRefusedError as exc:
        raise RefusedError(str(exc)) from None
    nodes = read_nodes(session, avoid=[args.host])
    target = next(h for h in cluster.hosts if h.name == args.host)
    reachable = probe_hosts([target], session.ssh)[args.host].reachable
    embedded = session.flavor.embedded_etcd(nodes)
    try:
        return plan_removal(cluster, args.host, nodes, reachable=reachable, force=args.force, embedded_etcd=embedded)
    except RemovalRefusedError as exc:
        raise RefusedError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    session = open_session(args)
    reporter = session.reporter
    plan = _plan(session, args)
    for note in plan.notes:
        reporter.warn(note)
    what = "drain, reset the host and delete the node" if plan.reset_host else "drain and delete the node ONLY"
    if plan.etcd_member:
        what += " (its etcd member is removed with it)"
    # The flavor may refuse this removal (kubeadm: an unreachable control plane); it says so before anyone is asked.
    step = session.flavor.removal_step(plan)
    if not plan.reset_host:
        reporter.warn(f"{plan.host} is unreachable: it is removed from the cluster only; its files stay on it")
    confirm(args, f"Remove {plan.role} {plan.host} from cluster {session.cluster.name!r}: {what}?")
    report = RunReport(command="remove-node", cluster=session.cluster.name, inventory=str(session.inventory))
    phases = PhaseRun(session, report)
    result = phases.run(
        "remove-node",
        f"{step.title}: {what}",
        PlaybookRun(
            playbook=step.playbook,
            inventory=session.inventory,
            extravars=dict(step.extravars),
            capture=frozenset({CLEANUP_TASK}),
        ),
    )
    if result.ok:
        path = session.state.root / MEMBERS_FILE
        if path.exists():
            save_fingerprints(path, {h: d for h, d in load_fingerprints(path).items() if h != plan.host})
    report.hosts = host_rows(phases.results)
    report.hosts.setdefault(plan.host, {})["removal"] = {
        "role": plan.role,
        "etcd_member": plan.etcd_member,
        "host_reset": plan.reset_host,
        "via": plan.control_server,
        "notes": list(plan.notes),
    }
    saved = finish(report, session, result.ok)
    if args.json:
        session.reporter.document(report.to_json() | {"report_file": str(saved)})
    else:
        done = "removed from the cluster" + (" and reset" if plan.reset_host else " only (host not cleaned)")
        reporter.info(f"{plan.host} {done}" if result.ok else f"{plan.host}: removal failed")
        reporter.info(f"remove the host from {session.inventory} now, or the next `up` adds it back; report: {saved}")
    if not result.ok:
        raise PhaseFailedError(
            phase="remove-node", rc=result.rc, failed=result.failed_hosts, unreachable=result.unreachable_hosts,
            resume_hint=(
                "rerun the same command; if the host became unreachable, add --force to remove it from the "
                "cluster only"
            ),
        )
    return 0
