"""The K3s stand-in on lab hosts under systemd, driven the way the product will drive real k3s.

The binary comes from the lab's release mirror (checked against the release's checksum file), runs
from k3s-style units with ``Type=notify``, and the cluster is checked from the machine with the
upstream ``/usr/bin/kubectl`` through the fetched kubeconfig — nothing is asked of the stand-in
through a back door.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.lab.fixtures import new_lab_id, require_docker
from tests.lab.lab import HostSpec, Lab

# One xdist worker runs this whole module, so its module-scoped fixture starts once (scripts/test runs in parallel).
pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("standin-on-lab-cluster")]

VERSION = "v1.28.4+k3s2"
KUBECTL = "/usr/bin/kubectl"
TOKEN_PATH = "/var/lib/rancher/k3s/server/token"  # noqa: S105 - a path, not a secret
CA_MISMATCH = "token CA hash does not match the Cluster CA certificate hash"


def unit_text(role: str) -> str:
    """A k3s unit as the official installer lays it down (essentials from shared/reference/k3s.md)."""
    name = "k3s" if role == "server" else "k3s-agent"
    return f"""[Unit]
Description=Lightweight Kubernetes
Wants=network-online.target
After=network-online.target

[Install]
WantedBy=multi-user.target

[Service]
Type=notify
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/sysconfig/%N
EnvironmentFile=-/etc/systemd/system/{name}.service.env
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/k3s {role}
"""


def install_binary(lab: Lab, host: str) -> None:
    """Download k3s from the mirror, verify it against sha256sum-amd64.txt, install it with its symlinks."""
    script = f"""
        set -e; cd /tmp
        curl -fsS -o k3s '{lab.mirror_url}/{VERSION}/k3s'
        curl -fsS -o sha256sum-amd64.txt '{lab.mirror_url}/{VERSION}/sha256sum-amd64.txt'
        grep -E '  k3s$' sha256sum-amd64.txt | sha256sum -c --quiet
        install -m 0755 k3s /usr/local/bin/k3s
        for tool in kubectl crictl ctr; do ln -sf k3s /usr/local/bin/$tool; done
    """
    result = lab.ssh(host, script)
    assert result.returncode == 0, result.stdout + result.stderr


def install_unit(lab: Lab, host: str, role: str, env: dict[str, str], config: str | None = None) -> str:
    """Write unit, env file (0600, via stdin: it holds the token) and config.yaml; returns the unit name."""
    name = "k3s" if role == "server" else "k3s-agent"
    unit = lab.ssh(host, f"cat > /etc/systemd/system/{name}.service", input=unit_text(role))
    assert unit.returncode == 0, unit.stderr
    env_text = "".join(f"{key}={value}\n" for key, value in env.items())
    written = lab.ssh(host, f"umask 077; cat > /etc/systemd/system/{name}.service.env", input=env_text)
    assert written.returncode == 0, written.stderr
    if config is not None:
        lab.ssh(host, "mkdir -p /etc/rancher/k3s && cat > /etc/rancher/k3s/config.yaml", input=config, check=True)
    lab.ssh(host, f"systemctl daemon-reload && systemctl enable -q {name}", check=True)
    return name


def start_and_watch(lab: Lab, host: str, unit: str, seconds: float) -> list[str]:
    """Start without blocking and record the distinct `systemctl is-active` states until active or timeout."""
    script = f"""
        systemctl start --no-block {unit}
        end=$(( $(date +%s) + {int(seconds)} ))
        while [ $(date +%s) -lt $end ]; do
          state=$(systemctl is-active {unit}); echo $state
          [ "$state" = active ] && break; sleep 0.1
        done | uniq
    """
    return lab.ssh(host, script, timeout=seconds + 30).stdout.split()


def journal(lab: Lab, host: str, unit: str) -> str:
    return lab.exec(host, f"journalctl -u {unit} --no-pager -o cat").stdout


def read_token(lab: Lab) -> str:
    """The server token from host1 (kept in memory only; never printed)."""
    result = lab.ssh("host1", f"cat {TOKEN_PATH}")
    assert result.returncode == 0, "the server wrote no token file"
    return result.stdout.strip()


def write_kubeconfig(lab: Lab, server_address: str, dest: Path) -> Path:
    """Fetch k3s.yaml from host1 over SSH and point it at ``server_address`` (file mode 0600)."""
    fetched = lab.ssh("host1", "cat /etc/rancher/k3s/k3s.yaml")
    assert fetched.returncode == 0, fetched.stderr
    config = yaml.safe_load(fetched.stdout)
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    config["clusters"][0]["cluster"]["server"] = f"https://{server_address}:6443"
    dest.touch(mode=0o600)
    dest.write_text(yaml.safe_dump(config))
    return dest


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "--request-timeout", "10s", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def node_readiness(kubeconfig: Path) -> dict[str, bool]:
    """Node name -> Ready condition is True, as kubectl sees it."""
    result = kubectl(kubeconfig, "get", "nodes", "-o", "json")
    if result.returncode != 0:
        return {}
    nodes = json.loads(result.stdout)["items"]
    return {
        node["metadata"]["name"]: any(
            cond["type"] == "Ready" and cond["status"] == "True" for cond in node["status"].get("conditions", [])
        )
        for node in nodes
    }


def wait_for(predicate_description: str, check: object, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {predicate_description}")
        time.sleep(1)


class Cluster:
    """host1 = server, host2 = agent; host3 and host4 are spare hosts for failing agents."""

    def __init__(self, lab: Lab, kubeconfig: Path, server_states: list[str]) -> None:
        self.lab = lab
        self.kubeconfig = kubeconfig
        self.server_states = server_states


@pytest.fixture(scope="module")
def cluster(lab_image: str, mirror_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_docker()
    lab_id = new_lab_id("k")
    workdir = tmp_path_factory.mktemp(lab_id)
    lab = Lab.create(lab_id, [HostSpec(f"host{i}") for i in (1, 2, 3, 4)], workdir, mirror_dir)
    try:
        for host in lab.hosts:
            install_binary(lab, host)
        # An unknown key in a server's config.yaml: k3s warns and starts anyway.
        install_unit(lab, "host1", "server", {}, config="write-kubeconfig-mode: '0600'\nbogus-option: true\n")
        server_states = start_and_watch(lab, "host1", "k3s", seconds=120)
        if server_states[-1:] != ["active"]:
            pytest.fail(
                f"k3s server on host1 never became active: {server_states}\n" + journal(lab, "host1", "k3s")[-3000:]
            )
        token = read_token(lab)
        install_unit(lab, "host2", "agent", {"K3S_URL": f"https://{lab.ip('host1')}:6443", "K3S_TOKEN": token})
        lab.ssh("host2", "systemctl start --no-block k3s-agent", check=True)
        kubeconfig = write_kubeconfig(lab, lab.ip("host1"), workdir / "kubeconfig")
        yield Cluster(lab, kubeconfig, server_states)
    finally:
        lab.destroy()


def test_server_is_activating_until_ready_then_active(cluster: Cluster) -> None:
    assert cluster.server_states[0] == "activating", cluster.server_states
    assert cluster.server_states[-1] == "active", journal(cluster.lab, "host1", "k3s")[-3000:]
    assert set(cluster.server_states) <= {"activating", "active"}


def test_server_and_agent_become_ready_through_real_kubectl(cluster: Cluster) -> None:
    wait_for("host1 and host2 Ready", lambda: node_readiness(cluster.kubeconfig) == {"host1": True, "host2": True})
    agent_state = cluster.lab.ssh("host2", "systemctl is-active k3s-agent").stdout.strip()
    assert agent_state == "active"
    table = kubectl(cluster.kubeconfig, "get", "nodes")
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines()[1:]}
    assert rows["host1"][1] == "Ready" and rows["host2"][1] == "Ready"
    assert rows["host1"][-1] == VERSION


def test_server_warns_about_unknown_config_key_and_runs(cluster: Cluster) -> None:
    log = journal(cluster.lab, "host1", "k3s")
    assert "Unknown flag --bogus-option found in config.yaml, skipping" in log
    assert cluster.lab.ssh("host1", "systemctl is-active k3s").stdout.strip() == "active"


def test_token_and_kubeconfig_files_are_private(cluster: Cluster) -> None:
    modes = cluster.lab.ssh(
        "host1", f"stat -c '%a %n' {TOKEN_PATH} /etc/rancher/k3s/k3s.yaml /etc/systemd/system/k3s.service.env"
    ).stdout.split("\n")
    assert all(line.startswith("600 ") for line in modes if line), modes


def test_agent_with_wrong_ca_hash_never_becomes_ready(cluster: Cluster) -> None:
    lab = cluster.lab
    token = read_token(lab)
    prefix, _, credentials = token.partition("::")
    assert prefix.startswith("K10") and len(prefix) == 67, "server token is not in the secure K10 format"
    wrong_hash = hashlib.sha256(b"some other cluster CA").hexdigest()
    bad_token = f"K10{wrong_hash}::{credentials}"
    install_unit(lab, "host3", "agent", {"K3S_URL": f"https://{lab.ip('host1')}:6443", "K3S_TOKEN": bad_token})
    states = start_and_watch(lab, "host3", "k3s-agent", seconds=15)
    assert states and set(states) == {"activating"}, states
    log = journal(lab, "host3", "k3s-agent")
    assert CA_MISMATCH in log
    assert wrong_hash in log  # k3s names both hashes: "<token's> != <actual>"
    assert "host3" not in node_readiness(cluster.kubeconfig)


def test_agent_with_server_only_config_key_fails_to_start(cluster: Cluster) -> None:
    lab = cluster.lab
    env = {"K3S_URL": f"https://{lab.ip('host1')}:6443", "K3S_TOKEN": read_token(lab)}
    install_unit(lab, "host4", "agent", env, config="cluster-init: true\n")
    states = start_and_watch(lab, "host4", "k3s-agent", seconds=12)
    assert "active" not in states, states
    shown = lab.ssh("host4", "systemctl show -p NRestarts -p ExecMainStatus k3s-agent").stdout
    props = dict(line.split("=", 1) for line in shown.split())
    assert int(props["NRestarts"]) >= 1 or props["ExecMainStatus"] != "0", props
    assert "flag provided but not defined: -cluster-init" in journal(lab, "host4", "k3s-agent")
    assert "host4" not in node_readiness(cluster.kubeconfig)


def test_kubectl_through_an_address_outside_the_certificate_sans_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    lab = cluster.lab
    subnet = ipaddress.ip_network(lab.subnet)
    alias = str(subnet.network_address + 200)
    lab.exec("host1", f"ip addr add {alias}/{subnet.prefixlen} dev eth0", check=True)
    try:
        reachable = lab.exec("host2", f"curl -sk -o /dev/null -w '%{{http_code}}' https://{alias}:6443/ping").stdout
        assert reachable not in ("", "000"), "the alias address does not reach the server at all"
        via_alias = write_kubeconfig(lab, alias, tmp_path / "kubeconfig-alias")
        refused = kubectl(via_alias, "get", "nodes")
        assert refused.returncode != 0
        assert "x509" in refused.stderr and alias in refused.stderr, refused.stderr
        assert kubectl(cluster.kubeconfig, "get", "nodes").returncode == 0
    finally:
        lab.exec("host1", f"ip addr del {alias}/{subnet.prefixlen} dev eth0")
