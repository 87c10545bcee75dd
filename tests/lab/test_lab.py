"""The lab itself: real SSH with host-key checking, the release mirror, host life cycle, boards, cleanup."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import LAB_ID_LABEL
from tests.lab.fixtures import MakeLab, new_lab_id, require_docker
from tests.lab.lab import DEVICE_TREE_DIR, HostSpec, Lab, lxcfs_running

# One xdist worker runs this whole module, so its module-scoped fixture starts once (scripts/test runs in parallel).
pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab-module-lab3")]

VERSION = "v1.28.4+k3s2"
FIRST_REPO_TAG = 'import json, sys; print(json.load(sys.stdin)[0]["RepoTags"][0])'


@pytest.fixture(scope="module")
def lab3(lab_image: str, mirror_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One 3-host lab with a mirror, shared by this module's tests (each leaves it as it found it)."""
    require_docker()
    lab_id = new_lab_id("l")
    lab = Lab.create(lab_id, [HostSpec(f"host{i}") for i in (1, 2, 3)], tmp_path_factory.mktemp(lab_id), mirror_dir)
    yield lab
    lab.destroy()


def lab_objects(lab_id: str) -> list[str]:
    """Containers and networks still carrying this lab's id label."""
    label = f"label={LAB_ID_LABEL}={lab_id}"
    containers = subprocess.run(["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True, check=True)
    networks = subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", label], capture_output=True, text=True, check=True
    )
    return containers.stdout.split() + networks.stdout.split()


def test_each_host_answers_ssh_with_strict_host_key_checking(lab3: Lab) -> None:
    for name in ("host1", "host2", "host3"):
        result = lab3.ssh(name, "hostname; systemctl is-system-running; id -u")
        assert result.returncode in (0, 1), result.stderr  # is-system-running exits 1 when degraded
        hostname, state, uid = result.stdout.split()
        assert (hostname, uid) == (name, "0")
        assert state in ("running", "degraded"), lab3.exec(name, "systemctl --failed").stdout
    assert len({info.ip for info in lab3.hosts.values()}) == 3
    assert oct(lab3.key_path.stat().st_mode & 0o777) == "0o600"


def test_each_host_has_its_own_host_key(lab3: Lab) -> None:
    keys = [line.split()[-1] for line in lab3.known_hosts.read_text().splitlines() if "ed25519" in line]
    assert len(keys) == 3 and len(set(keys)) == 3
    machine_ids = {lab3.exec(name, "cat /etc/machine-id").stdout.strip() for name in lab3.hosts}
    assert len(machine_ids) == 3 and "" not in machine_ids
    password_auth = lab3.exec("host1", "sshd -T | grep -i -E '^(passwordauthentication|permitrootlogin) '").stdout
    assert "passwordauthentication no" in password_auth and "permitrootlogin without-password" in password_auth


def test_wrong_or_missing_known_hosts_entry_is_refused(lab3: Lab, tmp_path: Path) -> None:
    lines = lab3.known_hosts.read_text().splitlines()
    host1_ip, host2_ip = lab3.ip("host1"), lab3.ip("host2")
    # host2's keys filed under host1's address: what a man in the middle would look like.
    forged = [line.replace(host2_ip, host1_ip, 1) for line in lines if line.split()[0] == host2_ip]
    wrong = tmp_path / "known_hosts.wrong"
    wrong.write_text("\n".join(forged) + "\n")
    refused = lab3.ssh("host1", "true", known_hosts=wrong)
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr or "IDENTIFICATION HAS CHANGED" in refused.stderr
    empty = tmp_path / "known_hosts.empty"
    empty.write_text("")
    unknown = lab3.ssh("host1", "true", known_hosts=empty)
    assert unknown.returncode == 255 and "Host key verification failed" in unknown.stderr


@pytest.mark.parametrize("encoded", [False, True], ids=["raw-plus", "percent-2B"])
def test_host_downloads_standin_from_mirror_and_checks_sha256(lab3: Lab, encoded: bool) -> None:
    assert lab3.mirror_url is not None
    version = VERSION.replace("+", "%2B") if encoded else VERSION
    base = f"{lab3.mirror_url}/{version}"
    script = f"""
        set -e; rm -rf /tmp/dl; mkdir /tmp/dl; cd /tmp/dl
        curl -fsS -o k3s '{base}/k3s'
        curl -fsS -o sums '{base}/sha256sum-amd64.txt'
        grep -E '  k3s$' sums > k3s.sum
        sha256sum -c k3s.sum
        chmod +x k3s && ./k3s --version
    """
    result = lab3.ssh("host1", script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "k3s: OK" in result.stdout
    assert f"k3s version {VERSION} (" in result.stdout


def test_tampered_download_fails_the_checksum(lab3: Lab) -> None:
    base = f"{lab3.mirror_url}/{VERSION}"
    script = f"""
        cd /tmp && curl -fsS -o k3s '{base}/k3s' && curl -fsS -o sums '{base}/sha256sum-amd64.txt'
        echo '# tampered' >> k3s
        grep -E '  k3s$' sums | sha256sum -c
    """
    result = lab3.ssh("host2", script)
    assert result.returncode != 0
    assert "k3s: FAILED" in result.stdout


def test_mirror_serves_arm_assets_airgap_archives_and_channel_redirects(lab3: Lab) -> None:
    base = lab3.mirror_url
    script = f"""
        set -e; cd /tmp
        for arch in arm64 arm; do
          curl -fsS -o sums-$arch '{base}/{VERSION}/sha256sum-'$arch'.txt'
        done
        grep -c k3s-airgap-images-arm64.tar sums-arm64
        curl -fsS -o k3s-airgap-images-amd64.tar '{base}/{VERSION}/k3s-airgap-images-amd64.tar'
        curl -fsS '{base}/{VERSION}/k3s-airgap-images-amd64.sha256sum' | grep -E '\\.tar$' | sha256sum -c
        tar -xOf k3s-airgap-images-amd64.tar manifest.json | python3 -c '{FIRST_REPO_TAG}'
        curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}\\n' '{base}/v1-release/channels/v1.28'
        curl -fsSL -o /dev/null -w '%{{url_effective}}\\n' '{base}/v1-release/channels/stable'
        curl -s -o /dev/null -w '%{{http_code}}\\n' '{base}/v1-release/channels/nope'
    """
    result = lab3.ssh("host3", script)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "k3s-airgap-images-amd64.tar: OK" in lines
    assert any(line.startswith("docker.io/rancher/") for line in lines)
    assert f"302 {base}/k3s-io/k3s/releases/tag/{VERSION}" in lines
    assert any(line.endswith("/v1.29.0+k3s1") for line in lines)  # the last segment is the version
    assert lines[-1] == "404"


def test_stopped_host_is_unreachable_and_comes_back_with_same_ip_and_keys(lab3: Lab) -> None:
    ip_before = lab3.ip("host2")
    lab3.stop("host2")
    assert not lab3.is_running("host2")
    assert lab3.ssh("host2", "true", timeout=30).returncode == 255
    lab3.start("host2")
    assert lab3.ip("host2") == ip_before
    assert lab3.exec("host2", "ip -4 -o addr show eth0").stdout.split()[3].startswith(ip_before + "/")
    assert lab3.ssh("host2", "true").returncode == 0  # strict checking: the host keys survived


def test_killed_host_restarts(lab3: Lab) -> None:
    lab3.kill("host3")
    assert not lab3.is_running("host3")
    lab3.start("host3")
    assert lab3.ssh("host3", "systemctl is-active ssh").stdout.strip() == "active"


def test_disconnected_host_is_cut_off_both_ways_and_reconnects_with_same_ip(lab3: Lab) -> None:
    host1_ip = lab3.ip("host1")
    probe = f"timeout 3 bash -c 'exec 3<>/dev/tcp/{host1_ip}/22' && echo reach || echo unreachable"
    assert lab3.exec("host3", probe).stdout.strip() == "reach"
    lab3.disconnect("host3")
    assert lab3.is_running("host3")
    assert lab3.ssh("host3", "true", timeout=30).returncode == 255
    assert lab3.exec("host3", probe).stdout.strip() == "unreachable"
    lab3.reconnect("host3")
    same_ip_on_eth0 = f"ip -4 -o addr show eth0 | grep -q ' {lab3.ip('host3')}/'"
    assert lab3.ssh("host3", f"{same_ip_on_eth0} && {probe}").stdout.strip() == "reach"


def test_board_identity_is_visible(make_lab: MakeLab) -> None:
    lab = make_lab([HostSpec("pi", board="rpi4"), HostSpec("orin", board="jetson-orin"), HostSpec("pc")], mirror=False)
    assert lab.hosts["pi"].board == "rpi4"
    pi = lab.ssh("pi", f"cat {DEVICE_TREE_DIR}/model; echo; cat /boot/firmware/cmdline.txt")
    assert pi.stdout.startswith("Raspberry Pi 4 Model B Rev 1.4\0\n"), pi.stdout
    assert "rootwait" in pi.stdout
    compatible = lab.exec("pi", f"cat {DEVICE_TREE_DIR}/compatible").stdout
    assert compatible.split("\0")[:2] == ["raspberrypi,4-model-b", "brcm,bcm2711"]
    orin = lab.ssh("orin", f"tr -d '\\0' < {DEVICE_TREE_DIR}/model; echo; head -1 /etc/nv_tegra_release")
    assert orin.stdout.splitlines()[0] == "NVIDIA Jetson Orin Nano Developer Kit"
    assert orin.stdout.splitlines()[1].startswith("# R36 (release)")
    plain = lab.ssh("pc", f"test -e {DEVICE_TREE_DIR}/model || test -e /boot/firmware/cmdline.txt; echo $?")
    assert plain.stdout.strip() == "1"
    state = lab.ssh("pi", "systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded")


def test_memory_limit_is_visible_through_lxcfs(make_lab: MakeLab) -> None:
    if not lxcfs_running():
        pytest.skip("lxcfs is not running on this machine (optional: apt-get install lxcfs; lxcfs /var/lib/lxcfs &)")
    lab = make_lab([HostSpec("small", memory_mb=1024, cpus=1)], mirror=False)
    meminfo = lab.ssh("small", "grep MemTotal /proc/meminfo; nproc").stdout.split()
    assert meminfo[1] == "1048576" and meminfo[-1] == "1"


def test_destroy_removes_exactly_this_labs_objects(make_lab: MakeLab, lab3: Lab) -> None:
    lab = make_lab(2)
    assert len(lab_objects(lab.lab_id)) == 4  # two hosts, the mirror, the network
    lab.destroy()
    assert lab_objects(lab.lab_id) == []
    assert lab3.ssh("host1", "true").returncode == 0  # another lab is untouched


@pytest.mark.arm64
def test_arm64_host_gets_and_runs_only_the_arm64_artifact(make_lab: MakeLab) -> None:
    """Emulated arm64 host (slow: builds the arm64 image once); enabled with PROVISION_LAB_ARM64=1."""
    if os.environ.get("PROVISION_LAB_ARM64") != "1":
        pytest.skip("arm64 lab hosts are opt-in: set PROVISION_LAB_ARM64=1 (needs qemu-user-static, binfmt-support)")
    lab = make_lab([HostSpec("arm1", arch="arm64", board="rpi5")])
    assert lab.ssh("arm1", "uname -m").stdout.strip() == "aarch64"
    base = f"{lab.mirror_url}/{VERSION}"
    script = f"""
        set -e; cd /tmp
        curl -fsS -O '{base}/k3s-arm64' -O '{base}/k3s' -O '{base}/sha256sum-arm64.txt'
        grep -E '  k3s-arm64$' sha256sum-arm64.txt | sha256sum -c
        chmod +x k3s-arm64 k3s
        ./k3s-arm64 --version | head -1
        set +e; ./k3s --version 2>&1; echo "amd64 build exit $?"
    """
    result = lab.ssh("arm1", script)
    assert "k3s-arm64: OK" in result.stdout, result.stdout + result.stderr
    assert f"k3s version {VERSION} (" in result.stdout
    assert "Exec format error" in result.stdout and "amd64 build exit 126" in result.stdout
