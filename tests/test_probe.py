"""Host probing: compare() driven by tests/probe_cases, the pure parsers, error classification, and real SSH in the lab.

A case file (``tests/probe_cases/<case>.json``) holds:

* ``host``: fields over a default root server ``node-1`` at 10.0.0.5:22 (``hardware`` is a mapping);
* ``facts``: fields over ``HEALTHY`` below (a healthy amd64 Debian 12 PC), or null for "not probed";
* ``expected``: the findings, in order, as ``check`` and ``severity`` plus optional ``message``/``fix`` substrings.
"""

from __future__ import annotations

import errno
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko
import pytest
from paramiko.ssh_exception import NoValidConnectionsError
from pyinfra.api.exceptions import ConnectError, PyinfraError
from pyinfra.facts import hardware

from provisioner.inventory.model import Hardware, Host
from provisioner.ssh_config import SshSettings
from provisioner.probe import (
    PROBE_COMMAND,
    PYINFRA_FACTS,
    SECTION_MARK,
    HostFacts,
    classify_board,
    classify_error,
    clock_skew,
    compare,
    k3s_arch,
    memory_cgroup_enabled,
    parse_key_values,
    probe_hosts,
    split_sections,
    usable_cpus,
)
from tests.lab.lab import HostSpec, Lab

CASES_DIR = Path(__file__).with_name("probe_cases")
CASES = sorted(CASES_DIR.glob("*.json"))

HEALTHY: dict[str, Any] = {
    "reachable": True,
    "uid": 0,
    "sudo_ok": True,
    "hostname": "node-1",
    "os_id": "debian",
    "os_version": "12",
    "arch": "amd64",
    "arch_raw": "x86_64",
    "kernel": "6.1.0-18-amd64",
    "memory_mb": 7940,
    "cpus": 4,
    "board": "generic",
    "cgroup_version": 2,
    "memory_cgroup_enabled": True,
    "swap_mb": 0,
    "disk_path": "/var",
    "disk_free_mb": 5120,
    "clock_skew_s": 0.01,
    "systemd": True,
    "elapsed_s": 0.4,
}


def case_host(spec: dict[str, Any]) -> Host:
    fields: dict[str, Any] = {"name": "node-1", "address": "10.0.0.5", "port": 22, "user": "root", "role": "server"}
    fields.update(spec)
    fields["hardware"] = Hardware(**fields.get("hardware", {}))
    return Host(**fields)


# ----- compare(): data-driven -------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("case_file", CASES, ids=[case.stem for case in CASES])
def test_compare_case(case_file: Path) -> None:
    case = json.loads(case_file.read_text(encoding="utf-8"))
    host = case_host(case["host"])
    facts = (
        {}
        if case["facts"] is None
        else {host.name: HostFacts.from_dict({"name": host.name, **HEALTHY, **case["facts"]})}
    )

    findings = compare([host], facts)

    expected = case["expected"]
    assert [(f.check, f.severity) for f in findings] == [(e["check"], e["severity"]) for e in expected], findings
    for finding, wanted in zip(findings, expected, strict=True):
        assert finding.host == host.name
        assert wanted.get("message", "") in finding.message, finding
        assert wanted.get("fix", "") in finding.fix, finding
        assert finding.fix, f"every finding needs a fix: {finding}"


@pytest.mark.unit
def test_cases_exist_for_every_check() -> None:
    """Each check compare() can emit has at least one case that expects it."""
    seen = {e["check"] for case in CASES for e in json.loads(case.read_text(encoding="utf-8"))["expected"]}
    assert seen >= {"probe", "reachable", "sudo", "arch", "arch-supported", "board", "memory", "memory-cgroup",
                    "swap", "disk", "clock", "systemd", "os"}  # fmt: skip


@pytest.mark.unit
def test_facts_round_trip_and_unknown_fields_are_refused() -> None:
    facts = HostFacts.from_dict({"name": "a", **HEALTHY, "os_like": ["debian"]})
    assert HostFacts.from_dict(facts.to_dict()) == facts
    with pytest.raises(ValueError, match="memory_gb"):
        HostFacts.from_dict({"name": "a", "memory_gb": 4})


# ----- pure parsers -----------------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    "case",
    [
        ("aarch64", "Raspberry Pi 4 Model B Rev 1.4", "raspberrypi,4-model-b brcm,bcm2711", "", None, "rpi4"),
        ("aarch64", "Raspberry Pi 5 Model B Rev 1.0", "", "", None, "rpi5"),
        ("aarch64", "Raspberry Pi Compute Module 4 Rev 1.1", "", "", None, "rpi4"),
        ("armv7l", "Raspberry Pi 3 Model B Plus Rev 1.3", "", "", None, "rpi3"),
        ("armv6l", "Raspberry Pi Zero W Rev 1.1", "", "", None, "other-arm"),
        (
            "aarch64",
            "NVIDIA Jetson Orin Nano Developer Kit",
            "nvidia,p3768-0000+p3767-0005 nvidia,tegra234",
            "",
            None,
            "jetson-orin",
        ),
        ("aarch64", "NVIDIA Jetson Orin Nano Developer Kit", "", "", None, "jetson-orin"),  # "orin" before "nano"
        ("aarch64", "NVIDIA Jetson Nano Developer Kit", "nvidia,p3450-0000 nvidia,tegra210", "", None, "jetson-nano"),
        ("aarch64", "NVIDIA Jetson Xavier NX Developer Kit", "", "", None, "jetson-xavier"),
        ("aarch64", None, "", "# R36 (release), REVISION: 3.0", None, "jetson-orin"),
        ("aarch64", None, "", "# R32 (release), REVISION: 7.4", None, "jetson"),
        ("aarch64", "Pine64 RockPro64 v2.1", "", "", None, "other-arm"),
        ("x86_64", None, "", "", "kvm", "vm"),
        ("x86_64", None, "", "", None, "generic"),
        ("x86_64", "Raspberry Pi 4 Model B Rev 1.4", "", "", "kvm", "rpi4"),  # the lab's fake Pi: the model wins
    ],
)
def test_classify_board(case: tuple[str, str | None, str, str, str | None, str]) -> None:
    arch, model, compatible, tegra, vm, board = case
    assert classify_board(arch, model, compatible, tegra, vm) == board


@pytest.mark.unit
def test_k3s_arch_names() -> None:
    assert [k3s_arch(m) for m in ("x86_64", "aarch64", "armv7l", "s390x", "armv6l", "riscv64", None)] == [
        "amd64", "arm64", "arm", "s390x", "armv6l", "riscv64", None,
    ]  # fmt: skip


@pytest.mark.unit
def test_shell_output_parsing() -> None:
    output = "mark=provision-probe\ndt_model=Raspberry Pi 4 Model B Rev 1.4\nnoise\ncgroup_fs=cgroup2fs\n"
    shell = parse_key_values(output + "cgroup2_controllers=cpuset cpu io pids\n")
    assert shell["dt_model"] == "Raspberry Pi 4 Model B Rev 1.4"
    assert memory_cgroup_enabled(shell) is False  # v2 without "memory" in cgroup.controllers
    assert memory_cgroup_enabled({"cgroup_fs": "cgroup2fs", "cgroup2_controllers": "cpu memory pids"}) is True
    assert memory_cgroup_enabled({"cgroup_fs": "tmpfs", "cgroup1_memory_enabled": "0"}) is False
    assert memory_cgroup_enabled({"cgroup_fs": "tmpfs", "cgroup1_memory_enabled": "1"}) is True
    assert memory_cgroup_enabled({}) is None
    # A cpuset narrows what runs (kubeadm's NumCPU counts that), while getconf still reports the machine's CPUs.
    assert usable_cpus({"nproc": "1"}, 8) == 1
    assert usable_cpus({}, 8) == 8 and usable_cpus({"nproc": ""}, 8) == 8


@pytest.mark.unit
def test_clock_skew_is_ntp_style() -> None:
    # Sent at 990, received at 991; the host read 1000.4 and 1000.6: 10 s ahead (midpoint 990.5 vs 1000.5).
    assert clock_skew("1000.4", "1000.6", 990.0, 991.0) == pytest.approx(10.0)
    assert clock_skew("1000.5", None, 990.0, 991.0) == pytest.approx(10.0)  # one reading: against the midpoint
    assert clock_skew("1700000000.N", "1700000000.N", 1700000000.0, 1700000000.0) == 0.0  # busybox: no %N
    assert clock_skew("garbage", None, 1.0, 2.0) is None
    assert clock_skew(None, None, 1.0, 2.0) is None


@pytest.mark.unit
def test_probe_output_sections_feed_pyinfra_parsers() -> None:
    """The one-command output splits into shell key=values and per-fact sections that pyinfra's parsers read."""
    output = "\n".join([
        "clock_start=1700000000.25", "mark=provision-probe", "uid=0",
        f"{SECTION_MARK}arch", "aarch64",
        f"{SECTION_MARK}memory", "      3884388 K total memory", "       123456 K used memory",
        f"{SECTION_MARK}cpus", "4",
        f"{SECTION_MARK}", "clock_end=1700000000.75",
    ])  # fmt: skip
    shell, sections = split_sections(output)
    assert shell == {"clock_start": "1700000000.25", "mark": "provision-probe", "uid": "0",
                     "clock_end": "1700000000.75"}  # fmt: skip
    assert sections["arch"] == ["aarch64"] and sections["cpus"] == ["4"]
    assert hardware.Memory().process(sections["memory"]) == 3793  # pyinfra's own parser, in MB
    for key, _ in PYINFRA_FACTS:
        assert f"echo '{SECTION_MARK}{key}'" in PROBE_COMMAND


# ----- error classification ---------------------------------------------------------------------------------------


def wrapped(inner: BaseException, message: str) -> ConnectError:
    """What pyinfra raises: its ConnectError, with paramiko's exception as the implicit context."""
    try:
        raise inner
    except BaseException:
        try:
            raise ConnectError(message)
        except ConnectError as outer:
            return outer
    raise AssertionError("unreachable")


def bad_host_key() -> paramiko.BadHostKeyException:
    got, expected = paramiko.RSAKey.generate(1024), paramiko.RSAKey.generate(1024)
    return paramiko.BadHostKeyException("10.0.0.5", got, expected)


IP = "10.0.0.5"
ERROR_CASES: list[tuple[str, Callable[[], BaseException], str]] = [
    ("changed key", lambda: wrapped(bad_host_key(), "SSH host key error (Host key for 10.0.0.5 does not match.)"),
     "host key verification failed"),
    ("unknown key", lambda: wrapped(paramiko.SSHException(f"StrictPolicy: No host key for {IP} found in known_hosts"),
                                    "SSH error (StrictPolicy: ...)"), "host key verification failed"),
    ("refused", lambda: wrapped(NoValidConnectionsError({("10.0.0.5", 22): ConnectionRefusedError(errno.ECONNREFUSED,
                                "refused")}), "Could not connect (...)"), "connection refused"),
    ("no route", lambda: wrapped(NoValidConnectionsError({("10.0.0.5", 22): OSError(errno.EHOSTUNREACH, "no route")}),
                                 "Could not connect (...)"), "host unreachable"),
    ("timeout", lambda: wrapped(TimeoutError("timed out"), "Could not connect (timed out)"), "timed out"),
    ("auth", lambda: wrapped(paramiko.AuthenticationException("Authentication failed."),
                             "Authentication error (username=pi)"), "authentication failed"),
    ("dns", lambda: wrapped(socket.gaierror(-2, "Name or service not known"), "Could not resolve hostname (...)"),
     "name resolution failed"),
    ("key file", lambda: PyinfraError("No such private key file: /nope"), "private key unusable"),
    ("eof", lambda: wrapped(EOFError(), "EOF error ()"), "connection closed"),
    ("other ssh", lambda: wrapped(paramiko.SSHException("Incompatible ssh peer"), "SSH error (...)"), "ssh error"),
]  # fmt: skip


@pytest.mark.unit
@pytest.mark.parametrize(("make", "kind"), [(m, k) for _, m, k in ERROR_CASES], ids=[i for i, _, _ in ERROR_CASES])
def test_classify_error(make: Callable[[], BaseException], kind: str) -> None:
    got_kind, detail = classify_error(make())
    assert got_kind == kind
    assert detail and "\n" not in detail


@pytest.mark.unit
def test_changed_key_detail_shows_fingerprints_not_keys() -> None:
    error = bad_host_key()
    _, detail = classify_error(wrapped(error, "SSH host key error"))
    assert error.key.fingerprint in detail and error.expected_key.fingerprint in detail
    assert error.key.get_base64() not in detail


@pytest.mark.unit
def test_nothing_to_probe() -> None:
    assert probe_hosts([], SshSettings()) == {}


# ----- against the lab --------------------------------------------------------------------------------------------

MakeLab = Callable[..., Lab]


def lab_host(lab: Lab, host: str, **extra: Any) -> Host:
    """An inventory host for lab host ``host`` (``name`` in extra renames it, e.g. to probe one host twice)."""
    fields: dict[str, Any] = {"name": host, "address": lab.ip(host), "port": 22, "user": "root", "role": "server"}
    fields.update(extra)
    return Host(**fields)


def settings(lab: Lab, **extra: Any) -> SshSettings:
    return SshSettings(known_hosts=lab.known_hosts, default_key=lab.key_path, **extra)


def truth(lab: Lab, host: str, command: str) -> str:
    """Ground truth read through docker exec, i.e. not through the code under test."""
    return lab.exec(host, command, check=True).stdout.strip()


@pytest.mark.lab
def test_probe_three_lab_hosts(make_lab: MakeLab, record_property: Callable[[str, object], None]) -> None:
    lab = make_lab([HostSpec("srv1"), HostSpec("pi1", board="rpi4"), HostSpec("agent1")], mirror=False)
    hosts = [
        lab_host(lab, "srv1", hardware=Hardware(arch="amd64")),
        lab_host(lab, "pi1", role="agent", hardware=Hardware(arch="arm64", board="rpi4")),
        lab_host(lab, "agent1", role="agent"),
    ]

    started = time.monotonic()
    facts = probe_hosts(hosts, settings(lab))
    wall = time.monotonic() - started
    record_property("probe_wall_s_3_hosts", round(wall, 3))

    assert list(facts) == ["srv1", "pi1", "agent1"]
    for name, fact in facts.items():
        assert fact.reachable, fact
        assert fact.error is None
        assert fact.hostname == name
        assert fact.arch == "amd64" and fact.arch_raw == truth(lab, name, "uname -m")
        assert fact.kernel == truth(lab, name, "uname -r")
        assert fact.memory_mb is not None
        assert abs(fact.memory_mb - int(truth(lab, name, "awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo"))) <= 1
        assert fact.cpus == int(truth(lab, name, "getconf _NPROCESSORS_ONLN"))
        assert fact.systemd is True
        assert fact.uid == 0 and fact.sudo_ok
        assert fact.os_id == "debian" and fact.os_version == "12"
        assert fact.container == "docker"
        assert fact.cgroup_version in (1, 2) and fact.memory_cgroup_enabled is True
        assert fact.disk_path in ("/var/lib/rancher", "/var", "/") and (fact.disk_free_mb or 0) > 0
        assert fact.clock_skew_s is not None and abs(fact.clock_skew_s) < 0.5  # the same kernel clock
    assert facts["pi1"].board == "rpi4"
    assert facts["pi1"].board_model == "Raspberry Pi 4 Model B Rev 1.4"
    assert facts["srv1"].board in ("generic", "vm") and facts["srv1"].board_model is None
    assert wall < 5, f"3 hosts took {wall:.2f}s"

    # The fake Pi really is x86_64: compare() reports the declared arm64, and nothing else is wrong anywhere.
    findings = compare(hosts, facts)
    assert [(f.host, f.check, f.severity) for f in findings] == [("pi1", "arch", "error")], findings


@pytest.mark.lab
def test_stopped_host_is_unreachable_and_does_not_delay_the_others(make_lab: MakeLab) -> None:
    lab = make_lab(["up1", "down1"], mirror=False)
    lab.stop("down1")

    started = time.monotonic()
    facts = probe_hosts([lab_host(lab, "up1"), lab_host(lab, "down1")], settings(lab, connect_timeout=3))
    wall = time.monotonic() - started

    assert facts["up1"].reachable
    down = facts["down1"]
    assert not down.reachable
    assert down.error in ("timed out", "host unreachable", "connection refused"), down
    assert down.memory_mb is None and down.arch is None
    assert wall < 3 + 2, f"probe took {wall:.2f}s with a 3s connect timeout"
    findings = compare([lab_host(lab, "down1")], facts)
    assert [(f.check, f.severity) for f in findings] == [("reachable", "error")]


@pytest.mark.lab
def test_host_key_checking_is_on(make_lab: MakeLab, tmp_path: Path) -> None:
    lab = make_lab(["k1", "k2", "k3"], mirror=False)
    lines = lab.known_hosts.read_text(encoding="utf-8").splitlines()
    ip1, ip2 = lab.ip("k1"), lab.ip("k2")
    # k1's address carries k2's keys (a "changed" key); k3 has no entry at all; k2 is right.
    wrong = tmp_path / "known_hosts"
    wrong.write_text(
        "\n".join(
            [line.replace(ip2, ip1, 1) for line in lines if line.startswith(f"{ip2} ")]
            + [line for line in lines if line.startswith(f"{ip2} ")]
        )
        + "\n",
        encoding="utf-8",
    )
    before = wrong.read_bytes()
    hosts = [lab_host(lab, name) for name in ("k1", "k2", "k3")]

    facts = probe_hosts(hosts, SshSettings(known_hosts=wrong, default_key=lab.key_path))

    assert facts["k1"].error == "host key verification failed" and "SHA256:" in (facts["k1"].error_detail or "")
    assert facts["k3"].error == "host key verification failed" and "No host key" in (facts["k3"].error_detail or "")
    assert facts["k2"].reachable
    assert not facts["k1"].reachable and not facts["k3"].reachable

    # Turned off visibly: an unknown key is accepted (and not written down); a changed key is still refused.
    relaxed = probe_hosts(
        hosts, SshSettings(known_hosts=wrong, default_key=lab.key_path, strict_host_key_checking=False)
    )
    assert relaxed["k3"].reachable and relaxed["k2"].reachable
    assert relaxed["k1"].error == "host key verification failed"
    assert wrong.read_bytes() == before

    # A host's own inventory setting (UserKnownHostsFile in its SSH args) is used when the command line names no
    # file; --known-hosts (SshSettings.known_hosts) wins over it, as on Ansible's ssh command line (issue 18).
    own_file = lab_host(lab, "k1", ssh_common_args=f"-o UserKnownHostsFile={lab.known_hosts}")
    own = probe_hosts([own_file], SshSettings(default_key=lab.key_path))
    assert own["k1"].reachable
    overridden = probe_hosts([own_file], SshSettings(known_hosts=wrong, default_key=lab.key_path))
    assert overridden["k1"].error == "host key verification failed"


@pytest.mark.lab
def test_wrong_user_and_closed_port_are_told_apart(make_lab: MakeLab) -> None:
    lab = make_lab(["p1"], mirror=False)
    hosts = [lab_host(lab, "p1", name="wronguser", user="nobody"), lab_host(lab, "p1", name="closed", port=2222, port_given=True)]

    facts = probe_hosts(hosts, settings(lab))

    assert facts["wronguser"].error == "authentication failed"
    assert facts["closed"].error == "connection refused"


@pytest.mark.lab
def test_non_root_user_without_sudo(make_lab: MakeLab) -> None:
    lab = make_lab(["u1"], mirror=False)
    pub = lab.key_path.with_suffix(".pub").read_text(encoding="utf-8")
    lab.exec("u1", "useradd -m -s /bin/sh edge && install -d -m 700 -o edge -g edge /home/edge/.ssh", check=True)
    lab.exec("u1", "cat > /home/edge/.ssh/authorized_keys && chown edge: /home/edge/.ssh/authorized_keys", input=pub,
             check=True)  # fmt: skip
    host = lab_host(lab, "u1", user="edge", become=True)

    no_sudo = probe_hosts([host], settings(lab))["u1"]
    lab.exec("u1", "echo 'edge ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/edge && chmod 440 /etc/sudoers.d/edge",
             check=True)  # fmt: skip
    with_sudo = probe_hosts([host], settings(lab))["u1"]

    assert no_sudo.reachable and no_sudo.uid != 0 and not no_sudo.sudo_ok
    assert [(f.check, f.severity) for f in compare([host], {"u1": no_sudo})] == [("sudo", "error")]
    assert with_sudo.sudo_ok
    assert compare([host], {"u1": with_sudo}) == []
