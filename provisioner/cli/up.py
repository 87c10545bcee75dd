"""`provision up`: install or complete a cluster from the inventory."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from provisioner import kubeconfig
from provisioner.cli.common import add_connection_options, add_inventory_options, open_session
from provisioner.errors import ProvisionError, UsageError
from provisioner.phases.base import Context, PhaseManager
from provisioner.runner import SECRET_ENV
from provisioner.session import Session
from provisioner.state import RunReport

TOKEN_ENV = SECRET_ENV[0]  # PROVISION_K3S_TOKEN, named in --token-file's help


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("up", help="install or complete the cluster described by the inventory")
    add_inventory_options(parser)
    add_connection_options(parser)
    parser.add_argument(
        "--check", "--dry-run", dest="check", action="store_true",
        help="show what would change on each host; change nothing",
    )
    parser.add_argument(
        "--token-file", type=Path, help=f"file holding the cluster token (or set ${TOKEN_ENV}); default: generated"
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help="kubeconfig to merge the cluster's context into (default: $KUBECONFIG or ~/.kube/config)",
    )
    parser.add_argument("--no-merge-kubeconfig", action="store_true", help="only keep the kubeconfig in the state dir")
    parser.add_argument(
        "--use-context",
        action="store_true",
        help="make the cluster's context kubectl's current one (default: only when the kubeconfig has none)",
    )
    parser.add_argument(
        "--limit", action="append", metavar="HOST[,HOST...]",
        help="converge only these hosts (comma-separated, or repeated); the first server goes first while the "
        "cluster is not complete, so it cannot be left out then",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="run on every host, not only on hosts that are new or changed since the last successful run",
    )
    parser.set_defaults(handler=run)


def _token_file(args: argparse.Namespace, session: Session) -> Path | None:
    """--token-file, else PROVISION_K3S_TOKEN (already moved into a 0600 file by the session), else none."""
    if args.token_file is not None:
        path = Path(args.token_file).expanduser().resolve()
        if not path.is_file():
            raise UsageError(f"--token-file {path}: no such file")
        if path.stat().st_mode & 0o077:
            raise UsageError(f"--token-file {path} is readable by others; run: chmod 600 {path}")
        return path
    return session.secrets.token


def run(args: argparse.Namespace) -> int:
    session = open_session(args)
    cluster, reporter = session.cluster, session.reporter
    flavor = session.flavor
    extravars = flavor.up_extravars(session, _token_file(args, session))
    requested = _requested_hosts(args, session)
    report = RunReport(command="check" if args.check else "up", cluster=cluster.name, inventory=str(session.inventory))
    ctx = Context(
        cluster=cluster,
        inventory=session.inventory,
        runner=session.runner(),
        state=session.state,
        report=report,
        reporter=reporter,
        extravars=extravars,
        check=args.check,
        requested=requested,
    )
    started = time.monotonic()
    error: ProvisionError | None = None
    try:
        PhaseManager(flavor.up_phases(touch_all=args.all)).run(ctx)
    except ProvisionError as exc:
        error = exc
    context_name = None
    if not args.check and _phase_ok(report, "kubeconfig") and not args.no_merge_kubeconfig:
        target = args.kubeconfig or kubeconfig.default_kubeconfig_path()
        context_name, current = kubeconfig.merge(
            session.state.kubeconfig, Path(target), switch_context=args.use_context
        )
        note = "it is the current context" if current == context_name else (
            f"the current context stays {current!r}; use --use-context, or kubectl --context {context_name}"
        )
        reporter.info(f"kubeconfig: context {context_name!r} merged into {target} ({note})")
    rows = _summary_rows(ctx)
    report.hosts = {r["host"]: r for r in rows}
    report.status = "failed" if error else "ok"
    report.finished = time.time()
    saved = report.save(session.state)
    if args.json:
        document = report.to_json() | {"report_file": str(saved), "context": context_name}
        if error is not None:
            document["error"] = {"message": str(error), "details": error.details()}
            error.reported = True  # the document above carries it; the CLI boundary must not print a second one
        session.reporter.document(document)
    else:
        headers = ["HOST", "ROLE", "ARCH", "VERSION", "READY", "CHANGED", "TIME"]
        if report.phases:  # a run refused before its first phase has no host to show
            reporter.table(headers, [[str(r[k.lower()]) for k in headers] for r in rows])
        reporter.info(
            f"{'check' if args.check else 'up'} finished in {time.monotonic() - started:.1f}s; report: {saved}"
        )
    if error is not None:
        raise error
    return 0


def _requested_hosts(args: argparse.Namespace, session: Session) -> tuple[str, ...] | None:
    """--limit a,b --limit c -> ("a", "b", "c"); every name must be an inventory host."""
    if not args.limit:
        return None
    names = tuple(dict.fromkeys(n.strip() for item in args.limit for n in item.split(",") if n.strip()))
    declared = {h.name for h in session.cluster.hosts}
    unknown = [n for n in names if n not in declared]
    if unknown or not names:
        raise UsageError(
            f"--limit names hosts not in {session.inventory}: {', '.join(unknown) or '(none)'}; "
            "use inventory host names, comma-separated"
        )
    return names


def _phase_ok(report: RunReport, name: str) -> bool:
    return any(p.name == name and p.status == "ok" for p in report.phases)


def _summary_rows(ctx: Context) -> list[dict[str, Any]]:
    nodes = _nodes_seen(ctx)
    rows = []
    for host in ctx.cluster.hosts:
        node = nodes.get(host.name, {})
        facts = ctx.facts.get(host.name)
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in node.get("status", {}).get("conditions", [])
        )
        changed = sum(r.hosts[host.name].changed for r in ctx.results.values() if host.name in r.hosts)
        seconds = sum(r.hosts[host.name].duration_s for r in ctx.results.values() if host.name in r.hosts)
        notes = [n for r in ctx.results.values() if host.name in r.hosts for n in r.hosts[host.name].notes]
        rows.append(
            {
                "host": host.name,
                "role": host.role,
                "arch": getattr(facts, "arch", None) or host.hardware.arch or "?",
                "version": node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "-"),
                "ready": "yes" if ready else (
                    "excluded" if host.name in ctx.excluded else "left out" if host.name in ctx.left_out else "no"
                ),
                "changed": changed,
                "time": f"{seconds:.1f}s",
                "notes": notes,
            }
        )
    return rows


def _nodes_seen(ctx: Context) -> dict[str, Any]:
    """The nodes as verify saw them; in --check (no verify) as they were before the run."""
    result = ctx.results.get("verify")
    if result is None:
        return dict(ctx.nodes_before or {})
    for tasks in result.captured.values():
        for res in tasks.values():
            try:
                items = json.loads(res.get("stdout") or "{}").get("items", [])
            except json.JSONDecodeError:
                continue
            return {n["metadata"]["name"]: n for n in items}
    return {}
