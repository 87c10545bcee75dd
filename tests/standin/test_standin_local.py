"""Local tests of the K3s stand-in: real subprocesses on loopback, no docker.

Each test builds nothing itself: a session fixture builds the zipapp once (plus a
``kubectl`` symlink), then servers/agents run with temporary ``--data-dir``, ``--config``
and ``--write-kubeconfig`` on a free port. Readiness is observed the way systemd sees it:
a datagram socket passed as ``$NOTIFY_SOCKET`` receives ``READY=1``.
Requires: cryptography, pyyaml (pip), and upstream kubectl at /usr/bin/kubectl for the
real-kubectl checks (skipped when missing).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipapp
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from build import build_standin  # noqa: E402
from k3s_standin import config as standin_config  # noqa: E402

try:
    from tests.standin.datastore_servers import SQLServer as SQLServerT  # noqa: E402
    from tests.standin.datastore_servers import postgres_server  # noqa: E402, F401
except ImportError:  # pragma: no cover - datastore fixtures not available
    SQLServerT = object  # type: ignore[misc, assignment]

    @pytest.fixture(scope="session")
    def postgres_server() -> None:  # type: ignore[misc]
        pytest.skip("datastore_servers fixtures not available")

pytestmark = pytest.mark.unit
VERSION = "v1.28.4+k3s2"
REAL_KUBECTL = "/usr/bin/kubectl"


# ---- fixtures & helpers ------------------------------------------------------------------


@pytest.fixture(scope="session")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in as built for the mirror, re-headed to run under this test's interpreter.

    On a lab host the zipapp's `#!/usr/bin/env python3` finds Debian's python3 with python3-psycopg2, -pymysql,
    -cryptography and -yaml (tests/lab/image.py). Here the control machine's `python3` may lack them (a fresh machine's
    did: the external-datastore test failed); the test venv has the same libraries from the `test` extra.
    """
    directory = tmp_path_factory.mktemp("standin-bin")
    built = build_standin(VERSION, "amd64", directory / "k3s.pyz")
    zipapp.create_archive(built, directory / "k3s", interpreter=sys.executable)
    (directory / "k3s").chmod(0o755)
    (directory / "kubectl").symlink_to("k3s")
    return directory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    """A stand-in process with a private NOTIFY_SOCKET and a log file."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    notify: socket.socket
    extra: dict[str, object] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.popen.poll() is not None:
                return False
            self.notify.settimeout(0.5)
            try:
                data = self.notify.recv(4096)
            except (TimeoutError, BlockingIOError):
                continue
            if b"READY=1" in data:
                return True
        return False

    def wait_log(self, pattern: str, timeout: float = 20.0) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.log()):
                return True
            time.sleep(0.3)
        return False

    def terminate(self, timeout: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        finally:
            self.notify.close()


class Launcher:
    """Starts stand-in processes and makes sure they are all stopped at the end."""

    def __init__(self, bin_dir: Path, tmp: Path) -> None:
        self.bin_dir = bin_dir
        self.tmp = tmp
        self.procs: list[Proc] = []
        self.count = 0

    def start(self, *args: str, env: dict[str, str] | None = None, name: str = "k3s") -> Proc:
        self.count += 1
        log_path = self.tmp / f"proc{self.count}.log"
        sock_path = self.tmp / f"notify{self.count}.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(sock_path))
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("K3S_")}
        full_env.update({"NOTIFY_SOCKET": str(sock_path), "K3S_STANDIN_NODE_GRACE_SECONDS": "8"})
        full_env.update(env or {})
        with open(log_path, "wb") as handle:
            popen = subprocess.Popen([str(self.bin_dir / name), *args], stdout=handle, stderr=subprocess.STDOUT,
                                     env=full_env)
        proc = Proc(popen, log_path, notify)
        self.procs.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 30.0, name: str = "k3s",
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("K3S_")}
        full_env.update(env or {})
        return subprocess.run([str(self.bin_dir / name), *args], capture_output=True, text=True, timeout=timeout,
                              env=full_env, check=False)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.popen.wait(15)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(5)
            proc.notify.close()


@pytest.fixture()
def launcher(bin_dir: Path, tmp_path: Path) -> Iterator[Launcher]:
    runner = Launcher(bin_dir, tmp_path)
    yield runner
    runner.stop_all()


@dataclass
class ServerInfo:
    proc: Proc
    data_dir: Path
    config: Path
    kubeconfig: Path
    port: int

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def token(self) -> str:
        return (self.data_dir / "server" / "token").read_text().strip()


def start_server(launcher: Launcher, tmp: Path, *extra: str, config_text: str = "", name: str = "srv",
                 wait: bool = True, port: int | None = None, env: dict[str, str] | None = None) -> ServerInfo:
    data_dir = tmp / f"{name}-data"
    cfg = tmp / f"{name}-config.yaml"
    if not cfg.exists() or config_text:
        cfg.write_text(config_text)
    kubeconfig = tmp / f"{name}-k3s.yaml"
    port = port or free_port()
    proc = launcher.start("server", "--data-dir", str(data_dir), "--config", str(cfg), "--write-kubeconfig",
                          str(kubeconfig), "--https-listen-port", str(port), "--node-name", name, *extra, env=env)
    info = ServerInfo(proc, data_dir, cfg, kubeconfig, port)
    if wait:
        assert proc.wait_ready(), f"server never sent READY=1:\n{proc.log()}"
    return info


def start_agent(launcher: Launcher, tmp: Path, server: ServerInfo, token: str, *extra: str,
                name: str = "agent1", config_text: str = "") -> Proc:
    cfg = tmp / f"{name}-config.yaml"
    cfg.write_text(config_text)
    return launcher.start("agent", "--data-dir", str(tmp / f"{name}-data"), "--config", str(cfg), "--server",
                          server.url, "--node-name", name, *extra, env={"K3S_TOKEN": token})


def real_kubectl(kubeconfig: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    if not Path(REAL_KUBECTL).exists():
        pytest.skip("upstream kubectl not installed at /usr/bin/kubectl")
    return subprocess.run([REAL_KUBECTL, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def node_rows(output: str) -> dict[str, list[str]]:
    lines = output.strip().splitlines()
    return {line.split()[0]: line.split() for line in lines[1:]}


def wait_until(predicate, timeout: float = 30.0, interval: float = 1.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


# ---- build & multicall --------------------------------------------------------------------


def test_version_prints_two_lines(bin_dir: Path, launcher: Launcher) -> None:
    for flag in ("--version", "-v"):
        result = launcher.run(flag)
        assert result.returncode == 0
        lines = result.stdout.splitlines()
        assert re.fullmatch(r"k3s version v1\.28\.4\+k3s2 \([0-9a-f]{8}\)", lines[0])
        assert lines[1] == "go version go1.20.11"


def test_build_is_deterministic_and_stamps_version(tmp_path: Path) -> None:
    first = build_standin(VERSION, "amd64", tmp_path / "a")
    second = build_standin(VERSION, "amd64", tmp_path / "b")
    other = build_standin("v1.29.0+k3s1", "amd64", tmp_path / "c")
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(first) == digest(second)
    assert digest(first) != digest(other)
    assert first.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert os.access(first, os.X_OK)
    out = subprocess.run([str(other), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("k3s version v1.29.0+k3s1 (")


def test_wrong_architecture_is_refused(tmp_path: Path) -> None:
    foreign = build_standin(VERSION, "arm64", tmp_path)
    assert foreign.name == "k3s-arm64"
    result = subprocess.run([str(foreign), "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 126
    assert "Exec format error" in result.stderr
    assert result.stdout == ""


def test_multicall_by_program_name(bin_dir: Path, launcher: Launcher) -> None:
    assert "Client Version: v1.28.4+k3s2" in launcher.run("version", "--client", name="kubectl").stdout
    crictl = bin_dir / "crictl"
    if not crictl.exists():
        crictl.symlink_to("k3s")
    assert "CONTAINER" in launcher.run("ps", name="crictl").stdout
    assert "Client Version" in launcher.run("kubectl", "version", "--client").stdout


# ---- config handling ----------------------------------------------------------------------


def test_config_dropins_override_and_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("K3S_"):
            monkeypatch.delenv(key)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("node-name: base\ntls-san: [a.example]\nnode-label: [x=1]\n")
    (tmp_path / "config.yaml.d").mkdir()
    (tmp_path / "config.yaml.d" / "20-b.yaml").write_text("node-name: late\n")
    (tmp_path / "config.yaml.d" / "10-a.yaml").write_text("node-name: early\ntls-san+: [b.example]\n")
    monkeypatch.setenv("K3S_NODE_NAME", "from-env")
    monkeypatch.setenv("K3S_TOKEN", "envtoken")
    settings = standin_config.parse("server", ["--config", str(cfg), "--tls-san", "c.example"])
    assert settings.text("node-name") == "late"  # later drop-in wins, config beats env
    assert settings.strings("tls-san") == ["a.example", "b.example", "c.example"]
    assert settings.text("token") == "envtoken"  # env fills what nothing else set
    cli = standin_config.parse("server", ["--config", str(cfg), "--node-name", "cli"])
    assert cli.text("node-name") == "cli"


def test_server_warns_on_unknown_config_key_and_starts(launcher: Launcher, tmp_path: Path) -> None:
    server = start_server(launcher, tmp_path, config_text="no-such-key: 1\nnode-label: [team=a]\n")
    assert 'level=warning msg="Unknown flag --no-such-key found in config.yaml, skipping"' in server.proc.log()


def test_agent_fails_on_server_only_config_key(launcher: Launcher, tmp_path: Path) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text("cluster-init: true\n")
    result = launcher.run("agent", "--config", str(cfg), "--data-dir", str(tmp_path / "a"), "--server",
                          "https://127.0.0.1:1", "--token", "x")
    assert result.returncode != 0
    assert "flag provided but not defined: -cluster-init" in result.stderr
    assert "level=fatal" in result.stderr


def test_agent_requires_server_and_token(launcher: Launcher, tmp_path: Path) -> None:
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("")
    no_server = launcher.run("agent", "-c", str(cfg), "-d", str(tmp_path / "a"), "--token", "x")
    assert no_server.returncode == 1 and "--server is required" in no_server.stderr
    no_token = launcher.run("agent", "-c", str(cfg), "-d", str(tmp_path / "a"), "--server", "https://127.0.0.1:1")
    assert no_token.returncode == 1 and "--token is required" in no_token.stderr


def test_server_refuses_impossible_flag_combinations(launcher: Launcher, tmp_path: Path) -> None:
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("")
    base = ["server", "-c", str(cfg), "-d", str(tmp_path / "d")]
    restore = launcher.run(*base, "--cluster-reset-restore-path", "/tmp/x")
    assert restore.returncode == 1
    assert "invalid flag use; --cluster-reset required with --cluster-reset-restore-path" in restore.stderr
    both = launcher.run(*base, "--cluster-init", "--datastore-endpoint", "postgres://u:p@127.0.0.1:1/k3s")
    assert both.returncode == 1 and "--cluster-init" in both.stderr
    snapshot = launcher.run("etcd-snapshot", "save", "-c", str(cfg), "-d", str(tmp_path / "d"))
    assert snapshot.returncode == 1 and "etcd datastore disabled" in snapshot.stderr


# ---- server -------------------------------------------------------------------------------


def test_server_files_token_and_kubeconfig(launcher: Launcher, tmp_path: Path) -> None:
    server = start_server(launcher, tmp_path)
    tls = server.data_dir / "server" / "tls"
    for name in ("server-ca.crt", "server-ca.key", "client-ca.crt", "client-ca.key", "serving-kube-apiserver.crt",
                 "client-admin.crt", "etcd/peer-ca.crt"):
        assert (tls / name).exists(), name
    token_path = server.data_dir / "server" / "token"
    token = server.token()
    match = re.fullmatch(r"K10([0-9a-f]{64})::server:([0-9a-f]{32})", token)
    assert match, "token not in K10<hash>::server:<password> form"
    assert match.group(1) == hashlib.sha256((tls / "server-ca.crt").read_bytes()).hexdigest()
    assert token_path.stat().st_mode & 0o777 == 0o600
    assert os.readlink(server.data_dir / "server" / "node-token") == "token"
    kubeconfig = yaml.safe_load(server.kubeconfig.read_text())
    assert server.kubeconfig.stat().st_mode & 0o777 == 0o600
    assert kubeconfig["clusters"][0]["name"] == kubeconfig["users"][0]["name"] == "default"
    assert kubeconfig["contexts"][0]["name"] == kubeconfig["current-context"] == "default"
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://127.0.0.1:{server.port}"
    ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca == (tls / "server-ca.crt").read_bytes()
    with urllib.request.urlopen(f"{server.url}/cacerts", context=ssl._create_unverified_context()) as resp:
        assert resp.read() == ca


def test_kubeconfig_mode_flag(launcher: Launcher, tmp_path: Path) -> None:
    server = start_server(launcher, tmp_path, "--write-kubeconfig-mode", "0644")
    assert server.kubeconfig.stat().st_mode & 0o777 == 0o644


def test_restart_reuses_ca_and_token(launcher: Launcher, tmp_path: Path) -> None:
    server = start_server(launcher, tmp_path)
    first = server.token()
    assert server.proc.terminate() == 0
    again = start_server(launcher, tmp_path, port=server.port)
    assert again.token() == first


def test_restart_with_other_token_is_refused(launcher: Launcher, tmp_path: Path) -> None:
    server = start_server(launcher, tmp_path, "--token", "first-secret")
    assert server.token().endswith("::server:first-secret")
    assert server.proc.terminate() == 0
    other = start_server(launcher, tmp_path, "--token", "second-secret", wait=False, port=server.port)
    assert other.proc.popen.wait(30) == 1
    assert "bootstrap data already found and encrypted with different token" in other.proc.log()
    assert not other.proc.wait_ready(0.5)


def test_full_token_with_foreign_ca_hash_is_refused(launcher: Launcher, tmp_path: Path) -> None:
    foreign = "K10" + "0" * 64 + "::server:secret"
    server = start_server(launcher, tmp_path, "--token", foreign, wait=False)
    assert server.proc.popen.wait(30) == 1
    assert "token CA hash does not match the Cluster CA certificate hash: " + "0" * 64 in server.proc.log()


def test_anonymous_and_bad_password_requests_are_rejected(launcher: Launcher, tmp_path: Path) -> None:
    server = start_server(launcher, tmp_path)
    ctx = ssl._create_unverified_context()
    for path in ("/api/v1/nodes", "/version", "/readyz"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + path, context=ctx)
        assert err.value.code == 401
    req = urllib.request.Request(server.url + "/v1-k3s/config",
                                 headers={"Authorization": "Basic " + base64.b64encode(b"node:wrong").decode()})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, context=ctx)
    assert err.value.code == 401
    password = server.token().rsplit(":", 1)[1]
    req = urllib.request.Request(server.url + "/v1-k3s/config",
                                 headers={"Authorization": "Basic " + base64.b64encode(f"node:{password}".encode()).decode()})
    with urllib.request.urlopen(req, context=ctx) as resp:
        assert json.loads(resp.read())["cluster-cidr"] == "10.42.0.0/16"


def test_real_kubectl_sees_server_node_and_san_check(launcher: Launcher, tmp_path: Path) -> None:
    server = start_server(launcher, tmp_path, "--tls-san", "127.0.0.3")
    result = real_kubectl(server.kubeconfig, "get", "nodes")
    assert result.returncode == 0, result.stderr
    row = node_rows(result.stdout)["srv"]
    assert row[1] == "Ready" and row[2] == "control-plane,master" and row[-1] == VERSION
    version = json.loads(real_kubectl(server.kubeconfig, "version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == VERSION
    config = yaml.safe_load(server.kubeconfig.read_text())
    for address, ok in (("127.0.0.3", True), ("127.0.0.2", False)):
        config["clusters"][0]["cluster"]["server"] = f"https://{address}:{server.port}"
        other = tmp_path / f"kc-{address}.yaml"
        other.write_text(yaml.safe_dump(config))
        res = real_kubectl(other, "get", "nodes", "--request-timeout=10s")
        if ok:
            assert res.returncode == 0, res.stderr
        else:
            assert res.returncode != 0
            assert "certificate" in res.stderr and "127.0.0.2" in res.stderr


def test_sigterm_exits_cleanly(launcher: Launcher, tmp_path: Path) -> None:
    server = start_server(launcher, tmp_path)
    assert server.proc.terminate() == 0


# ---- agents -----------------------------------------------------------------------------------


def test_agent_registers_ready_then_not_ready(launcher: Launcher, tmp_path: Path) -> None:
    server = start_server(launcher, tmp_path)
    agent = start_agent(launcher, tmp_path, server, server.token(), "--node-label", "tier=edge",
                        "--node-taint", "dedicated=edge:NoSchedule")
    assert agent.wait_ready(30), agent.log()
    result = real_kubectl(server.kubeconfig, "get", "nodes")
    assert result.returncode == 0, result.stderr
    rows = node_rows(result.stdout)
    assert rows["agent1"][1] == "Ready" and rows["agent1"][2] == "<none>"
    node = json.loads(real_kubectl(server.kubeconfig, "get", "node", "agent1", "-o", "json").stdout)
    labels = node["metadata"]["labels"]
    assert labels["tier"] == "edge" and labels["kubernetes.io/arch"] == "amd64"
    assert labels["node.kubernetes.io/instance-type"] == "k3s" and labels["kubernetes.io/hostname"] == "agent1"
    assert {"key": "dedicated", "value": "edge", "effect": "NoSchedule"} in node["spec"]["taints"]
    assert node["status"]["nodeInfo"]["kubeletVersion"] == VERSION
    assert agent.terminate() == 0

    def not_ready() -> bool:
        out = real_kubectl(server.kubeconfig, "get", "nodes").stdout
        return node_rows(out).get("agent1", ["", ""])[1] == "NotReady"

    assert wait_until(not_ready, timeout=30), "agent1 stayed Ready after its heartbeats stopped"


def test_a_node_with_another_password_is_rejected_until_its_node_is_deleted(launcher: Launcher, tmp_path: Path) -> None:
    """K3s's node passwords: the first registration of a name stores its password's hash; a reinstalled machine
    (new password file) under that name is refused with k3s's message and never gets ready, until the node object
    is deleted (which removes the stored hash)."""
    server = start_server(launcher, tmp_path)
    first = start_agent(launcher, tmp_path, server, server.token())
    assert first.wait_ready(30), first.log()
    password_file = tmp_path / "agent1-data" / "agent" / "node-password"
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert first.terminate() == 0
    password_file.unlink()  # the board was reflashed: a new password, the same name
    again = start_agent(launcher, tmp_path, server, server.token())
    assert not again.wait_ready(12)
    assert "Node password rejected, duplicate hostname or contents of" in again.log()
    assert "unable to verify password for node agent1: hash does not match" in server.proc.log()
    assert real_kubectl(server.kubeconfig, "delete", "node", "agent1").returncode == 0
    assert again.wait_ready(30), again.log()


def test_agent_with_foreign_ca_hash_never_becomes_ready(launcher: Launcher, tmp_path: Path) -> None:
    server = start_server(launcher, tmp_path)
    password = server.token().rsplit(":", 1)[1]
    agent = start_agent(launcher, tmp_path, server, "K10" + "ab" * 32 + "::node:" + password)
    assert agent.wait_log(r"token CA hash does not match the Cluster CA certificate hash: (ab){32} != [0-9a-f]{64}")
    assert not agent.wait_ready(5)
    assert agent.popen.poll() is None, "agent must keep retrying like k3s"
    assert "agent1" not in real_kubectl(server.kubeconfig, "get", "nodes").stdout


def test_agent_with_wrong_password_retries(launcher: Launcher, tmp_path: Path) -> None:
    server = start_server(launcher, tmp_path)
    agent = start_agent(launcher, tmp_path, server, "not-the-password")
    assert agent.wait_log("Waiting to retrieve agent configuration; server is not ready: .*401 Unauthorized")
    assert "token does not include a CA hash" in agent.log()
    assert not agent.wait_ready(4)
    assert agent.popen.poll() is None


def test_with_an_agent_token_agents_need_it_and_it_joins_no_server(launcher: Launcher, tmp_path: Path) -> None:
    """K3s's agent-token: agents authenticate as `node` with the agent password only (the server token no longer
    works for them), and the agent token cannot fetch the bootstrap data a joining server needs."""
    server = start_server(launcher, tmp_path, "--agent-token", "agents-only-secret")
    agent_token = (server.data_dir / "server" / "agent-token").read_text().strip()
    assert not (server.data_dir / "server" / "agent-token").is_symlink() and "::node:agents-only-secret" in agent_token
    with_server_token = start_agent(launcher, tmp_path, server, server.token(), name="a-server-token")
    assert with_server_token.wait_log("Waiting to retrieve agent configuration; server is not ready: .*401 Unauthorized")
    assert not with_server_token.wait_ready(3)
    with_agent_token = start_agent(launcher, tmp_path, server, agent_token, name="a-agent-token")
    assert with_agent_token.wait_ready(30), with_agent_token.log()
    as_server = start_server(launcher, tmp_path, "--node-ip", "127.0.0.1", "--server", server.url, "--token",
                             agent_token, name="s-agent-token", wait=False, env=etcd_env())
    assert as_server.proc.popen.wait(30) == 1
    assert "401" in as_server.proc.log(), as_server.proc.log()


def test_standin_kubectl_node_operations(launcher: Launcher, tmp_path: Path, bin_dir: Path) -> None:
    server = start_server(launcher, tmp_path)
    agent = start_agent(launcher, tmp_path, server, server.token())
    assert agent.wait_ready(30), agent.log()
    env = {"KUBECONFIG": str(server.kubeconfig)}

    def kc(*args: str) -> subprocess.CompletedProcess[str]:
        return launcher.run(*args, name="kubectl", env=env)

    assert kc("cordon", "agent1").stdout == "node/agent1 cordoned\n"
    assert "Ready,SchedulingDisabled" in kc("get", "nodes").stdout
    drained = kc("drain", "agent1", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=30s")
    assert drained.returncode == 0 and "node/agent1 drained" in drained.stdout
    assert kc("uncordon", "agent1").stdout == "node/agent1 uncordoned\n"
    assert kc("label", "node", "agent1", "zone=a").returncode == 0
    jp = kc("get", "node", "agent1", "-o", "jsonpath={.metadata.labels.zone}")
    assert jp.stdout == "a"
    wide = kc("get", "nodes", "-o", "wide").stdout
    assert "INTERNAL-IP" in wide.splitlines()[0]
    assert kc("get", "nodes", "-o", "name").stdout.split() == ["node/agent1", "node/srv"]
    assert json.loads(kc("get", "nodes", "-o", "json").stdout)["kind"] == "List"
    assert kc("wait", "--for=condition=Ready", "node/agent1", "--timeout=10s").returncode == 0
    assert agent.terminate() == 0
    assert kc("delete", "node", "agent1").stdout == 'node "agent1" deleted\n'
    missing = kc("get", "node", "agent1")
    assert missing.returncode == 1 and 'nodes "agent1" not found' in missing.stderr
    again = kc("delete", "node", "agent1")
    assert again.returncode == 1 and 'Error from server (NotFound): nodes "agent1" not found' in again.stderr
    quiet = kc("delete", "node", "agent1", "--ignore-not-found", "--wait=false")  # a boolean flag: takes no value
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    real = real_kubectl(server.kubeconfig, "cordon", "srv")
    assert real.returncode == 0 and "cordoned" in real.stdout


def test_check_config_reports_status(launcher: Launcher) -> None:
    result = launcher.run("check-config")
    last = result.stdout.strip().splitlines()[-1]
    assert last == "STATUS: pass" or re.fullmatch(r"STATUS: \d+ \(fail\)", last)
    assert result.returncode == (0 if last == "STATUS: pass" else int(last.split()[1]))


# ---- HA datastores ------------------------------------------------------------------------------


def etcd_env() -> dict[str, str]:
    # Learners are promoted every second here (k3s: every 15 s), so that joins one after another stay quick.
    return {"K3S_STANDIN_ETCD_CLIENT_PORT": str(free_port()), "K3S_STANDIN_ETCD_PEER_PORT": str(free_port()),
            "K3S_STANDIN_ETCD_PROMOTE_S": "1"}


def test_embedded_etcd_three_servers_quorum_and_snapshot(launcher: Launcher, tmp_path: Path) -> None:
    common = ("--node-ip", "127.0.0.1", "--token", "ha-secret")
    first = start_server(launcher, tmp_path, *common, "--cluster-init", name="s1", env=etcd_env())
    joiners = []
    for n in ("s2", "s3"):  # one at a time: a joined server is a learner until s1 promotes it
        joiners.append(start_server(launcher, tmp_path, *common, "--server", first.url, name=n, env=etcd_env()))
        assert wait_until(lambda n=n: f"Promoted learner {n}-" in first.proc.log(), timeout=30), first.proc.log()
    rows = node_rows(real_kubectl(first.kubeconfig, "get", "nodes").stdout)
    assert set(rows) == {"s1", "s2", "s3"}
    assert all(r[1] == "Ready" and r[2] == "control-plane,etcd,master" for r in rows.values())
    assert first.token() == joiners[0].token(), "joiners must share the cluster CA and token"
    assert joiners[0].proc.terminate() == 0  # one of three down: still a majority
    assert real_kubectl(joiners[1].kubeconfig, "get", "nodes").returncode == 0
    snap = launcher.run("etcd-snapshot", "save", "-c", str(first.config), "-d", str(first.data_dir),
                        "--https-listen-port", str(first.port))
    assert snap.returncode == 0, snap.stderr
    assert re.search(r"Snapshot on-demand-s1-\d+ saved", snap.stderr)
    listing = launcher.run("etcd-snapshot", "ls", "-c", str(first.config), "-d", str(first.data_dir))
    assert "on-demand-s1-" in listing.stdout
    assert joiners[1].proc.terminate() == 0  # two of three down: no quorum
    assert wait_until(lambda: real_kubectl(first.kubeconfig, "get", "nodes", "--request-timeout=10s").returncode != 0,
                      timeout=30), "API kept answering without etcd quorum"
    assert first.proc.terminate() == 0
    snapshot = next((first.data_dir / "server" / "db" / "snapshots").iterdir())
    reset = launcher.run("server", "-c", str(first.config), "-d", str(first.data_dir), "--node-name", "s1",
                         *common, "--cluster-reset", f"--cluster-reset-restore-path={snapshot}",
                         env={k: v for k, v in etcd_env().items()})
    assert reset.returncode == 0, reset.stderr
    assert "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now." in reset.stderr
    assert (first.data_dir / "server" / "db" / "reset-flag").exists()
    again = start_server(launcher, tmp_path, *common, name="s1", env=etcd_env())
    assert "s1" in real_kubectl(again.kubeconfig, "get", "nodes").stdout
    assert not (first.data_dir / "server" / "db" / "reset-flag").exists()


def test_sqlite_server_restarted_with_cluster_init_moves_its_data_into_etcd(launcher: Launcher, tmp_path: Path) -> None:
    """K3s's SQLite → etcd migration: /registry/ keys copied, state.db renamed to state.db.migrated, same token."""
    common = ("--node-ip", "127.0.0.1", "--token", "grow-secret")
    ports = etcd_env()
    single = start_server(launcher, tmp_path, *common, name="s1", env=ports)
    made = real_kubectl(single.kubeconfig, "label", "node", "s1", "kept=yes")
    assert made.returncode == 0, made.stderr
    token = single.token()
    assert single.proc.terminate() == 0
    grown = start_server(launcher, tmp_path, *common, "--cluster-init", name="s1", env=ports)
    log = grown.proc.log()
    assert "Migrating content from sqlite to etcd" in log and "Migrating etcd key /registry/minions/s1" in log
    db = grown.data_dir / "server" / "db"
    assert (db / "state.db.migrated").exists() and not (db / "state.db").exists() and (db / "etcd").is_dir()
    kept = real_kubectl(grown.kubeconfig, "get", "node", "s1", "-o", "jsonpath={.metadata.labels.kept}")
    assert kept.stdout == "yes", kept.stderr
    assert grown.token() == token


def test_joining_server_with_foreign_ca_hash_exits(launcher: Launcher, tmp_path: Path) -> None:
    first = start_server(launcher, tmp_path, "--node-ip", "127.0.0.1", "--cluster-init", name="s1", env=etcd_env())
    password = first.token().rsplit(":", 1)[1]
    joiner = start_server(launcher, tmp_path, "--node-ip", "127.0.0.1", "--server", first.url, "--token",
                          "K10" + "cd" * 32 + "::server:" + password, name="s2", env=etcd_env(), wait=False)
    assert joiner.proc.popen.wait(30) == 1
    assert "token CA hash does not match the Cluster CA certificate hash: " + "cd" * 32 in joiner.proc.log()


def test_external_postgres_shares_state_and_refuses_other_token(launcher: Launcher, tmp_path: Path,
                                                                postgres_server: SQLServerT) -> None:
    endpoint = postgres_server.endpoint(database="standin_" + os.urandom(4).hex())
    args = ("--datastore-endpoint", endpoint, "--node-ip", "127.0.0.1")
    one = start_server(launcher, tmp_path, *args, "--token", "shared-secret", name="p1")
    two = start_server(launcher, tmp_path, *args, "--token", "shared-secret", name="p2")
    assert one.token() == two.token(), "second server must take the CA from the datastore"
    rows = node_rows(real_kubectl(two.kubeconfig, "get", "nodes").stdout)
    assert set(rows) == {"p1", "p2"}
    assert "etcd" not in rows["p1"][2]
    three = start_server(launcher, tmp_path, *args, "--token", "other-secret", name="p3", wait=False)
    assert three.proc.popen.wait(60) == 1
    assert "bootstrap data already found and encrypted with different token" in three.proc.log()


def test_notify_on_abstract_socket(bin_dir: Path, tmp_path: Path) -> None:
    name = f"standin-notify-{os.getpid()}-{time.time_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(30)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("K3S_")}
    env["NOTIFY_SOCKET"] = "@" + name
    proc = subprocess.Popen([str(bin_dir / "k3s"), "server", "-c", str(cfg), "-d", str(tmp_path / "d"), "-o",
                             str(tmp_path / "k.yaml"), "--https-listen-port", str(free_port())],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        assert b"READY=1" in sock.recv(4096)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        sock.close()


def test_upgrade_in_place_updates_node_versions(launcher: Launcher, tmp_path: Path, bin_dir: Path) -> None:
    server = start_server(launcher, tmp_path)
    agent = start_agent(launcher, tmp_path, server, server.token())
    assert agent.wait_ready(30), agent.log()
    token = server.token()
    assert server.proc.terminate() == 0 and agent.terminate() == 0
    newer = tmp_path / "newer"
    newer.mkdir()
    build_standin("v1.29.0+k3s1", "amd64", newer / "k3s")
    launcher.bin_dir = newer
    upgraded = start_server(launcher, tmp_path, port=server.port)
    assert upgraded.token() == token, "an upgrade must keep the CA and token"
    agent2 = start_agent(launcher, tmp_path, upgraded, token)
    assert agent2.wait_ready(30), agent2.log()
    rows = node_rows(real_kubectl(upgraded.kubeconfig, "get", "nodes").stdout)
    assert rows["srv"][-1] == "v1.29.0+k3s1" and rows["agent1"][-1] == "v1.29.0+k3s1"
    assert rows["agent1"][1] == "Ready"


# ---- CRDs, custom resources and kubectl apply (system-upgrade-controller Plans) -----------------------------------

SUC_CRD = HERE / "manifests" / "system-upgrade-crd.yaml"
CRD_NOT_FOUND = ('Error from server (NotFound): customresourcedefinitions.apiextensions.k8s.io '
                 '"plans.upgrade.cattle.io" not found')


def _plans(version: str) -> str:
    """The Plans exactly as provision renders and applies them (imported here: the other tests need no provisioner)."""
    from provisioner.flavors.k3s.suc import PlanSettings, render_plans  # noqa: PLC0415

    return render_plans(PlanSettings(version, "rancher/k3s-upgrade", 2, True, 120))


def test_crd_is_not_found_until_applied_then_plans_apply_and_read_back(
    launcher: Launcher, tmp_path: Path
) -> None:
    server = start_server(launcher, tmp_path)
    env = {"KUBECONFIG": str(server.kubeconfig)}

    def kc(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        if stdin is None:
            return launcher.run(*args, name="kubectl", env=env)
        return subprocess.run([str(launcher.bin_dir / "kubectl"), *args], input=stdin, capture_output=True,
                              text=True, timeout=30, env={**os.environ, **env}, check=False)

    missing = kc("get", "crd", "plans.upgrade.cattle.io")
    assert missing.returncode == 1 and missing.stderr == CRD_NOT_FOUND + "\n"
    real = real_kubectl(server.kubeconfig, "get", "crd", "plans.upgrade.cattle.io")
    assert real.returncode == 1 and real.stderr.strip() == CRD_NOT_FOUND  # upstream kubectl says the same
    plans = tmp_path / "plans.yaml"
    plans.write_text(_plans("v1.29.0+k3s1"))
    early = kc("apply", "-f", str(plans))
    assert early.returncode == 1 and early.stdout == ""
    assert 'no matches for kind "Plan" in version "upgrade.cattle.io/v1"' in early.stderr
    assert "ensure CRDs are installed first" in early.stderr

    installed = kc("apply", "-f", "-", stdin=SUC_CRD.read_text())
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout == ("namespace/system-upgrade created\n"
                                "customresourcedefinition.apiextensions.k8s.io/plans.upgrade.cattle.io created\n")
    assert kc("get", "crd", "plans.upgrade.cattle.io", "-o", "name").stdout == (
        "customresourcedefinition.apiextensions.k8s.io/plans.upgrade.cattle.io\n")
    assert kc("get", "plans", "-n", "system-upgrade").stderr == "No resources found in system-upgrade namespace.\n"

    applied = kc("apply", "-f", str(plans))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout == "plan.upgrade.cattle.io/k3s-server created\nplan.upgrade.cattle.io/k3s-agent created\n"
    assert kc("apply", "-f", str(plans)).stdout.split("\n")[:2] == [
        "plan.upgrade.cattle.io/k3s-server unchanged", "plan.upgrade.cattle.io/k3s-agent unchanged"]
    plans.write_text(_plans("v1.29.1+k3s1").replace("    deleteEmptydirData: true\n", ""))
    assert kc("apply", "-f", str(plans)).stdout == (
        "plan.upgrade.cattle.io/k3s-server configured\nplan.upgrade.cattle.io/k3s-agent configured\n")

    listing = json.loads(kc("get", "plans.upgrade.cattle.io", "-n", "system-upgrade", "-o", "json").stdout)
    assert [p["metadata"]["name"] for p in listing["items"]] == ["k3s-agent", "k3s-server"]
    assert {p["spec"]["version"] for p in listing["items"]} == {"v1.29.1+k3s1"}
    agent = listing["items"][0]
    assert "deleteEmptydirData" not in agent["spec"]["drain"]  # dropped from the file, so removed by apply
    assert agent["metadata"]["generation"] == 2 and agent["metadata"]["namespace"] == "system-upgrade"
    table = kc("get", "plan", "-n", "system-upgrade").stdout.splitlines()
    assert table[0].split() == ["NAME", "IMAGE", "VERSION"]
    assert table[2].split() == ["k3s-server", "rancher/k3s-upgrade", "v1.29.1+k3s1"]
    real_names = real_kubectl(server.kubeconfig, "get", "plans", "-n", "system-upgrade", "-o", "name")
    assert real_names.stdout.split() == ["plan.upgrade.cattle.io/k3s-agent", "plan.upgrade.cattle.io/k3s-server"]
    # The controller is not modelled: the Plans upgrade nothing.
    assert node_rows(kc("get", "nodes").stdout)["srv"][-1] == VERSION

    assert server.proc.terminate() == 0  # stored in the datastore like nodes: a restart keeps them
    start_server(launcher, tmp_path, port=server.port)
    version = kc("get", "plan", "k3s-server", "-n", "system-upgrade", "-o", "jsonpath={.spec.version}")
    assert version.stdout == "v1.29.1+k3s1"


def test_apply_refusals_use_the_apiserver_wording(launcher: Launcher, tmp_path: Path) -> None:
    server = start_server(launcher, tmp_path)
    env = {"KUBECONFIG": str(server.kubeconfig)}
    crd = yaml.safe_load_all(SUC_CRD.read_text())
    definition = next(d for d in crd if d["kind"] == "CustomResourceDefinition")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump({**definition, "metadata": {"name": "plans.example.com"}}))
    invalid = launcher.run("apply", "-f", str(wrong), name="kubectl", env=env)
    assert invalid.returncode == 1
    assert invalid.stderr.startswith('Error from server (Invalid): error when creating "')
    assert ('CustomResourceDefinition.apiextensions.k8s.io "plans.example.com" is invalid: metadata.name: '
            'Invalid value: "plans.example.com": must be spec.names.plural+"."+spec.group') in invalid.stderr
    only_crd = tmp_path / "crd.yaml"
    only_crd.write_text(yaml.safe_dump(definition))
    assert launcher.run("apply", "-f", str(only_crd), name="kubectl", env=env).returncode == 0
    plans = tmp_path / "plans.yaml"
    plans.write_text(_plans("v1.29.0+k3s1"))
    no_namespace = launcher.run("apply", "-f", str(plans), name="kubectl", env=env)
    assert no_namespace.returncode == 1
    assert no_namespace.stderr.splitlines()[0] == (
        f'Error from server (NotFound): error when creating "{plans}": namespaces "system-upgrade" not found')
    pod = tmp_path / "pod.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    assert "applies namespaces, CustomResourceDefinitions and custom resources only" in launcher.run(
        "apply", "-f", str(pod), name="kubectl", env=env).stderr


# ---- air-gap image archives ------------------------------------------------------------------


def test_server_imports_airgap_archives_and_skips_a_broken_one(launcher: Launcher, tmp_path: Path) -> None:
    from k3s_standin import images  # noqa: PLC0415 - the stand-in package is on sys.path only inside this module

    from tests.lab.mirror import AIRGAP_IMAGES, write_airgap_archives  # noqa: PLC0415

    release = tmp_path / "release"
    release.mkdir()
    names = write_airgap_archives(release, "v1.28.4+k3s2", "amd64")
    images_dir = tmp_path / "srv-data" / "agent" / "images"
    images_dir.mkdir(parents=True)
    archive = "k3s-airgap-images-amd64.tar.zst" if "k3s-airgap-images-amd64.tar.zst" in names else names[1]
    (images_dir / archive).write_bytes((release / archive).read_bytes())
    (images_dir / "broken.tar.gz").write_bytes(b"not gzip at all")
    (images_dir / "README").write_text("not an archive: ignored\n")

    server = start_server(launcher, tmp_path)

    log = server.proc.log()
    assert f"Imported images from {images_dir / archive}" in log
    assert f"Error encountered while importing {images_dir / 'broken.tar.gz'}" in log
    assert "README" not in log
    listed = {image.ref: image for image in images.listing(server.data_dir)}
    assert sorted(listed) == sorted(AIRGAP_IMAGES)
    assert all(image.source == archive and image.image_id.startswith("sha256:") for image in listed.values())
    # Another release's archive under the same name replaces the images' content (new IDs) after a restart.
    write_airgap_archives(release, "v1.29.0+k3s1", "amd64")
    (images_dir / archive).write_bytes((release / archive).read_bytes())
    server.proc.popen.send_signal(signal.SIGTERM)
    server.proc.popen.wait(15)
    start_server(launcher, tmp_path, name="srv", port=server.port)
    relisted = {image.ref: image for image in images.listing(server.data_dir)}
    assert sorted(relisted) == sorted(AIRGAP_IMAGES)
    assert all(relisted[ref].image_id != listed[ref].image_id for ref in relisted)
