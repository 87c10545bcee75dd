"""`provision up` end to end on lab hosts over real SSH, with the K3s stand-in from the lab's release mirror."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from tests.e2e.harness import LabCluster, node_ready, unit_invocation
from tests.lab.lab import HostSpec

pytestmark = pytest.mark.lab

OTHER_CONTEXT = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "elsewhere", "cluster": {"server": "https://127.0.0.1:1"}}],
    "users": [{"name": "elsewhere", "user": {"token": "not-a-real-token"}}],
    "contexts": [{"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "elsewhere"}}],
    "current-context": "elsewhere",
}


@pytest.fixture
def cluster(make_lab, tmp_path: Path) -> LabCluster:
    lab = make_lab(["s1", "a1", "a2"])
    made = LabCluster(lab, tmp_path / "cluster", servers=["s1"], agents=["a1", "a2"])
    made.kubeconfig.write_text(yaml.safe_dump(OTHER_CONTEXT))
    return made


def test_up_then_kubectl_then_noop_rerun(cluster: LabCluster) -> None:
    first = cluster.up()
    assert first.rc == 0, first.stdout + first.stderr
    assert first.report["status"] == "ok"
    assert {h: r["ready"] for h, r in first.report["hosts"].items()} == {"s1": "yes", "a1": "yes", "a2": "yes"}

    # The merged kubeconfig reaches the API at the server's address (in the SANs) and kept the other context.
    nodes = cluster.nodes()
    assert set(nodes) == {"s1", "a1", "a2"}
    assert all(node_ready(n) for n in nodes.values())
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes.values()} == {"v1.28.4+k3s2"}
    config = cluster.kubeconfig_data()
    assert {c["name"] for c in config["contexts"]} == {"elsewhere", "lab"}
    assert config["current-context"] == "elsewhere", "up switched kubectl's current context without --use-context"
    server = next(c for c in config["clusters"] if c["name"] == "lab")["cluster"]["server"]
    assert server == f"https://{cluster.lab.ip('s1')}:6443"
    assert (cluster.state_dir / "lab" / "kubeconfig").stat().st_mode & 0o777 == 0o600

    before = {h: unit_invocation(cluster.lab, h, u) for h, u in (("s1", "k3s"), ("a1", "k3s-agent"))}
    second = cluster.up()
    assert second.rc == 0, second.stdout + second.stderr
    assert second.changed_total() == 0, second.changed_by_host()
    after = {h: unit_invocation(cluster.lab, h, u) for h, u in (("s1", "k3s"), ("a1", "k3s-agent"))}
    assert before == after, "a rerun with nothing to change restarted a service"

    # The rerun above may skip hosts already as described; --all runs every role on every host: still 0 changed.
    forced = cluster.up("--all", "--use-context")
    assert forced.rc == 0, forced.stdout + forced.stderr
    assert cluster.kubeconfig_data()["current-context"] == "lab"
    assert {p["name"] for p in forced.report["phases"] if p["status"] == "ok"} >= {"prepare", "install"}
    assert forced.changed_total() == 0, forced.changed_by_host()
    assert before == {h: unit_invocation(cluster.lab, h, u) for h, u in (("s1", "k3s"), ("a1", "k3s-agent"))}


def test_secrets_stay_out_of_output_artifacts_and_reports(cluster: LabCluster) -> None:
    outcome = cluster.up("--verbose")
    assert outcome.rc == 0, outcome.stdout + outcome.stderr
    token = cluster.lab.exec("s1", "cat /var/lib/rancher/k3s/server/token", check=True).stdout.strip()
    password = token.split("::server:", 1)[1]
    assert len(password) >= 32
    assert password not in outcome.stdout + outcome.stderr
    leaked = [
        str(path)
        for path in cluster.state_dir.rglob("*")
        if path.is_file() and path.name != "kubeconfig" and password.encode() in path.read_bytes()
    ]
    assert leaked == []
    env_file = cluster.lab.exec("a1", "stat -c %a /etc/systemd/system/k3s-agent.service.env", check=True)
    assert env_file.stdout.strip() == "600"
    # Agents hold an agent token of their own (user `node`), and the server token is nowhere on them: a stolen
    # board can register nodes, not join as a server or read the datastore (issue 12, item 3).
    agent_token = cluster.lab.exec("s1", "cat /var/lib/rancher/k3s/server/agent-token", check=True).stdout.strip()
    assert "::node:" in agent_token and agent_token.split("::node:", 1)[1] != password
    agent_env = cluster.lab.exec("a1", "cat /etc/systemd/system/k3s-agent.service.env", check=True).stdout
    assert f"K3S_TOKEN={agent_token}" in agent_env.splitlines()
    on_agent = cluster.lab.exec("a1", f"grep -rlF -- '{password}' /etc /var/lib/rancher /run 2>/dev/null; true")
    assert on_agent.stdout.strip() == ""
    agent_password = agent_token.split("::node:", 1)[1]
    assert agent_password not in outcome.stdout + outcome.stderr
    assert [str(p) for p in cluster.state_dir.rglob("*")
            if p.is_file() and p.name != "kubeconfig" and agent_password.encode() in p.read_bytes()] == []


def test_unreachable_agent_is_reported_and_a_rerun_completes_it(cluster: LabCluster) -> None:
    cluster.lab.stop("a2")
    partial = cluster.up()
    assert partial.rc == 3, partial.stdout + partial.stderr  # ExitCode.UNREACHABLE
    assert partial.report["error"]["details"]
    assert any(line.startswith("a2: unreachable") for line in partial.report["error"]["details"])
    assert partial.report["hosts"]["a2"]["ready"] == "excluded"
    nodes = cluster.nodes()
    assert set(nodes) == {"s1", "a1"} and all(node_ready(n) for n in nodes.values())

    cluster.lab.start("a2")
    rerun = cluster.up()
    assert rerun.rc == 0, rerun.stdout + rerun.stderr
    changed = rerun.changed_by_host()
    assert changed.get("a2", 0) > 0
    assert changed.get("s1", 0) == 0 and changed.get("a1", 0) == 0, changed
    assert node_ready(cluster.nodes()["a2"])


def test_check_mode_changes_nothing(cluster: LabCluster) -> None:
    outcome = cluster.up("--check")
    assert outcome.rc == 0, outcome.stdout + outcome.stderr
    assert outcome.changed_total() > 0  # it reports what would change ...
    for host in ("s1", "a1", "a2"):  # ... and changes nothing
        assert cluster.lab.exec(host, "test -e /usr/local/bin/k3s || test -e /etc/rancher/k3s").returncode == 1
    assert not cluster.kubeconfig_data().get("contexts", [])[1:]  # only the pre-existing context


def test_bad_inventory_is_refused_before_any_ssh(cluster: LabCluster) -> None:
    text = cluster.inventory.read_text().replace("v1.28.4+k3s2", "1.28.4")
    cluster.inventory.write_text(text)
    outcome = cluster.up()
    assert outcome.rc == 2
    details = "\n".join(outcome.report["details"])
    assert "k3s_version" in details and str(cluster.inventory) in details
    assert not (cluster.state_dir / "lab" / "runner").exists()


@pytest.mark.arm64
def test_arm64_host_gets_the_arm64_artifact(make_lab, tmp_path: Path, mirror_dir: Path) -> None:
    lab = make_lab([HostSpec("s1"), HostSpec("p1", arch="arm64", board="rpi4")])
    made = LabCluster(lab, tmp_path / "cluster", servers=["s1"], agents=["p1"])
    outcome = made.up()
    assert outcome.rc == 0, outcome.stdout + outcome.stderr
    sums = (mirror_dir / "v1.28.4+k3s2" / "sha256sum-arm64.txt").read_text().split()
    expected = sums[sums.index("k3s-arm64") - 1]
    installed = lab.exec("p1", "sha256sum /usr/local/bin/k3s", check=True).stdout.split()[0]
    assert installed == expected
    assert installed != hashlib.sha256((mirror_dir / "v1.28.4+k3s2" / "k3s").read_bytes()).hexdigest()
    node = made.nodes()["p1"]
    assert node["metadata"]["labels"]["kubernetes.io/arch"] == "arm64"
    assert node_ready(node)
