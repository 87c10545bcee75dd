"""K3s high availability on lab hosts through the real `provision up`: embedded etcd behind a keepalived VIP,
PostgreSQL, MariaDB and external etcd datastores (real servers from Debian's packages, bound to the lab gateway)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.harness import node_ready
from tests.ha.datastores import LabDatastore, etcd_on, gateway_of, mariadb_on, postgres_on
from tests.ha.harness import HaCluster, vip_for, vip_holder, wait_until
from tests.upgrade.helpers import NEW

pytestmark = pytest.mark.lab

SERVERS3 = ["s1", "s2", "s3"]
WRONG_PASSWORD = "not-the-password"  # noqa: S105 - deliberately wrong


def test_three_servers_on_embedded_etcd_behind_a_keepalived_vip(make_lab, tmp_path: Path) -> None:
    lab = make_lab([*SERVERS3, "a1"])
    vip = vip_for(lab)
    cluster = HaCluster(lab, tmp_path / "c", servers=SERVERS3, agents=["a1"],
                        extra_vars={"keepalived_vip_address": vip})
    outcome = cluster.up()
    assert outcome.rc == 0, outcome.stdout + outcome.stderr
    assert {h: r["ready"] for h, r in outcome.report["hosts"].items()} == dict.fromkeys([*SERVERS3, "a1"], "yes")

    # Everything goes through the endpoint: kubeconfig, tls-san, joiners and agents.
    config = cluster.kubeconfig_data()
    assert next(c for c in config["clusters"] if c["name"] == "lab")["cluster"]["server"] == f"https://{vip}:6443"
    nodes = cluster.nodes()
    assert set(nodes) == {*SERVERS3, "a1"} and all(node_ready(n) for n in nodes.values())
    for server in SERVERS3:
        assert nodes[server]["metadata"]["labels"].get("node-role.kubernetes.io/etcd") == "true", server
    for host in ["s2", "s3", "a1"]:
        text = lab.exec(host, "cat /etc/rancher/k3s/config.yaml", check=True).stdout
        assert f"server: https://{vip}:6443" in text, (host, text)
    assert "cluster-init: true" in lab.exec("s1", "cat /etc/rancher/k3s/config.yaml", check=True).stdout

    # A rerun changes nothing, and nothing restarts.
    again = cluster.up()
    assert again.rc == 0, again.stdout + again.stderr
    assert again.changed_total() == 0, again.changed_by_host()

    _rolling_restart_then_critical_refusal(cluster)

    # A rolling upgrade behind the VIP: a server holding it hands it to a peer (whose priority is raised for a
    # moment) and yields before K3s restarts there; the raise is taken back everywhere, keepalived never stopped.
    first_holder = vip_holder(lab, SERVERS3, vip)
    since = int(time.time())
    upgrade = cluster.provision("upgrade", "--version", NEW, "--yes", "--known-hosts", str(lab.known_hosts))
    assert upgrade.rc == 0, upgrade.stdout + upgrade.stderr[-4000:]
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in cluster.nodes().values()} == {NEW}
    journal = lab.exec(first_holder, f"journalctl -o short-unix --no-pager --since @{since} -u keepalived -u k3s",
                       check=True).stdout
    yielded = _first_stamp(journal, "Entering BACKUP STATE")
    stopped_k3s = _first_stamp(journal, "Received SIGTERM")
    assert yielded is not None and stopped_k3s is not None and yielded < stopped_k3s, journal[-3000:]
    assert "Stopping" not in "".join(line for line in journal.splitlines() if "Keepalived" in line), journal[-3000:]
    for server in SERVERS3:
        assert lab.exec(server, "systemctl is-active keepalived").stdout.strip() == "active", server
        assert lab.exec(server, "cat /etc/keepalived/k3s-api-handover", check=True).stdout.strip() == "0", server
    assert wait_until(cluster.api_answers, 60) is not None

    # The server holding the VIP goes down: the VIP moves and the API keeps answering through it.
    holder = vip_holder(lab, SERVERS3, vip)
    assert holder is not None
    lab.stop(holder)
    moved = wait_until(lambda: vip_holder(lab, SERVERS3, vip) not in (None, holder) and cluster.api_answers(), 60)
    assert moved is not None, "the VIP did not move, or the API did not answer through it"
    survivors = [s for s in SERVERS3 if s != holder]

    # A second server goes down: no quorum, so the API is unavailable (readyz fails, keepalived drops the VIP).
    lab.stop(survivors[0])
    lost = wait_until(lambda: not cluster.api_answers(), 90, interval=2)
    assert lost is not None, "the API still answered with one server of three"

    # One comes back: quorum again, the API answers through the VIP.
    lab.start(holder)
    back = wait_until(cluster.api_answers, 180, interval=2)
    assert back is not None, "the API did not come back with two servers of three"

    # Reset leaves no keepalived of ours behind on the servers it reaches: stopped, disabled, its files gone.
    lab.start(survivors[0])
    reset = cluster.provision("reset", "--yes", "--known-hosts", str(lab.known_hosts))
    assert reset.rc == 0, reset.stdout + reset.stderr[-3000:]
    for server in SERVERS3:
        assert lab.exec(server, "systemctl is-enabled keepalived").stdout.strip() == "disabled", server
        assert lab.exec(server, "systemctl is-active keepalived").stdout.strip() == "inactive", server
        assert lab.exec(server, "ls /etc/keepalived", check=True).stdout.split() == ["keepalived.conf.sample"]
        assert lab.exec(server, f"ip -o addr show to {vip}", check=True).stdout.strip() == "", server


def _rolling_restart_then_critical_refusal(cluster: HaCluster) -> None:
    lab = cluster.lab
    # A setting K3s does not require to match (disabling a packaged component) is applied to the running cluster
    # with a rolling restart: servers one at a time, each an etcd member and Ready before the next restarts.
    started = {s: _started_monotonic(lab, s) for s in SERVERS3}
    cluster.extra_vars["k3s_server_config"] = {"disable": ["traefik"]}
    cluster.write_inventory()
    rolled = cluster.up()
    assert rolled.rc == 0, rolled.stdout + rolled.stderr[-4000:]
    restarted = {s: _started_monotonic(lab, s) for s in SERVERS3}
    assert all(restarted[s] > started[s] for s in SERVERS3), (started, restarted)
    assert restarted["s1"] < restarted["s2"] < restarted["s3"], restarted
    for server in SERVERS3:
        assert "- traefik" in lab.exec(server, "cat /etc/rancher/k3s/config.yaml", check=True).stdout, server

    # A critical setting is refused before any host is contacted (exit 4), and nothing changes.
    cluster.extra_vars["k3s_server_config"] = {"disable": ["traefik"], "cluster-cidr": "10.52.0.0/16"}
    cluster.write_inventory()
    refused = cluster.up()
    assert refused.rc == 4, refused.stdout + refused.stderr[-3000:]
    assert "cluster-cidr: 10.42.0.0/16 -> 10.52.0.0/16" in refused.stdout + refused.stderr
    assert [p["name"] for p in refused.report["phases"]] in ([], ["settings"]), refused.report["phases"]
    assert {s: _started_monotonic(lab, s) for s in SERVERS3} == restarted
    cluster.extra_vars["k3s_server_config"] = {"disable": ["traefik"]}
    cluster.write_inventory()


def _started_monotonic(lab, host: str) -> int:
    """When k3s last became active on `host`, on the kernel's monotonic clock (the lab hosts share one kernel)."""
    out = lab.exec(host, "systemctl show --property=ActiveEnterTimestampMonotonic --value k3s", check=True).stdout
    return int(out.strip())


def _first_stamp(journal: str, text: str) -> float | None:
    """Time of the first journal line (short-unix format) containing `text`."""
    return next((float(line.split()[0]) for line in journal.splitlines() if text in line), None)


def _datastore_cluster(lab, tmp_path: Path, store: LabDatastore, password: str | None) -> HaCluster:
    return HaCluster(lab, tmp_path / f"c-{store.kind}", servers=["s1", "s2"], agents=[],
                     extra_vars={"k3s_datastore_endpoint": store.endpoint}, datastore_password=password)


def _assert_forms_on(cluster: HaCluster, store: LabDatastore) -> None:
    outcome = cluster.up()
    assert outcome.rc == 0, outcome.stdout + outcome.stderr
    nodes = cluster.nodes()
    assert set(nodes) == {"s1", "s2"} and all(node_ready(n) for n in nodes.values())
    lab = cluster.lab
    for server in ("s1", "s2"):
        dropin = "/etc/rancher/k3s/config.yaml.d/50-datastore.yaml"
        mode = lab.exec(server, f"stat -c %a {dropin}", check=True).stdout.strip()
        assert mode == "600"
        config = lab.exec(server, "cat /etc/rancher/k3s/config.yaml", check=True).stdout
        assert "cluster-init" not in config and "datastore-endpoint" not in config
        if store.password:
            assert store.password in lab.exec(server, f"cat {dropin}", check=True).stdout
            assert store.password not in lab.exec(server, "ps -eo args", check=True).stdout
            assert store.password not in lab.exec(server, "journalctl --no-pager -o cat", check=True).stdout
    if store.password:
        assert store.password not in outcome.stdout + outcome.stderr
        leaked = [p for p in cluster.state_dir.rglob("*")
                  if p.is_file() and p.name != "datastore-password" and store.password.encode() in p.read_bytes()]
        assert leaked == []
        # The 0600 copy of PROVISION_DATASTORE_PASSWORD lived as long as the command only.
        assert not (cluster.state_dir / "lab" / "secrets" / "datastore-password").exists()


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_two_servers_on_an_sql_datastore(make_lab, tmp_path: Path, kind: str) -> None:
    lab = make_lab(["s1", "s2"])
    gateway = gateway_of(lab)
    starter = postgres_on(gateway, lab.subnet) if kind == "postgres" else mariadb_on(gateway)
    with starter as store:
        # A wrong password is caught from every server before anything is installed, and said plainly.
        wrong = _datastore_cluster(lab, tmp_path, store, password=WRONG_PASSWORD)
        failed = wrong.up()
        assert failed.rc != 0
        text = failed.stdout + failed.stderr
        assert "wrong password" in text, text
        assert "probe-datastore" in text
        assert WRONG_PASSWORD not in text
        assert lab.exec("s1", "test -e /usr/local/bin/k3s").returncode != 0, "k3s was installed anyway"

        cluster = _datastore_cluster(lab, tmp_path, store, password=store.password)
        _assert_forms_on(cluster, store)
        assert store.kine_rows() > 0, "the datastore holds no kine rows"
        rerun = cluster.up()  # a rerun changes nothing (the matrix's no-op cell for this datastore)
        assert rerun.rc == 0 and rerun.changed_total() == 0, rerun.changed_by_host()

        # A critical setting that would differ from the running servers is refused before it is applied.
        cluster.extra_vars["k3s_server_config"] = {"cluster-cidr": "10.52.0.0/16"}
        cluster.write_inventory()
        refused = cluster.up()
        assert refused.rc != 0
        assert "cluster-cidr: 10.42.0.0/16 -> 10.52.0.0/16" in refused.stdout + refused.stderr
        assert "10.52.0.0" not in lab.exec("s1", "cat /etc/rancher/k3s/config.yaml", check=True).stdout


def test_two_servers_on_external_etcd(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["s1", "s2"])
    with etcd_on(gateway_of(lab), tmp_path / "etcd") as store:
        cluster = _datastore_cluster(lab, tmp_path, store, password=None)
        _assert_forms_on(cluster, store)
        keys = store.etcd_keys()
        assert any("s1" in k for k in keys) and any("s2" in k for k in keys), keys[:20]

        # An external-datastore cluster upgrades: no backup (its state is in the datastore, said so), servers one
        # at a time, the data still in the datastore afterwards. (The backup phase used to fail here.)
        upgrade = cluster.provision("upgrade", "--version", NEW, "--yes", "--json",
                                    "--known-hosts", str(lab.known_hosts))
        assert upgrade.rc == 0, upgrade.stdout[-4000:] + upgrade.stderr[-4000:]
        document = json.loads(upgrade.stdout)
        assert "backup" not in {p["name"] for p in document["phases"]}, document["phases"]
        assert any("external datastore" in w for w in document["warnings"]), document["warnings"]
        nodes = cluster.nodes()
        assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes.values()} == {NEW}
        assert all(node_ready(n) for n in nodes.values())
        assert store.etcd_keys(), "the datastore lost the cluster's keys"


def test_unreachable_datastore_is_reported_as_such(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["s1", "s2"])
    closed = LabDatastore("postgres", gateway_of(lab), 9, password=WRONG_PASSWORD)  # discard port: nobody listens
    cluster = _datastore_cluster(lab, tmp_path, closed, password=WRONG_PASSWORD)
    failed = cluster.up()
    assert failed.rc != 0
    assert "cannot connect to" in failed.stdout + failed.stderr


def test_kube_vip_manifest_puts_every_client_on_its_address(make_lab, tmp_path: Path) -> None:
    """kube-vip runs as pods, which the K3s stand-in cannot run: the test plays kube-vip's part by announcing the
    address on the server once K3s runs there with the manifest deployed (what kube-vip's DaemonSet would do).
    Checked: the manifest, tls-san, the agent joining through the address and the kubeconfig pointing at it."""
    lab = make_lab(["s1", "a1"])
    vip = vip_for(lab)
    manifest = "/var/lib/rancher/k3s/server/manifests/kube-vip.yaml"
    cluster = HaCluster(lab, tmp_path / "c", servers=["s1"], agents=["a1"], extra_vars={"kube_vip_address": vip})
    done = threading.Event()

    def play_kube_vip() -> None:
        while not done.wait(0.5):
            if lab.exec("s1", f"test -s {manifest} && systemctl is-active -q k3s").returncode == 0:
                lab.exec("s1", f"ip addr add {vip}/32 dev eth0", check=True)
                return

    announcer = threading.Thread(target=play_kube_vip, daemon=True)
    announcer.start()
    try:
        outcome = cluster.up()
    finally:
        done.set()
        announcer.join(timeout=10)
    assert outcome.rc == 0, outcome.stdout + outcome.stderr

    assert lab.exec("s1", f"stat -c %a {manifest}", check=True).stdout.strip() == "600"
    documents = list(yaml.safe_load_all(lab.exec("s1", f"cat {manifest}", check=True).stdout))
    daemonset = next(d for d in documents if d["kind"] == "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["address"] == vip and env["vip_interface"] == "eth0" and env["cp_enable"] == "true"
    assert pod["hostNetwork"] is True and pod["serviceAccountName"] == "kube-vip"
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["key"] == "node-role.kubernetes.io/control-plane"
    assert {d["kind"] for d in documents} == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"}

    server_config = yaml.safe_load(lab.exec("s1", "cat /etc/rancher/k3s/config.yaml", check=True).stdout)
    assert vip in server_config["tls-san"]
    agent_config = yaml.safe_load(lab.exec("a1", "cat /etc/rancher/k3s/config.yaml", check=True).stdout)
    assert agent_config["server"] == f"https://{vip}:6443"
    config = cluster.kubeconfig_data()
    assert next(c for c in config["clusters"] if c["name"] == "lab")["cluster"]["server"] == f"https://{vip}:6443"
    nodes = cluster.nodes()
    assert set(nodes) == {"s1", "a1"} and all(node_ready(n) for n in nodes.values())
