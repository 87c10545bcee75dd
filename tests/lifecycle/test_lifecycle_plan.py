"""Pure day-2 decisions: which hosts `up` touches, and when removing a node is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provisioner.inventory import load_inventory
from provisioner.inventory.model import Cluster
from provisioner.lifecycle_plan import (
    CONTROL_PLANE_LABEL,
    ETCD_LABEL,
    LimitRefusedError,
    RemovalRefusedError,
    check_partial_reset,
    host_fingerprint,
    limit_pattern,
    limit_plan,
    plan_converge,
    plan_removal,
)
from provisioner.plan import quorum

pytestmark = pytest.mark.unit
VERSION = "v1.28.4+k3s2"


def cluster(tmp_path: Path, servers: int, agents: int, labels: dict[str, str] | None = None) -> Cluster:
    def hosts(prefix: str, count: int, base: int) -> str:
        lines = []
        for i in range(1, count + 1):
            lines.append(f"        {prefix}{i}:\n          ansible_host: 10.0.0.{base + i}")
            if labels and prefix == "a" and i == 1:
                lines.append("          k3s_node_labels: " + str(labels).replace("'", '"'))
        return "\n".join(lines)

    text = f"""all:
  vars:
    provision_cluster_name: edge
    k3s_version: {VERSION}
  children:
    server:
      hosts:
{hosts("s", servers, 10)}
"""
    if agents:
        text += f"""    agent:
      hosts:
{hosts("a", agents, 100)}
"""
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    return load_inventory(path)


def node(name: str, server: bool = False, ready: bool = True, version: str = VERSION, etcd: bool = False) -> Any:
    labels = {CONTROL_PLANE_LABEL: "true"} if server else {}
    if etcd:
        labels[ETCD_LABEL] = "true"
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "Unknown"}],
            "nodeInfo": {"kubeletVersion": version},
        },
    }


def test_only_new_hosts_are_touched_when_the_rest_are_members_as_described(tmp_path: Path) -> None:
    c = cluster(tmp_path, 3, 3)
    nodes = {n: node(n, server=n.startswith("s"), etcd=n.startswith("s")) for n in ("s1", "s2", "s3", "a1", "a2")}
    prints = {h.name: host_fingerprint(c, h) for h in c.hosts}
    plan = plan_converge(c, nodes, prints)
    assert plan.touch == ("a3",) and not plan.everything
    assert plan.reasons == {"a3": "not a member of the cluster"}
    assert limit_pattern(plan.touch) == "a3"


def test_growing_from_one_server_to_three_touches_the_first_server_too(tmp_path: Path) -> None:
    """The first server of a one-server (SQLite) cluster gets cluster-init when two servers are added (K3s moves its
    data into embedded etcd), so its record no longer matches: it is touched with the new servers."""
    single = cluster(tmp_path, 1, 1)
    prints = {h.name: host_fingerprint(single, h) for h in single.hosts}
    grown = cluster(tmp_path, 3, 1)
    nodes = {"s1": node("s1", server=True), "a1": node("a1")}
    plan = plan_converge(grown, nodes, prints)
    assert set(plan.touch) == {"s1", "s2", "s3"}, plan.reasons
    assert host_fingerprint(grown, grown.hosts[-1]) == prints["a1"]  # agents are not affected


def test_not_ready_old_version_changed_settings_and_no_record_are_touched(tmp_path: Path) -> None:
    c = cluster(tmp_path, 1, 3)
    nodes = {"s1": node("s1", server=True), "a1": node("a1", ready=False), "a2": node("a2", version="v1.27.9+k3s1"),
             "a3": node("a3")}
    prints = {h.name: host_fingerprint(c, h) for h in c.hosts}
    prints.pop("a3")
    plan = plan_converge(c, nodes, prints)
    assert plan.touch == ("a1", "a2", "a3")
    assert "Ready" in plan.reasons["a1"] and "v1.27.9" in plan.reasons["a2"] and "no record" in plan.reasons["a3"]

    relabelled = cluster(tmp_path, 1, 3, labels={"zone": "b"})
    plan = plan_converge(relabelled, nodes | {"a1": node("a1"), "a2": node("a2")},
                         {h.name: host_fingerprint(c, h) for h in c.hosts})
    assert plan.touch == ("a1",) and plan.reasons["a1"] == "node lacks zone=b"
    labelled = node("a1")
    labelled["metadata"]["labels"]["zone"] = "b"
    plan = plan_converge(relabelled, nodes | {"a1": labelled, "a2": node("a2")},
                         {h.name: host_fingerprint(c, h) for h in c.hosts})
    assert plan.touch == ("a1",) and "changed" in plan.reasons["a1"]


def test_a_node_that_lost_an_inventory_label_is_touched_though_its_record_matches(tmp_path: Path) -> None:
    c = cluster(tmp_path, 1, 1, labels={"zone": "b"})
    prints = {h.name: host_fingerprint(c, h) for h in c.hosts}
    bare = {"s1": node("s1", server=True), "a1": node("a1")}
    assert plan_converge(c, bare, prints).reasons == {"a1": "node lacks zone=b"}
    labelled = node("a1")
    labelled["metadata"]["labels"]["zone"] = "b"
    assert plan_converge(c, bare | {"a1": labelled}, prints).touch == ()


def test_fresh_cluster_all_flag_or_unsettled_first_server_touch_everything(tmp_path: Path) -> None:
    c = cluster(tmp_path, 1, 2)
    assert plan_converge(c, None, {}).everything
    assert plan_converge(c, {}, {}, touch_all=True).everything
    prints = {h.name: host_fingerprint(c, h) for h in c.hosts}
    nodes = {"s1": node("s1", server=True, ready=False), "a1": node("a1"), "a2": node("a2")}
    assert plan_converge(c, nodes, prints).everything
    with pytest.raises(ValueError, match="empty"):
        limit_pattern(())


def test_quorum_arithmetic() -> None:
    assert [quorum(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]


def test_removal_refusals(tmp_path: Path) -> None:
    single = cluster(tmp_path, 1, 1)
    nodes = {"s1": node("s1", server=True), "a1": node("a1")}
    with pytest.raises(RemovalRefusedError, match="last server"):
        plan_removal(single, "s1", nodes, reachable=True, force=False, embedded_etcd=False)
    with pytest.raises(RemovalRefusedError, match="not in the inventory"):
        plan_removal(single, "zz", nodes, reachable=True, force=False, embedded_etcd=False)
    with pytest.raises(RemovalRefusedError, match="--force"):
        plan_removal(single, "a1", nodes, reachable=False, force=False, embedded_etcd=False)
    forced = plan_removal(single, "a1", nodes, reachable=False, force=True, embedded_etcd=False)
    assert not forced.reset_host and forced.control_server == "s1" and not forced.etcd_member

    ha = cluster(tmp_path, 3, 0)
    servers = {n: node(n, server=True, etcd=True) for n in ("s1", "s2", "s3")}
    ok = plan_removal(ha, "s3", servers, reachable=True, force=False, embedded_etcd=True)
    assert ok.etcd_member and ok.control_server == "s1" and any("even" in n for n in ok.notes)
    # s2 down: removing healthy s3 leaves 1 Ready of 2 members, below quorum 2.
    one_down = servers | {"s2": node("s2", server=True, etcd=True, ready=False)}
    with pytest.raises(RemovalRefusedError, match="below the quorum"):
        plan_removal(ha, "s3", one_down, reachable=True, force=False, embedded_etcd=True)
    # ...but removing the dead s2 itself is what fixes it.
    dead = plan_removal(ha, "s2", one_down, reachable=False, force=True, embedded_etcd=True)
    assert dead.etcd_member and not dead.reset_host
    two_down = one_down | {"s3": node("s3", server=True, etcd=True, ready=False)}
    with pytest.raises(RemovalRefusedError, match="no quorum now"):
        plan_removal(ha, "s3", two_down, reachable=False, force=True, embedded_etcd=True)


def test_servers_listed_but_no_longer_nodes_do_not_count(tmp_path: Path) -> None:
    """After s2 and s3 were removed (still in the inventory), s1 is the last server of the cluster."""
    ha = cluster(tmp_path, 3, 0)
    with pytest.raises(RemovalRefusedError, match=r"last server of the cluster \(s2, s3 in the inventory are not"):
        plan_removal(ha, "s1", {"s1": node("s1", server=True, etcd=True)}, reachable=True, force=False,
                     embedded_etcd=True)


def test_partial_reset_keeps_a_server_and_etcd_quorum(tmp_path: Path) -> None:
    """reset --limit leaves the reset servers listed as etcd members that no longer answer."""
    ha = cluster(tmp_path, 3, 1)
    nodes = {n: node(n, server=True, etcd=True) for n in ("s1", "s2", "s3")} | {"a1": node("a1")}
    check_partial_reset(ha, ["a1"], nodes, embedded_etcd=True)
    check_partial_reset(ha, ["s3"], nodes, embedded_etcd=True)  # 2 of 3 members keep running: quorum holds
    with pytest.raises(RemovalRefusedError, match="1 of 3 members would run, below the quorum of 2"):
        check_partial_reset(ha, ["s2", "s3"], nodes, embedded_etcd=True)
    one_down = nodes | {"s2": node("s2", server=True, etcd=True, ready=False)}
    with pytest.raises(RemovalRefusedError, match="1 of 3 members would run"):
        check_partial_reset(ha, ["s3"], one_down, embedded_etcd=True)
    with pytest.raises(RemovalRefusedError, match="names every server"):
        check_partial_reset(ha, ["s1", "s2", "s3"], nodes, embedded_etcd=True)

    # s3 listed in the inventory but never joined: two members, and one of them cannot go.
    pair = {n: node(n, server=True, etcd=True) for n in ("s1", "s2")}
    with pytest.raises(RemovalRefusedError, match="1 of 2 members would run"):
        check_partial_reset(ha, ["s2"], pair, embedded_etcd=True)
    # Without embedded etcd (SQLite or an external datastore) only "a server is left" counts.
    check_partial_reset(ha, ["s2", "s3"], pair, embedded_etcd=False)


def test_limit_touches_only_the_requested_hosts_and_says_which_wait(tmp_path: Path) -> None:
    c = cluster(tmp_path, 1, 3)
    nodes = {"s1": node("s1", server=True), "a1": node("a1", ready=False)}
    plan = plan_converge(c, nodes, {h.name: host_fingerprint(c, h) for h in c.hosts})
    assert plan.touch == ("a1", "a2", "a3")
    limited, left_out = limit_plan(plan, ["a2"], "s1")
    assert limited.touch == ("a2",) and left_out == ("a1", "a3") and not limited.everything


def test_limit_cannot_leave_out_a_first_server_that_is_not_settled(tmp_path: Path) -> None:
    c = cluster(tmp_path, 1, 2)
    fresh = plan_converge(c, None, {})
    with pytest.raises(LimitRefusedError, match="leaves out s1, the first server .no cluster on the first server yet."):
        limit_plan(fresh, ["a1"], "s1")
    limited, left_out = limit_plan(fresh, ["s1"], "s1")
    assert limited.touch == ("s1",) and left_out == ("a1", "a2")
    forced, _ = limit_plan(plan_converge(c, {}, {}, touch_all=True), ["a2"], "s1")  # --all --limit a2
    assert forced.touch == ("a2",)
