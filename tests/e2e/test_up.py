"""`provision up` end to end on lab hosts over real SSH, with the K3s stand-in from the lab's release mirror."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets as secrets_module
import subprocess
import threading
import urllib.parse
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


def leak_forms(secret: str) -> list[bytes]:
    """Every form a leaked secret takes: raw, JSON-escaped, URL-encoded, and base64 at each of the three alignments
    it can have inside a longer encoded blob (the part no neighbouring byte influences)."""
    raw = secret.encode()
    forms = [raw, json.dumps(secret)[1:-1].encode(), urllib.parse.quote(secret, safe="").encode(),
             urllib.parse.quote_plus(secret).encode()]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw)
        forms.append(encoded[4 if pad else 0:-4])
    return list(dict.fromkeys(forms))


def leaks(secrets: dict[str, str], places: dict[str, bytes]) -> list[str]:
    return [f"{name} in {where}" for name, secret in secrets.items() for where, blob in places.items()
            if any(form in blob for form in leak_forms(secret))]


def test_secrets_stay_out_of_output_artifacts_reports_processes_and_journals(cluster: LabCluster) -> None:
    """The server token, the agent token and a user secret in k3s_server_config appear in no form (raw, JSON,
    URL-encoded, base64) in the output, the state directory (reports, runner artifacts and the environment they
    record), any process's command line on the controller or the hosts while `up` runs, or the hosts' journals;
    also not in a --check run that changes the user secret (issue 12, item 8)."""
    lab = cluster.lab
    user_secret = "s3-" + secrets_module.token_hex(20)
    cluster.extra_vars["k3s_server_config"] = {"etcd-s3-secret-key": user_secret}
    cluster.write_inventory()
    commands: list[bytes] = []
    stop = threading.Event()

    def sample_command_lines() -> None:
        while not stop.is_set():
            commands.append(subprocess.run(["ps", "-eo", "args"], capture_output=True, check=False).stdout)
            for host in ("s1", "a1", "a2"):
                commands.append(lab.exec(host, "ps -eo args").stdout.encode())
            stop.wait(0.3)

    sampler = threading.Thread(target=sample_command_lines, daemon=True)
    sampler.start()
    try:
        outcome = cluster.up("--verbose")
    finally:
        stop.set()
        sampler.join()
    assert outcome.rc == 0, outcome.stdout + outcome.stderr
    token = lab.exec("s1", "cat /var/lib/rancher/k3s/server/token", check=True).stdout.strip()
    password = token.split("::server:", 1)[1]
    assert len(password) >= 32
    env_file = lab.exec("a1", "stat -c %a /etc/systemd/system/k3s-agent.service.env", check=True)
    assert env_file.stdout.strip() == "600"
    # Agents hold an agent token of their own (user `node`), and the server token is nowhere on them: a stolen
    # board can register nodes, not join as a server or read the datastore (issue 12, item 3).
    agent_token = lab.exec("s1", "cat /var/lib/rancher/k3s/server/agent-token", check=True).stdout.strip()
    assert "::node:" in agent_token and agent_token.split("::node:", 1)[1] != password
    agent_env = lab.exec("a1", "cat /etc/systemd/system/k3s-agent.service.env", check=True).stdout
    assert f"K3S_TOKEN={agent_token}" in agent_env.splitlines()
    on_agent = lab.exec("a1", f"grep -rlF -- '{password}' /etc /var/lib/rancher /run 2>/dev/null; true")
    assert on_agent.stdout.strip() == ""

    # A --check run that would change the user secret shows the change, masked.
    cluster.extra_vars["k3s_server_config"] = {"etcd-s3-secret-key": user_secret + "-new"}
    cluster.write_inventory()
    checked = cluster.up("--check", "--verbose")
    assert checked.rc == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert "etcd-s3-secret-key" in checked.stdout + checked.stderr  # the change is shown, its value is not

    secrets = {"server token": password, "agent token": agent_token.split("::node:", 1)[1],
               "etcd-s3-secret-key": user_secret, "etcd-s3-secret-key (new)": user_secret + "-new"}
    places = {"output": (outcome.stdout + outcome.stderr + checked.stdout + checked.stderr).encode(),
              "command lines": b"\n".join(commands)}
    places |= {str(path): path.read_bytes() for path in cluster.state_dir.rglob("*")
               if path.is_file() and path.name != "kubeconfig"}
    for host in ("s1", "a1", "a2"):
        places[f"{host}'s journal"] = lab.exec(host, "journalctl --no-pager -o cat", check=True).stdout.encode()
    assert leaks(secrets, places) == []
    assert len(commands) > 10  # the sampler really ran during the run


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
