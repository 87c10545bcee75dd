"""Membership: let `up` work only on hosts that are not yet members as described, so adding a node stays cheap.

Before probing, the first server is asked once for its node list (playbooks/nodes.yml). Hosts whose node is Ready
at the target version in the right role, and whose inventory settings are unchanged since the last successful run
(a digest per host in the state directory), are settled: the prepare and install phases run with a limit naming
only the others, and probing skips the settled hosts. The join token is still read from the first server by
delegation, so it is not in the limit. `--all` (FlavorOptions.touch_all) turns this off.

Before anything changes, the digests of the hosts this run touches are forgotten: a run that fails or is interrupted
half way leaves them unrecorded, so the next `up` touches them again even when the inventory was reverted to what
the last record says (the hosts may hold the failed run's settings). After a successful run the record phase
stores the digests of every host that verified Ready.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.errors import PhaseFailedError, RefusedError
from provisioner.lifecycle_plan import LimitRefusedError, host_fingerprint, limit_plan, nodes_by_name, plan_converge
from provisioner.phases.base import Context, PhaseOutcome, unless_verified
from provisioner.runner import PlaybookResult, PlaybookRun, Runner

NODE_LIST_TASK = "Read the cluster's node list"
MEMBERS_FILE = "members.json"


# The flavor's playbook (Flavor.node_query) that asks one server for the node list: (playbook, extra vars).
NodeQuery = Callable[[str | None], tuple[str, dict[str, Any]]]


def read_node_list(
    runner: Runner, inventory: Path, query: NodeQuery, server: str | None = None
) -> dict[str, Any] | None:
    """The node list as `server` (default: the first server) sees it; None when it runs no cluster yet, or cannot
    be asked (unreachable, login or sudo failed): callers that must tell those apart use `ask_node_list`.
    """
    return ask_node_list(runner, inventory, query, server)[0]


def ask_node_list(
    runner: Runner, inventory: Path, query: NodeQuery, server: str | None = None
) -> tuple[dict[str, Any] | None, PlaybookResult]:
    """The node list (None when the server answers but runs no cluster) and the run, whose failed and unreachable
    hosts say when the server could not be asked at all."""
    playbook, extravars = query(server)
    result = runner.run(
        PlaybookRun(playbook=playbook, inventory=inventory, extravars=extravars, capture=frozenset({NODE_LIST_TASK}))
    )
    for tasks in result.captured.values():
        answer = tasks.get(NODE_LIST_TASK) or {}
        if answer.get("rc") != 0:
            return None, result
        try:
            return nodes_by_name(json.loads(answer.get("stdout") or "{}").get("items", [])), result
        except json.JSONDecodeError:
            return None, result
    return None, result


def host_key_hint(reasons: dict[str, str]) -> str:
    """What to do when ssh refused a host's key or sudo wanted a password (the reasons are Ansible's own text)."""
    text = " ".join(reasons.values()).lower()
    hints = []
    if "host key verification failed" in text:
        hints.append("ssh did not know or did not accept a host key: `provision trust` with this inventory (and the "
                     "same --known-hosts) shows each host's fingerprint and records new ones after you compared them")
    if "missing sudo password" in text or "a password is required" in text:
        hints.append("sudo asks for a password: give it with --ask-become-pass (asked once, never echoed) or "
                     "PROVISION_BECOME_PASSWORD")
    if "incorrect sudo password" in text:
        hints.append("sudo refused the become password: give the one sudo asks for (--ask-become-pass or "
                     "PROVISION_BECOME_PASSWORD)")
    return "".join(f"; {hint}" for hint in hints)


def members_file(ctx: Context) -> Path:
    return ctx.state.root / MEMBERS_FILE


def load_fingerprints(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save_fingerprints(path: Path, fingerprints: dict[str, str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(fingerprints, handle, indent=2, sort_keys=True)


@dataclass
class MembershipPhase:
    node_query: NodeQuery
    touch_all: bool = False
    name: str = "membership"
    title: str = "Find the hosts that are not yet members as described"
    changes_hosts: bool = False

    def run(self, ctx: Context) -> PhaseOutcome:
        # --all needs no node list to decide; --check still reads it, to show the nodes as they are.
        nodes = None
        if ctx.check or not self.touch_all:  # --all needs no node list; --check reads it to show the nodes as they are
            nodes, asked = ask_node_list(ctx.runner, ctx.inventory, self.node_query)
            if asked.unreachable_hosts or asked.failed_hosts:
                # A server that cannot be asked is not a server without a cluster: installing as if it were new
                # could start a second cluster. Stop before anything changes.
                raise PhaseFailedError(
                    phase=self.name,
                    rc=asked.rc,
                    failed=asked.failed_hosts,
                    unreachable=asked.unreachable_hosts,
                    resume_hint="nothing was changed: the cluster's state could not be read from its first server; "
                    "make it reachable (SSH, login, sudo) and rerun the same command"
                    + host_key_hint({**asked.unreachable_hosts, **asked.failed_hosts}),
                )
        ctx.nodes_before = nodes
        recorded = load_fingerprints(members_file(ctx))
        plan = plan_converge(ctx.cluster, nodes, recorded, touch_all=self.touch_all)
        if ctx.requested is not None:
            try:
                plan, ctx.left_out = limit_plan(plan, ctx.requested, ctx.cluster.first_server.name)
            except LimitRefusedError as exc:
                raise RefusedError(str(exc)) from None
            if ctx.left_out:
                ctx.reporter.info(f"left out by --limit (a later run converges them): {', '.join(ctx.left_out)}")
        if not ctx.check and any(host in recorded for host in plan.touch):
            save_fingerprints(members_file(ctx), {h: d for h, d in recorded.items() if h not in plan.touch})
        if plan.everything:
            ctx.only = None
            return PhaseOutcome(status="ok", note=f"all {len(plan.touch)} host(s): {next(iter(plan.reasons.values()))}")
        ctx.only = plan.touch
        for host in plan.touch:
            ctx.reporter.info(f"{host}: {plan.reasons[host]}")
        note = f"{len(plan.touch)} to converge, {len(plan.settled)} already members as described"
        ctx.reporter.info(note)
        return PhaseOutcome(status="ok", note=note)


@dataclass
class RecordMembersPhase:
    """Store each verified host's inventory digest, so the next `up` can leave it alone."""

    name: str = "record"
    title: str = "Record the hosts that are members as described"
    changes_hosts: bool = False

    def run(self, ctx: Context) -> PhaseOutcome:
        skipped = unless_verified(ctx)
        if skipped is not None:
            return skipped
        path = members_file(ctx)
        recorded = load_fingerprints(path)
        declared = {h.name for h in ctx.cluster.hosts}
        recorded = {h: d for h, d in recorded.items() if h in declared}
        for host in ctx.cluster.hosts:
            if host.name not in ctx.excluded and host.name not in ctx.left_out:
                recorded[host.name] = host_fingerprint(ctx.cluster, host)
        save_fingerprints(path, recorded)
        return PhaseOutcome(status="ok")
