"""Local tests of the kubeadm / kubelet / kubectl stand-ins: built zipapps run as subprocesses, no docker.

Host paths go under a fake root (hidden knob ``KUBE_STANDIN_ROOT``); systemd is replaced by
``kube_fake_systemd.py`` (knobs ``KUBE_STANDIN_SYSTEMCTL`` / ``KUBE_STANDIN_SYSTEMD_RUN``). The end-to-end test
needs Debian's ``/usr/bin/etcd``, free ports 6443/2379/2380/10248/10250/10257/10259 and runs a real ``containerd``
for the CRI socket when installed; upstream ``/usr/bin/kubectl`` is used where present.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from build_kube import build_kube_standin  # noqa: E402
from kube_standin import pki as kpki  # noqa: E402

pytestmark = pytest.mark.unit
REAL_KUBECTL = "/usr/bin/kubectl"
TOKEN = "abcdef.0123456789abcdef"


@pytest.fixture(scope="session")
def bins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for version in ("v1.30.2", "v1.31.1", "v1.28.4"):
        d = tmp_path_factory.mktemp(version)
        for tool in ("kubeadm", "kubelet", "kubectl"):
            path = build_kube_standin(tool, version, "amd64", d)
            # the lab runs them with Debian's python3; here the test interpreter
            path.write_bytes(f"#!{sys.executable}\n".encode() + path.read_bytes().split(b"\n", 1)[1])
            out[f"{tool}-{version}"] = path
    systemd = tmp_path_factory.mktemp("systemd")
    for role in ("systemctl", "systemd-run"):
        script = systemd / role
        script.write_text(f"#!/bin/sh\nexec {sys.executable} {HERE / 'kube_fake_systemd.py'} {role} \"$@\"\n")
        script.chmod(0o755)
        out[role] = script
    return out


def fake_root(tmp: Path, swap: bool = False, mem_kb: int = 4_000_000, ip_forward: str = "1") -> Path:
    # A short path: sockets under the root (the CRI socket at <root>/var/run/containerd/containerd.sock) must fit
    # AF_UNIX's 107 bytes, which pytest-xdist's tmp_path (.../popen-gw0/<test name>/) exceeds. `tmp/root` points at it.
    root = tmp / "root"
    if len(str(root)) > 40:
        root = Path(tempfile.mkdtemp(prefix="ksr-", dir="/tmp"))
        atexit.register(shutil.rmtree, root, True)
        (tmp / "root").symlink_to(root)
    (root / "proc/sys/net/ipv4").mkdir(parents=True)
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/hostname").write_text("kcp1\n")
    (root / "proc/meminfo").write_text(f"MemTotal:       {mem_kb} kB\n")
    header = "Filename\t\t\t\tType\t\tSize\tUsed\tPriority\n"
    (root / "proc/swaps").write_text(header + ("/swap.img                               file\t\t4194300\t0\t-2\n"
                                               if swap else ""))
    (root / "proc/sys/net/ipv4/ip_forward").write_text(ip_forward + "\n")
    return root


def run(bins: dict[str, Path], tool: str, root: Path, *args: str, version: str = "v1.30.2", timeout: float = 120,
        **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBE_STANDIN_ROOT": str(root), "KUBE_STANDIN_SYSTEMCTL": str(bins["systemctl"]),
           "KUBE_STANDIN_SYSTEMD_RUN": str(bins["systemd-run"]), "FAKE_KUBELET_BIN": str(bins[f"kubelet-{version}"])}
    return subprocess.run([str(bins[f"{tool}-{version}"]), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False, **kw)  # type: ignore[call-overload]


def write_init(root: Path, api: str = "kubeadm.k8s.io/v1beta3", extra_args: str = "", ignore: str = "") -> str:
    path = root / "etc/kubernetes/provision/kubeadm-init.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""apiVersion: {api}
kind: InitConfiguration
bootstrapTokens:
- token: {TOKEN}
localAPIEndpoint:
  advertiseAddress: 127.0.0.1
nodeRegistration:
  name: kcp1
  ignorePreflightErrors: [{ignore}]
certificateKey: 46c4727ea4da0877fd6e152f0c5d4842837ea949909e9ccb83a5c2f7331f53a9
---
apiVersion: {api}
kind: ClusterConfiguration
kubernetesVersion: v1.30.2
controlPlaneEndpoint: 127.0.0.1:6443
networking:
  podSubnet: 10.244.0.0/16
{extra_args}""")
    return "/etc/kubernetes/provision/kubeadm-init.yaml"


# ---- build and versions --------------------------------------------------------------------------------------------


def test_build_is_deterministic_and_named_like_upstream(tmp_path: Path) -> None:
    a = build_kube_standin("kubeadm", "v1.30.2", "arm64", tmp_path)
    first = a.read_bytes()
    assert a.name == "kubeadm" and os.access(a, os.X_OK)
    assert build_kube_standin("kubeadm", "v1.30.2", "arm64", tmp_path).read_bytes() == first
    assert build_kube_standin("kubeadm", "v1.31.1", "arm64", tmp_path).read_bytes() != first
    with pytest.raises(ValueError, match="not a modelled Kubernetes version"):
        build_kube_standin("kubeadm", "v1.27.1", "amd64", tmp_path)
    with pytest.raises(ValueError, match="unknown tool"):
        build_kube_standin("kube-proxy", "v1.30.2", "amd64", tmp_path)


def test_version_outputs(bins: dict[str, Path], tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    assert run(bins, "kubeadm", root, "version", "-o", "short").stdout == "v1.30.2\n"
    assert run(bins, "kubeadm", root, "version", "-o", "short", version="v1.31.1").stdout == "v1.31.1\n"
    assert run(bins, "kubeadm", root, "version").stdout.startswith(
        'kubeadm version: &version.Info{Major:"1", Minor:"30", GitVersion:"v1.30.2", ')
    assert run(bins, "kubelet", root, "--version").stdout == "Kubernetes v1.30.2\n"
    doc = json.loads(run(bins, "kubectl", root, "version", "--client", "-o", "json").stdout)
    assert doc["clientVersion"]["gitVersion"] == "v1.30.2" and doc["clientVersion"]["minor"] == "30"
    assert doc["kustomizeVersion"].startswith("v5.")


def test_wrong_cpu_is_exec_format_error(tmp_path: Path) -> None:
    path = build_kube_standin("kubelet", "v1.30.2", "arm" if os.uname().machine == "x86_64" else "amd64", tmp_path)
    result = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 126
    assert "cannot execute binary file: Exec format error" in result.stderr


# ---- config, refusals, preflight --------------------------------------------------------------------------------------


def test_config_mixed_with_flags_is_refused(bins: dict[str, Path], tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    cfg = write_init(root)
    result = run(bins, "kubeadm", root, "init", "--config", cfg, "--pod-network-cidr", "10.0.0.0/16",
                 "--skip-token-print")
    assert result.returncode == 1
    assert result.stderr.startswith("can not mix '--config' with arguments [pod-network-cidr]\n")
    assert result.stderr.endswith("To see the stack trace of this error execute with --v=5 or higher\n")


def test_extra_args_form_must_match_the_api_version(bins: dict[str, Path], tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    listed = "apiServer:\n  extraArgs:\n  - name: v\n    value: '2'\n"
    cfg = write_init(root, extra_args=listed)
    result = run(bins, "kubeadm", root, "init", "--config", cfg)
    assert result.returncode == 1
    assert ("json: cannot unmarshal array into Go struct field APIServer.apiServer.ControlPlaneComponent.extraArgs "
            "of type map[string]string") in result.stderr
    cfg = write_init(root, "kubeadm.k8s.io/v1beta4", "apiServer:\n  extraArgs:\n    v: '2'\n")
    result = run(bins, "kubeadm", root, "init", "--config", cfg, version="v1.31.1")
    assert "cannot unmarshal object into Go struct field" in result.stderr and result.returncode == 1
    result = run(bins, "kubeadm", root, "init", "--config", cfg)  # v1beta4 on 1.30: not registered
    assert 'no kind "InitConfiguration" is registered for version "kubeadm.k8s.io/v1beta4"' in result.stderr


def test_v1beta3_on_131_only_warns(bins: dict[str, Path]) -> None:
    """Run as an unprivileged user: the binary and fake root live in a world-readable directory, under the system
    python3 (the test interpreter may sit in root's home)."""
    if subprocess.run(["/usr/bin/python3", "-c", "import yaml, cryptography"], check=False).returncode:
        pytest.skip("system python3 lacks PyYAML/cryptography")
    import tempfile

    public = Path(tempfile.mkdtemp(prefix="kube-standin-"))
    try:
        public.chmod(0o755)
        binary = public / "kubeadm"
        binary.write_bytes(b"#!/usr/bin/python3\n" + bins["kubeadm-v1.31.1"].read_bytes().split(b"\n", 1)[1])
        binary.chmod(0o755)
        root = fake_root(public)
        cfg = write_init(root)
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        result = subprocess.run([str(binary), "init", "--config", cfg], capture_output=True, text=True,
                                env={"PATH": "/usr/bin:/bin", "KUBE_STANDIN_ROOT": str(root)}, user=65534,
                                check=False)
    finally:
        shutil.rmtree(public)
    assert 'your configuration file uses a deprecated API spec: "kubeadm.k8s.io/v1beta3" (kind: "InitConfiguration")' \
        in result.stderr
    # then it goes on, and preflight's root check stops the unprivileged user
    assert "\t[ERROR IsPrivilegedUser]: user is not running as root\n" in result.stderr
    assert result.returncode == 1


def test_preflight_errors_and_warnings(bins: dict[str, Path], tmp_path: Path) -> None:
    root = fake_root(tmp_path, swap=True, mem_kb=900_000, ip_forward="0")
    (root / "etc/kubernetes/manifests").mkdir(parents=True)
    (root / "etc/kubernetes/manifests/kube-apiserver.yaml").write_text("x")
    (root / "var/lib/etcd").mkdir(parents=True)
    (root / "var/lib/etcd/member").write_text("x")
    cfg = write_init(root)
    result = run(bins, "kubeadm", root, "init", "--config", cfg)
    err = result.stderr
    assert result.returncode == 1
    assert "error execution phase preflight: [preflight] Some fatal errors occurred:\n" in err
    assert "\t[ERROR Mem]: the system RAM (878 MB) is less than the minimum 1700 MB\n" in err
    assert "\t[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]: " \
           "/etc/kubernetes/manifests/kube-apiserver.yaml already exists\n" in err
    assert "\t[ERROR DirAvailable--var-lib-etcd]: /var/lib/etcd is not empty\n" in err
    assert "\t[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set " \
           "to 1\n" in err
    assert ('\t[ERROR CRI]: container runtime is not running: output: time="' in err and
            'dial unix /var/run/containerd/containerd.sock: connect: no such file or directory' in err)
    assert "\t[WARNING Swap]: swap is supported for cgroup v2 only; the NodeSwap feature gate of the kubelet is beta " \
           "but disabled by default\n" in err
    assert "[preflight] If you know what you are doing, you can make a check non-fatal with " \
           "`--ignore-preflight-errors=...`\n" in err
    ignored = run(bins, "kubeadm", root, "init", "--config", cfg, "--ignore-preflight-errors=Mem,dirAvailable--var-lib-etcd")
    assert "\t[WARNING Mem]: the system RAM (878 MB)" in ignored.stderr
    assert "[ERROR Mem]" not in ignored.stderr and "[ERROR DirAvailable" not in ignored.stderr
    both = run(bins, "kubeadm", root, "init", "--config", cfg, "--ignore-preflight-errors=all,Mem")
    assert "don't specify individual checks if 'all' is used" in both.stderr and both.returncode == 3
    swap31 = run(bins, "kubeadm", root, "init", "--config", write_init(root, "kubeadm.k8s.io/v1beta4"),
                 version="v1.31.1")
    assert "[WARNING Swap]: swap is supported for cgroup v2 only. The kubelet must be properly configured" in \
        swap31.stderr
    assert "could not connect to the container runtime: failed to create new CRI runtime service" in swap31.stderr


def test_num_cpu_is_the_affinity_mask(bins: dict[str, Path], tmp_path: Path) -> None:
    if not shutil.which("taskset"):
        pytest.skip("taskset not installed")
    root = fake_root(tmp_path)
    cfg = write_init(root)
    env = {**os.environ, "KUBE_STANDIN_ROOT": str(root)}
    result = subprocess.run(["taskset", "-c", "0", str(bins["kubeadm-v1.30.2"]), "init", "--config", cfg],
                            capture_output=True, text=True, env=env, check=False)
    assert "\t[ERROR NumCPU]: the number of available CPUs 1 is less than the required 2\n" in result.stderr


def test_kubelet_refuses_without_config_and_with_swap(bins: dict[str, Path], tmp_path: Path) -> None:
    root = fake_root(tmp_path, swap=True)
    result = run(bins, "kubelet", root, "--config=/var/lib/kubelet/config.yaml", timeout=20)
    assert result.returncode == 1
    assert ('"command failed" err="failed to load kubelet config file, path: /var/lib/kubelet/config.yaml, error: '
            "failed to load Kubelet config file /var/lib/kubelet/config.yaml, error failed to read kubelet config file "
            '\\"/var/lib/kubelet/config.yaml\\", error: open /var/lib/kubelet/config.yaml: no such file or directory"'
            ) in result.stderr
    (root / "var/lib/kubelet").mkdir(parents=True)
    (root / "var/lib/kubelet/config.yaml").write_text("apiVersion: kubelet.config.k8s.io/v1beta1\n"
                                                      "kind: KubeletConfiguration\n")
    result = run(bins, "kubelet", root, "--config=/var/lib/kubelet/config.yaml", timeout=20)
    assert result.returncode == 1
    assert "running with swap on is not supported, please disable swap! or set --fail-swap-on flag to false. " \
           "/proc/swaps contained: [Filename\t\t\t\tType\t\tSize\tUsed\tPriority /swap.img" in result.stderr


def test_join_without_ca_hash_is_a_validation_error(bins: dict[str, Path], tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    path = root / "join.yaml"
    path.write_text(f"apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n"
                    f"    apiServerEndpoint: 127.0.0.1:6443\n    token: {TOKEN}\n")
    result = run(bins, "kubeadm", root, "join", "--config", "/join.yaml")  # a host path, under the fake root
    assert result.returncode == 3
    assert ('discovery.bootstrapToken.caCertHashes: Invalid value: "": using token-based discovery without '
            "caCertHashes can be unsafe.") in result.stderr
    bad = run(bins, "kubeadm", root, "join", "--config", "/join.yaml", "--token", TOKEN)
    assert bad.stderr.startswith("can not mix '--config' with arguments [token]")


def test_ca_hash_is_the_spki_pin(tmp_path: Path) -> None:
    ca = kpki.new_ca("kubernetes")
    (tmp_path / "ca.crt").write_bytes(ca.cert)
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(tmp_path / "ca.crt")],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True,
                         check=True).stdout
    assert kpki.ca_hash(ca.cert) == "sha256:" + hashlib.sha256(der).hexdigest()


def test_join_command_format_and_token_shapes(bins: dict[str, Path], tmp_path: Path) -> None:
    from kube_standin import kubeadm

    text = kubeadm.join_command("10.0.0.1:6443", TOKEN, "sha256:ab", False, "", False)
    assert text == "kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef \\\n\t--discovery-token-ca-cert-hash sha256:ab "
    cp = kubeadm.join_command("10.0.0.1:6443", TOKEN, "sha256:ab", True, "k", True)
    assert cp == "kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:ab --control-plane --certificate-key k"
    root = fake_root(tmp_path)
    key = run(bins, "kubeadm", root, "certs", "certificate-key").stdout
    assert len(key) == 65 and all(c in "0123456789abcdef" for c in key.strip())
    token = run(bins, "kubeadm", root, "token", "generate").stdout.strip()
    assert kubeadm.TOKEN_RE.match(token)


# ---- end to end: init, CNI, kubelet restart, join refusals, reset ------------------------------------------------------


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary directory: unix socket paths (containerd's ``.ttrpc`` one) must stay under 108 bytes."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="ks", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def containerd(short_tmp: Path) -> Iterator[Path | None]:
    """A real containerd answering on the fake root's CRI socket (None when not installed)."""
    root = short_tmp / "root"
    if not shutil.which("containerd"):
        yield None
        return
    sock = root / "var/run/containerd/containerd.sock"
    sock.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["containerd", "--address", str(sock), "--root", str(short_tmp / "cr"), "--state",
                             str(short_tmp / "cs")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.time() + 20
        while not sock.exists() and time.time() < end:
            time.sleep(0.2)
        time.sleep(1)
        yield sock
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def _wait(check: object, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if check():  # type: ignore[operator]
            return
        time.sleep(1)
    raise AssertionError(f"timed out: {check}")


FLANNEL = """apiVersion: v1
kind: Namespace
metadata: {name: kube-flannel}
---
kind: ConfigMap
apiVersion: v1
metadata: {name: kube-flannel-cfg, namespace: kube-flannel}
data:
  cni-conf.json: '{"name": "cbr0", "cniVersion": "0.3.1", "plugins": [{"type": "flannel"}]}'
  net-conf.json: '{"Network": "NETWORK", "Backend": {"Type": "vxlan"}}'
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: kube-flannel-ds, namespace: kube-flannel}
spec:
  selector: {matchLabels: {app: flannel}}
  template:
    metadata: {labels: {app: flannel}}
    spec:
      hostNetwork: true
      tolerations: [{operator: Exists, effect: NoSchedule}]
      containers: [{name: kube-flannel, image: docker.io/flannel/flannel:v0.25.5}]
"""


def test_init_cni_restart_join_and_reset(bins: dict[str, Path], short_tmp: Path, containerd: Path | None) -> None:
    if not Path("/usr/bin/etcd").exists():
        pytest.skip("Debian's etcd is not installed")
    root = short_tmp / "root"
    fake_root(short_tmp)
    ignore = "FileExisting-crictl,FileExisting-conntrack,FileExisting-ip,FileExisting-iptables,FileExisting-nsenter"
    cfg = write_init(root, ignore=ignore + ("" if containerd else ",CRI"))
    try:
        result = run(bins, "kubeadm", root, "init", "--config", cfg, "--upload-certs", "--skip-token-print",
                     "--skip-certificate-key-print", timeout=300)
        assert result.returncode == 0, result.stderr
        assert "[upload-certs] Using certificate key:" not in result.stdout
        assert "--token <value withheld> \\\n\t--discovery-token-ca-cert-hash sha256:" in result.stdout
        for name in ("admin.conf", "super-admin.conf", "kubelet.conf", "controller-manager.conf", "scheduler.conf",
                     "pki/etcd/ca.crt", "pki/sa.pub", "manifests/etcd.yaml", "manifests/kube-apiserver.yaml"):
            assert (root / "etc/kubernetes" / name).exists(), name
        cm = (root / "etc/kubernetes/manifests/kube-controller-manager.yaml").read_text()
        assert "--cluster-cidr=10.244.0.0/16" in cm and "--allocate-node-cidrs=true" in cm
        assert (root / "var/lib/kubelet/kubeadm-flags.env").read_text() == (
            'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock '
            '--pod-infra-container-image=registry.k8s.io/pause:3.9"\n')
        admin = str(root / "etc/kubernetes/admin.conf")
        kubectl = [str(bins["kubectl-v1.30.2"]), "--kubeconfig", admin]

        def node() -> dict[str, object]:
            return json.loads(subprocess.run([*kubectl, "get", "node", "kcp1", "-o", "json"], capture_output=True,
                                             text=True, check=True).stdout)

        ready = [c for c in node()["status"]["conditions"] if c["type"] == "Ready"][0]  # type: ignore[index]
        assert (ready["status"] == "False" and "cni plugin not initialized" in ready["message"]) or not containerd
        _wait(lambda: node()["spec"].get("podCIDR") == "10.244.0.0/24")  # type: ignore[attr-defined]
        # a flannel Network that does not hold the node's podCIDR: refused, no conflist
        bad = short_tmp / "flannel-bad.yml"
        bad.write_text(FLANNEL.replace("NETWORK", "10.85.0.0/16"))
        applied = subprocess.run([*kubectl, "apply", "-f", str(bad)], capture_output=True, text=True, check=False)
        assert applied.returncode == 0, applied.stderr
        assert "daemonset.apps/kube-flannel-ds created" in applied.stdout
        time.sleep(12)
        assert not (root / "etc/cni/net.d/10-flannel.conflist").exists()
        log = (root / "run/fake-systemd/kubelet.service.log").read_text()
        assert 'subnet "10.85.0.0/16" specified in the flannel net config doesn\'t contain "10.244.0.0/24"' in log
        good = short_tmp / "flannel.yml"
        good.write_text(FLANNEL.replace("NETWORK", "10.244.0.0/16"))
        applied = subprocess.run([*kubectl, "apply", "-f", str(good)], capture_output=True, text=True, check=False)
        assert "configmap/kube-flannel-cfg configured" in applied.stdout, applied.stderr
        _wait(lambda: (root / "etc/cni/net.d/10-flannel.conflist").exists(), 30)
        rolled = subprocess.run([*kubectl, "-n", "kube-flannel", "rollout", "status", "ds/kube-flannel-ds",
                                 "--timeout=40s"], capture_output=True, text=True, check=False)
        assert 'daemon set "kube-flannel-ds" successfully rolled out' in rolled.stdout
        if containerd:
            waited = subprocess.run([*kubectl, "wait", "--for=condition=Ready", "node/kcp1", "--timeout=40s"],
                                    capture_output=True, text=True, check=False)
            assert waited.stdout == "node/kcp1 condition met\n"
            _wait(lambda: json.loads(subprocess.run([*kubectl, "-n", "kube-system", "get", "deploy", "coredns", "-o",
                                                     "json"], capture_output=True, text=True).stdout)
                  ["status"].get("readyReplicas") == 2, 30)
            if Path(REAL_KUBECTL).exists():
                real = subprocess.run([REAL_KUBECTL, "--kubeconfig", admin, "get", "nodes"], capture_output=True,
                                      text=True, check=False)
                assert "kcp1   Ready    control-plane" in real.stdout, real.stderr
        # static pods outlive a kubelet restart
        state = root / "run/fake-systemd/kube-standin-pod-kube-apiserver.service.json"
        before = json.loads(state.read_text())["pid"]
        subprocess.run([str(bins["systemctl"]), "restart", "kubelet"], check=True, env={
            **os.environ, "KUBE_STANDIN_ROOT": str(root), "FAKE_KUBELET_BIN": str(bins["kubelet-v1.30.2"])})
        time.sleep(4)
        assert json.loads(state.read_text())["pid"] == before
        # join: a wrong CA pin is refused with the real CA's pin named
        ca_hash = kpki.ca_hash((root / "etc/kubernetes/pki/ca.crt").read_bytes())
        join_root = short_tmp / "joiner"
        (join_root / "etc").mkdir(parents=True)
        jcfg = join_root / "join.yaml"
        jcfg.write_text(f"apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n"
                        f"    apiServerEndpoint: 127.0.0.1:6443\n    token: {TOKEN}\n    caCertHashes: [sha256:{'0' * 64}]\n"
                        f"nodeRegistration:\n  ignorePreflightErrors: [all]\n")
        joined = run(bins, "kubeadm", join_root, "join", "--config", "/join.yaml")
        assert joined.returncode == 1
        assert ("error execution phase preflight: couldn't validate the identity of the API Server: cluster CA found "
                f'in cluster-info ConfigMap is invalid: none of the public keys "{ca_hash}" are pinned') in joined.stderr
        token = run(bins, "kubeadm", root, "token", "create", "--ttl", "30m", "--description", "provision join")
        assert token.returncode == 0 and len(token.stdout.strip()) == 23
        listed = run(bins, "kubeadm", root, "token", "list").stdout
        assert "provision join" in listed and listed.startswith("TOKEN ")
        secret = json.loads(subprocess.run([*kubectl, "-n", "kube-system", "get", "secret", "kubeadm-certs", "-o",
                                            "json"], capture_output=True, text=True, check=True).stdout)
        sealed = base64.b64decode(secret["data"]["ca.crt"])
        key = "46c4727ea4da0877fd6e152f0c5d4842837ea949909e9ccb83a5c2f7331f53a9"
        assert kpki.decrypt(sealed, key) == (root / "etc/kubernetes/pki/ca.crt").read_bytes()
        # control-plane join: certificates downloaded with the key (wrong key, then the Secret gone)
        _control_plane_join_refusals(bins, join_root, token.stdout.strip(), ca_hash, kubectl)
        # the etcd membership calls kubeadm makes, against the real etcd 3.4
        _etcd_membership_calls(root / "etc/kubernetes/pki")
    finally:
        bogus = run(bins, "kubeadm", root, "reset", "-f", "--skip-phases=remove-etcd-member,frobnicate")
        reset = run(bins, "kubeadm", root, "reset", "-f", "--skip-phases=remove-etcd-member")
    # An unknown phase is refused before anything changes; skipping remove-etcd-member keeps the etcd data (kubeadm
    # empties the data directory in that phase), which provision's reset then removes itself.
    assert bogus.returncode == 1 and "frobnicate" in bogus.stderr
    assert reset.returncode == 0, reset.stderr
    assert "The reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d" in reset.stdout
    assert not (root / "etc/kubernetes/admin.conf").exists()
    assert not list((root / "run/fake-systemd").glob("*.json"))
    assert any((root / "var/lib/etcd").iterdir())


def _control_plane_join_refusals(bins: dict[str, Path], join_root: Path, token: str, ca_hash: str,
                                 kubectl: list[str]) -> None:
    def join(key: str) -> subprocess.CompletedProcess[str]:
        (join_root / "join-cp.yaml").write_text(
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n"
            f"    apiServerEndpoint: 127.0.0.1:6443\n    token: {token}\n    caCertHashes: [{ca_hash}]\n"
            "nodeRegistration:\n  name: kcp2\n  ignorePreflightErrors: [all]\n"
            f"controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: 127.0.0.2\n  certificateKey: '{key}'\n")
        return run(bins, "kubeadm", join_root, "join", "--config", "/join-cp.yaml")

    wrong = join("0" * 64)
    assert wrong.returncode == 1, wrong.stderr
    assert "[preflight] Running pre-flight checks before initializing the new control plane instance\n" in wrong.stdout
    assert '[download-certs] Downloading the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace' \
        in wrong.stdout
    assert wrong.stderr.endswith(
        "error execution phase control-plane-prepare/download-certs: error downloading certs: error decoding secret "
        "data with provided key: cipher: message authentication failed\n"
        "To see the stack trace of this error execute with --v=5 or higher\n")
    assert not (join_root / "etc/kubernetes/pki/ca.key").exists()
    from kube_standin.client import Api

    admin = Api.from_kubeconfig(Path(kubectl[-1]))  # as if the 2 h had passed: the garbage collector deletes it
    admin.request("DELETE", "/api/v1/namespaces/kube-system/secrets/kubeadm-certs")
    gone = join("46c4727ea4da0877fd6e152f0c5d4842837ea949909e9ccb83a5c2f7331f53a9")
    assert gone.returncode == 1
    assert ("error execution phase control-plane-prepare/download-certs: error downloading certs: error downloading "
            'the secret: Secret "kubeadm-certs" was not found in the "kube-system" Namespace. This Secret might have '
            "expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a "
            "new one\n") in gone.stderr


def _etcd_membership_calls(pki_dir: Path) -> None:
    from kube_standin import etcd as ketcd

    endpoint = "https://127.0.0.1:2379"
    assert ketcd.healthy(pki_dir, endpoint)
    assert [m["name"] for m in ketcd.members(pki_dir, endpoint, "apiserver")] == ["kcp1"]
    new, listed = ketcd.add_member(pki_dir, endpoint, "https://127.0.0.2:2380", learner=True)
    try:
        assert new["isLearner"] is True and len(listed) == 2
        with pytest.raises(ketcd.EtcdError, match="code = FailedPrecondition desc = etcdserver: can only promote a "
                                                  "learner member which is in sync with leader"):
            ketcd.promote(pki_dir, endpoint, str(new["ID"]))
    finally:
        ketcd.remove(pki_dir, endpoint, str(new["ID"]))
    assert len(ketcd.members(pki_dir, endpoint)) == 1


def test_upgrade_version_policy_is_kubeadms() -> None:
    """kubeadm's EnforceVersionPolicies as kubeadm_facts.md §7 records it: fatal and --force-skippable items."""
    from kube_standin import upgrade  # noqa: PLC0415 - the stand-in package is on sys.path only here

    assert upgrade.policy("v1.31.1", "v1.31.1", "v1.30.2", ["v1.30.2"]) == ([], [])
    fatal, _ = upgrade.policy("v1.32.0", "v1.31.1", "v1.30.2", [])
    assert 'Specified version to upgrade to "v1.32.0" is too high; kubeadm can upgrade only 1 minor version at a ' \
           "time" in fatal
    assert any("is at least one minor release higher than the kubeadm minor release (32 > 31)" in f for f in fatal)
    fatal, _ = upgrade.policy("v1.29.0", "v1.31.1", "v1.31.1", [])
    assert any("is too low; kubeadm can downgrade only 1 minor version at a time" in f for f in fatal)
    fatal, skippable = upgrade.policy("v1.31.2", "v1.31.1", "v1.30.2", [])
    assert fatal == [] and skippable == [
        'Specified version to upgrade to "v1.31.2" is higher than the kubeadm version "v1.31.1". Upgrade kubeadm '
        "first using the tool you used to install kubeadm"]
    _, skippable = upgrade.policy("v1.30.2", "v1.31.1", "v1.30.2", ["v1.26.0"])
    assert "Kubeadm version v1.31.1 can only be used to upgrade to Kubernetes version 1.31" in skippable
    assert "There are kubelets in this cluster that are too old that have these versions [v1.26.0]" in skippable


def test_eviction_respects_pod_disruption_budgets() -> None:
    """The eviction subresource: 429 with the apiserver's texts while a PDB selecting the pod allows no disruption;
    the pod is deleted once it may go; a pod under two PDBs is refused as the apiserver does."""
    import threading  # noqa: PLC0415

    from kube_standin import builtin  # noqa: PLC0415

    class Memory:
        def __init__(self) -> None:
            self.data: dict[str, bytes] = {"/registry/namespaces/default": b"{}"}

        def get(self, key: str) -> bytes | None:
            return self.data.get(key)

        def list(self, prefix: str) -> dict[str, bytes]:
            return {k: v for k, v in self.data.items() if k.startswith(prefix)}

        def create(self, key: str, value: bytes) -> bool:
            return self.data.setdefault(key, value) is value

        def put(self, key: str, value: bytes) -> None:
            self.data[key] = value

        def delete(self, key: str) -> None:
            self.data.pop(key, None)

    class FakeCluster:
        store = Memory()
        _lock = threading.Lock()

    store = builtin.Store(FakeCluster())
    pods, pdbs = builtin.builtin_kind("pods"), builtin.builtin_kind("poddisruptionbudgets")
    store.create(pods, "default", {"metadata": {"name": "web-1", "labels": {"app": "web"}}, "spec": {"nodeName": "w1"}})
    store.create(pdbs, "default", {"metadata": {"name": "web"}, "spec": {"minAvailable": 1,
                                                                         "selector": {"matchLabels": {"app": "web"}}}})
    with pytest.raises(builtin.Failed) as refused:
        builtin.evict(store, "default", "web-1")
    body = refused.value.answer.body
    assert refused.value.answer.code == 429 and body["reason"] == "TooManyRequests"
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"][0]["message"] == "The disruption budget web needs 1 healthy pods and has 1 currently"
    assert builtin.pdb_status(store.get(pdbs, "default", "web") or {}, store.list(pods, "default"))[
        "disruptionsAllowed"] == 0
    store.create(pods, "default", {"metadata": {"name": "web-2", "labels": {"app": "web"}}})
    assert builtin.evict(store, "default", "web-1").code == 201  # two pods, one may go
    assert store.get(pods, "default", "web-1") is None
    store.create(pdbs, "default", {"metadata": {"name": "web-too"}, "spec": {
        "maxUnavailable": "50%", "selector": {"matchLabels": {"app": "web"}}}})
    with pytest.raises(builtin.Failed) as two:
        builtin.evict(store, "default", "web-2")
    assert two.value.answer.code == 500 and "more than one PodDisruptionBudget" in two.value.answer.body["message"]
