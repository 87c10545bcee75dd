"""A lab of Docker containers that behave like small Debian machines reached over real SSH.

Each host runs systemd as PID 1 and sshd with its own host keys; the lab collects those keys into a
``known_hosts`` file so that tests (and the product under test) connect with host-key checking ON,
exactly as against real machines.  Hosts sit on a dedicated Docker network with fixed addresses, so
a stopped, restarted, disconnected or reconnected host keeps its IP, like a machine with a DHCP
reservation.

Every object carries ``provision.lab=1`` and ``provision.lab.id=<lab id>``; teardown removes by those
labels only.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import functools
import io
import ipaddress
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TypeVar

from tests.lab import LAB_ID_LABEL, LAB_LABEL
from tests.lab.image import ensure_image

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: systemd as PID 1 without --privileged (which fails on these VMs: CAP_SYS_RESOURCE is not in the
#: bounding set).  See shared/reference/lab.md.
SYSTEMD_RUN_ARGS: tuple[str, ...] = (
    "--cap-add",
    "ALL",
    "--cap-drop",
    "SYS_RESOURCE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--cgroupns",
    "host",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
    "--stop-signal",
    "SIGRTMIN+3",  # systemd's "halt": a clean shutdown on docker stop
)

LXCFS_DIR = Path("/var/lib/lxcfs")
LXCFS_PROC_FILES = ("meminfo", "cpuinfo", "stat", "swaps", "uptime", "loadavg", "diskstats")

CONTAINERD_STATE_DIR = "/var/lib/containerd"

MIRROR_PORT = 8080
MIRROR_SERVER = Path(__file__).with_name("mirror_server.py")

SSH_TIMEOUT_S = 90.0
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")


@dataclass(frozen=True)
class Board:
    """What a board looks like from the inside: device-tree identity plus its tell-tale files."""

    model: str
    compatible: tuple[str, ...]
    files: Mapping[str, str] = field(default_factory=dict)


RPI_CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait\n"

BOARDS: dict[str, Board] = {
    "rpi4": Board(
        model="Raspberry Pi 4 Model B Rev 1.4",
        compatible=("raspberrypi,4-model-b", "brcm,bcm2711"),
        files={"boot/firmware/cmdline.txt": RPI_CMDLINE},
    ),
    "rpi5": Board(
        model="Raspberry Pi 5 Model B Rev 1.0",
        compatible=("raspberrypi,5-model-b", "brcm,bcm2712"),
        files={"boot/firmware/cmdline.txt": RPI_CMDLINE},
    ),
    "jetson-orin": Board(
        model="NVIDIA Jetson Orin Nano Developer Kit",
        compatible=("nvidia,p3768-0000+p3767-0005", "nvidia,p3767-0005", "nvidia,tegra234"),
        files={
            "etc/nv_tegra_release": (
                "# R36 (release), REVISION: 3.0, GCID: 36923193, BOARD: generic, EABI: aarch64, "
                "DATE: Fri Jul 19 23:24:25 UTC 2024\n"
                "# KERNEL_VARIANT: oot\n"
            )
        },
    ),
}

#: Where the board identity appears.  runc refuses bind mounts inside /proc (only lxcfs's files
#: are allowed there), so the lab provides the sysfs path that /proc/device-tree links to on a real
#: board; software should read /sys/firmware/devicetree/base/model (or /proc/device-tree/model first).
DEVICE_TREE_DIR = "/sys/firmware/devicetree/base"


@dataclass(frozen=True)
class HostSpec:
    """One host to create: its name (also its hostname), CPU architecture and optional board identity."""

    name: str
    arch: str = "amd64"
    board: str | None = None
    memory_mb: int | None = None
    cpus: int | None = None
    #: Give /var/lib/containerd a filesystem of its own (a labelled anonymous volume, removed with the host), as a
    #: kubeadm node needs: on the container's overlay root, containerd's overlayfs snapshotter loads but every layered
    #: mount fails ("not supported as upperdir").
    containerd_volume: bool = False
    #: SIMULATED swap: /proc/swaps and /proc/meminfo of the host are replaced by read-only files that show a swap
    #: area of this size. The kernel has none (a container cannot have swap of its own, and this machine may have
    #: none); only what reads those files (the probe, the kubelet and kubeadm stand-ins) sees it.
    simulated_swap_mb: int | None = None


class HostInfo(NamedTuple):
    """What tests need to reach a host."""

    ip: str
    arch: str
    board: str | None


class LabError(RuntimeError):
    """The lab could not be created or operated."""


def docker(*args: str, check: bool = True, input_bytes: bytes | None = None) -> str:
    """Run a docker CLI command and return its stdout; failures carry docker's own message."""
    result = subprocess.run(["docker", *args], input=input_bytes, capture_output=True, check=False)
    if check and result.returncode != 0:
        raise LabError(f"docker {' '.join(args[:3])} ... failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode(errors="replace")


def parallel(func: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """Apply ``func`` to all items in threads (docker and ssh calls wait, they do not compute)."""
    if not items:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(items))) as pool:
        return list(pool.map(func, items))


def labels(lab_id: str, **extra: str) -> list[str]:
    """``--label`` arguments that mark an object as belonging to this lab."""
    args = ["--label", f"{LAB_LABEL}=1", "--label", f"{LAB_ID_LABEL}={lab_id}"]
    for key, value in extra.items():
        args += ["--label", f"{LAB_LABEL}.{key}={value}"]
    return args


class Lab:
    """A running lab: hosts, their addresses, the SSH key and known_hosts that reach them."""

    def __init__(self, lab_id: str, workdir: Path, network: str, subnet: str) -> None:
        self.lab_id = lab_id
        self.workdir = workdir
        self.network = network
        self.subnet = subnet
        self.hosts: dict[str, HostInfo] = {}
        self.mirror_url: str | None = None
        self.mirror_ip: str | None = None
        self._scanned: dict[str, list[str]] = {}

    # ----- creation -------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        lab_id: str,
        specs: Iterable[HostSpec],
        workdir: Path,
        mirror_dir: Path | None = None,
    ) -> Lab:
        """Create the network and all hosts in parallel, and (optionally) the release mirror.

        Returns only when every host answers SSH with host-key checking on; on any failure the
        partly created lab is removed again.
        """
        specs = list(specs)
        validate(lab_id, specs)
        images = {arch: ensure_image(arch) for arch in sorted({spec.arch for spec in specs})}
        if mirror_dir is not None and "amd64" not in images:
            images["amd64"] = ensure_image("amd64")
        raise_inotify_limits(len(specs))
        destroy_lab(lab_id)  # leftovers of an earlier run with the same id
        workdir.mkdir(mode=0o700, parents=True, exist_ok=True)  # holds the private key
        network, subnet = create_network(lab_id)
        lab = cls(lab_id, workdir, network, subnet)
        try:
            lab._generate_key()
            addresses = lab._address_plan(specs)
            jobs: list[Callable[[], None]] = [
                functools.partial(lab._start_host, spec, images[spec.arch], addresses[spec.name]) for spec in specs
            ]
            if mirror_dir is not None:
                jobs.append(functools.partial(lab._start_mirror, mirror_dir, images["amd64"], addresses["@mirror"]))
            parallel(lambda job: job(), jobs)
            lab.hosts = {spec.name: lab.hosts[spec.name] for spec in specs}  # spec order, not finish order
            lab._write_known_hosts(lab._scanned[name] for name in lab.hosts)
            parallel(lab._verify_ssh, list(lab.hosts))
            lab.save()
        except BaseException:
            lab.destroy()
            raise
        return lab

    def _address_plan(self, specs: Sequence[HostSpec]) -> dict[str, str]:
        """Fixed addresses: the mirror at .2, hosts from .10 on (the gateway is .1)."""
        addresses = list(ipaddress.ip_network(self.subnet).hosts())
        plan = {spec.name: str(addresses[9 + index]) for index, spec in enumerate(specs)}
        plan["@mirror"] = str(addresses[1])
        return plan

    def _generate_key(self) -> None:
        """A fresh ed25519 key per lab, readable only by its owner."""
        key = self.key_path
        for path in (key, key.with_suffix(".pub")):
            path.unlink(missing_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"provision-lab-{self.lab_id}", "-f", str(key)],
            check=True,
        )
        key.chmod(0o600)

    def _start_host(self, spec: HostSpec, image: str, ip: str) -> None:
        """create → copy the root key and board files in → start (so they exist at first boot)."""
        container = self.container(spec.name)
        args = [
            "create",
            "--name",
            container,
            "--hostname",
            spec.name,
            "--network",
            self.network,
            "--ip",
            ip,
            "--network-alias",
            spec.name,
            *labels(self.lab_id, host=spec.name, arch=spec.arch, board=spec.board or ""),
            *SYSTEMD_RUN_ARGS,
            *self._resource_args(spec),
            *self._board_mounts(spec),
            *self._volume_args(spec),
            image,
        ]
        docker(*args)
        docker("cp", "-", f"{container}:/", input_bytes=self._seed_tar(spec))
        docker("start", container)
        self.hosts[spec.name] = HostInfo(ip=ip, arch=spec.arch, board=spec.board)
        try:
            self._wait_for_port(ip, 22)
        except LabError as error:
            raise LabError(f"{spec.name}: {error}\n{self.diagnose(spec.name)}") from error
        self._scanned[spec.name] = self._scan_host_keys(spec.name)  # while other hosts still boot

    def _resource_args(self, spec: HostSpec) -> list[str]:
        """Memory/CPU limits, made visible inside through lxcfs when it runs (optional)."""
        args: list[str] = []
        if spec.memory_mb is not None:
            args += ["--memory", f"{spec.memory_mb}m", "--memory-swap", f"{spec.memory_mb}m"]
        if spec.cpus is not None:
            available = os.cpu_count() or 1
            args += ["--cpuset-cpus", f"0-{min(spec.cpus, available) - 1}"]
        simulated = self._simulated_swap_files(spec)
        for name, file in simulated.items():
            args += ["-v", f"{file}:/proc/{name}:ro"]
        if (spec.memory_mb is not None or spec.cpus is not None) and lxcfs_running():
            for name in LXCFS_PROC_FILES:
                if (LXCFS_DIR / "proc" / name).exists() and name not in simulated:
                    args += ["-v", f"{LXCFS_DIR}/proc/{name}:/proc/{name}:ro"]
        elif spec.memory_mb is not None or spec.cpus is not None:
            log.warning("lxcfs is not running: %s sees the machine's memory and CPUs despite its limits", spec.name)
        return args

    def _simulated_swap_files(self, spec: HostSpec) -> dict[str, Path]:
        """/proc/swaps and /proc/meminfo showing ``spec.simulated_swap_mb`` of swap (static files; see HostSpec)."""
        if spec.simulated_swap_mb is None:
            return {}
        kb = spec.simulated_swap_mb * 1024
        folder = self.workdir / "simulated" / spec.name
        folder.mkdir(parents=True, exist_ok=True)
        swaps = folder / "swaps"
        swaps.write_text("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
                         f"/swapfile                               file\t\t{kb}\t\t0\t\t-2\n")
        lines = []
        for original in Path("/proc/meminfo").read_text().splitlines():
            key = original.split(":", 1)[0]
            if key == "MemTotal" and spec.memory_mb is not None:
                lines.append(f"MemTotal:       {spec.memory_mb * 1024} kB")
            elif key in ("SwapTotal", "SwapFree"):
                lines.append(f"{key}:      {kb} kB")
            else:
                lines.append(original)
        meminfo = folder / "meminfo"
        meminfo.write_text("\n".join(lines) + "\n")
        return {"swaps": swaps, "meminfo": meminfo}

    def _volume_args(self, spec: HostSpec) -> list[str]:
        """Anonymous volumes (on the machine's own filesystem, not overlay); ``docker rm -v`` removes them."""
        if not spec.containerd_volume:
            return []
        return ["--mount", f"type=volume,dst={CONTAINERD_STATE_DIR},volume-label={LAB_LABEL}=1,"
                f"volume-label={LAB_ID_LABEL}={self.lab_id}"]  # fmt: skip

    def _board_mounts(self, spec: HostSpec) -> list[str]:
        """Read-only device-tree files for a board (model and compatible are NUL-terminated, as on a board)."""
        if spec.board is None:
            return []
        board = BOARDS[spec.board]
        tree = self.workdir / "boards" / spec.name
        tree.mkdir(parents=True, exist_ok=True)
        (tree / "model").write_bytes(board.model.encode() + b"\0")
        (tree / "compatible").write_bytes(b"".join(item.encode() + b"\0" for item in board.compatible))
        args = ["--tmpfs", "/sys/firmware:ro,size=64k", "--security-opt", "systempaths=unconfined"]
        for name in ("model", "compatible"):
            args += ["-v", f"{tree / name}:{DEVICE_TREE_DIR}/{name}:ro"]
        return args

    def _seed_tar(self, spec: HostSpec) -> bytes:
        """Files placed into the container before its first boot: root's authorized_keys, board files."""
        buffer = io.BytesIO()
        public_key = self.key_path.with_suffix(".pub").read_bytes()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            add_dir(tar, "root", 0o700)
            add_dir(tar, "root/.ssh", 0o700)
            add_file(tar, "root/.ssh/authorized_keys", public_key, 0o600)
            if spec.board is not None:
                for path, content in BOARDS[spec.board].files.items():
                    parts = path.split("/")
                    for depth in range(1, len(parts)):
                        add_dir(tar, "/".join(parts[:depth]), 0o755)
                    add_file(tar, path, content.encode(), 0o644)
        return buffer.getvalue()

    def _start_mirror(self, mirror_dir: Path, image: str, ip: str) -> None:
        """A plain Python HTTP server in a container, serving the mirror tree read-only."""
        docker(
            "run", "-d", "--name", self.container("mirror"), "--hostname", "mirror",
            "--network", self.network, "--ip", ip, "--network-alias", "mirror",
            *labels(self.lab_id, role="mirror"),
            "-v", f"{mirror_dir.resolve()}:/srv/mirror:ro",
            "-v", f"{MIRROR_SERVER}:/srv/mirror_server.py:ro",
            image, "python3", "/srv/mirror_server.py", "/srv/mirror", str(MIRROR_PORT),
        )  # fmt: skip
        self._wait_for_port(ip, MIRROR_PORT)
        self.mirror_ip = ip
        self.mirror_url = f"http://{ip}:{MIRROR_PORT}"

    def _wait_for_port(self, ip: str, port: int, timeout: float = SSH_TIMEOUT_S) -> None:
        """Poll until something accepts TCP connections on ip:port."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((ip, port), timeout=1):
                    return
            except OSError as error:
                if time.monotonic() > deadline:
                    raise LabError(f"nothing answers on {ip}:{port} after {timeout:.0f}s: {error}") from error
                time.sleep(0.2)

    def _scan_host_keys(self, name: str) -> list[str]:
        """The host's public keys, as known_hosts lines (scanned until sshd answers with keys)."""
        ip = self.hosts[name].ip
        deadline = time.monotonic() + SSH_TIMEOUT_S
        while True:
            result = subprocess.run(
                ["ssh-keyscan", "-T", "3", "-t", "ed25519,ecdsa,rsa", ip], capture_output=True, text=True, check=False
            )
            lines = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
            if lines:
                return lines
            if time.monotonic() > deadline:
                raise LabError(f"ssh-keyscan got no host key from {name} ({ip}): {result.stderr.strip()}")
            time.sleep(0.3)

    def _write_known_hosts(self, scans: Iterable[list[str]]) -> None:
        lines = sorted(line for scan in scans for line in scan)
        self.known_hosts.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _verify_ssh(self, name: str) -> None:
        result = self.ssh(name, "true", timeout=30)
        if result.returncode != 0:
            raise LabError(f"ssh to {name} with host-key checking failed: {result.stderr.strip()}")

    # ----- paths and data -------------------------------------------------------------------

    @property
    def key_path(self) -> Path:
        """Private key that logs in as root on every host (0600)."""
        return self.workdir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        """known_hosts with every host's scanned keys."""
        return self.workdir / "known_hosts"

    def container(self, name: str) -> str:
        """Docker name of a host's container."""
        return f"plab-{self.lab_id}-{name}"

    def ip(self, name: str) -> str:
        return self.hosts[name].ip

    def save(self) -> Path:
        """hosts.json in the workdir: everything another process needs to use the lab (no secrets)."""
        data = {
            "lab_id": self.lab_id,
            "network": self.network,
            "subnet": self.subnet,
            "mirror_url": self.mirror_url,
            "mirror_ip": self.mirror_ip,
            "ssh_key": str(self.key_path),
            "known_hosts": str(self.known_hosts),
            "hosts": {
                name: {"ip": info.ip, "arch": info.arch, "board": info.board, "container": self.container(name)}
                for name, info in self.hosts.items()
            },
        }
        path = self.workdir / "hosts.json"
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, workdir: Path) -> Lab:
        """Re-open a lab created by another process (e.g. ``python -m tests.lab up``)."""
        data = json.loads((workdir / "hosts.json").read_text(encoding="utf-8"))
        lab = cls(data["lab_id"], workdir, data["network"], data["subnet"])
        lab.mirror_url, lab.mirror_ip = data.get("mirror_url"), data.get("mirror_ip")
        for name, host in data["hosts"].items():
            lab.hosts[name] = HostInfo(ip=host["ip"], arch=host["arch"], board=host["board"])
        return lab

    # ----- operations -----------------------------------------------------------------------

    def exec(
        self,
        host: str,
        cmd: str | Sequence[str],
        *,
        check: bool = False,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the host via ``docker exec`` (a back door for test assertions, not SSH)."""
        argv = ["bash", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        return subprocess.run(
            ["docker", "exec", *(["-i"] if input is not None else []), self.container(host), *argv],
            input=input or "", capture_output=True, text=True, check=check, timeout=timeout,
        )  # fmt: skip

    def ssh_args(self, host: str, known_hosts: Path | None = None) -> list[str]:
        """ssh command line for root@host with strict host-key checking and only the lab key."""
        return [
            "ssh",
            "-i", str(self.key_path),
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts or self.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=5",
            "-o", "LogLevel=ERROR",
            f"root@{self.hosts[host].ip}",
        ]  # fmt: skip

    def ssh(
        self,
        host: str,
        cmd: str,
        *,
        check: bool = False,
        input: str | None = None,
        known_hosts: Path | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` on the host over real SSH, refusing unknown or changed host keys.

        Secrets belong in ``input`` (stdin), never in ``cmd``: command lines show up in ``ps``.
        """
        return subprocess.run(
            [*self.ssh_args(host, known_hosts), cmd],
            input=input or "", capture_output=True, text=True, check=check, timeout=timeout,
        )  # fmt: skip

    def stop(self, host: str) -> None:
        """Clean shutdown (systemd gets SIGRTMIN+3), like `poweroff`."""
        docker("stop", "-t", "20", self.container(host))

    def kill(self, host: str) -> None:
        """Power cut: no shutdown at all."""
        docker("kill", "-s", "KILL", self.container(host))

    def start(self, host: str) -> None:
        """Boot a stopped host again; same IP, same host keys (they live in the container)."""
        docker("start", self.container(host))
        self._wait_for_port(self.hosts[host].ip, 22)
        self._verify_ssh_retrying(host)

    def _verify_ssh_retrying(self, host: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.ssh(host, "true", timeout=30).returncode != 0:
            if time.monotonic() > deadline:
                self._verify_ssh(host)
            time.sleep(0.3)

    def disconnect(self, host: str) -> None:
        """Unplug the network cable: the host keeps running but is unreachable (and cannot reach others)."""
        docker("network", "disconnect", self.network, self.container(host))

    def reconnect(self, host: str) -> None:
        """Plug it back in with the same address, on eth0 again.

        Docker names a re-attached interface eth1; software under test (flannel-iface, keepalived)
        may be configured for eth0, so the interface is renamed and the default route restored.
        """
        ip = self.hosts[host].ip
        docker("network", "connect", "--ip", ip, "--alias", host, self.network, self.container(host))
        gateway = next(ipaddress.ip_network(self.subnet).hosts())
        rename = (
            f"set -e; dev=$(ip -o -4 addr show | awk '$4 ~ /^{re.escape(ip)}\\//' | awk '{{print $2}}'); "
            f'if [ "$dev" != eth0 ]; then ip link set "$dev" down; ip link set "$dev" name eth0; '
            f"ip link set eth0 up; ip route replace default via {gateway} dev eth0; fi"
        )
        result = self.exec(host, rename)
        if result.returncode != 0:
            raise LabError(f"could not rename {host}'s re-attached interface to eth0: {result.stderr.strip()}")

    def move_behind(self, jump: str, hosts: Sequence[str]) -> str:
        """A site network only ``jump`` reaches: ``hosts`` leave the lab network for it, the jump host (and the mirror,
        as a site's local cache) join it. The network is internal and its bridge has no address on this machine, so
        nothing here reaches the hosts but through the jump host, by the names only the site resolves (Docker's DNS
        on the site network: the host names). Returns the site network's name."""
        site = f"{self.network}-site"
        docker("network", "create", "--driver", "bridge", "--internal",
               "-o", "com.docker.network.bridge.inhibit_ipv4=true", *labels(self.lab_id, role="site"), site)
        docker("network", "connect", "--alias", jump, site, self.container(jump))
        if self.mirror_url is not None:
            docker("network", "connect", "--alias", "mirror", site, self.container("mirror"))
        for host in hosts:
            docker("network", "connect", "--alias", host, site, self.container(host))
            docker("network", "disconnect", self.network, self.container(host))
            # The site's interface is the host's only one: call it eth0 again, with a default route as boards have.
            moved = self.exec(host, "set -e; dev=$(ip -o link show | awk -F': ' '$2 !~ /^lo/ {print $2}' | cut -d@ -f1"
                              " | head -1); if [ \"$dev\" != eth0 ]; then ip link set \"$dev\" down; "
                              "ip link set \"$dev\" name eth0; ip link set eth0 up; fi; ip route replace default dev eth0")
            if moved.returncode != 0:
                raise LabError(f"could not move {host} behind {jump}: {moved.stderr.strip()}")
        return site

    def diagnose(self, host: str) -> str:
        """systemd's view of a host that does not come up (for error messages)."""
        report = self.exec(
            host,
            "systemctl is-system-running; systemctl --failed --no-legend; "
            "systemctl status --no-pager -l ssh.service ssh-hostkeys.service 2>&1 | tail -30",
            timeout=30,
        )
        return (report.stdout + report.stderr).strip()

    def is_running(self, host: str) -> bool:
        state = docker("inspect", "-f", "{{.State.Running}}", self.container(host))
        return state.strip() == "true"

    def destroy(self) -> None:
        """Remove this lab's containers and network (by label); the workdir stays for post-mortems."""
        destroy_lab(self.lab_id)


# ----- module helpers ---------------------------------------------------------------------------


def validate(lab_id: str, specs: Sequence[HostSpec]) -> None:
    """Reject names docker or hostnames cannot carry, duplicates and unknown boards, before creating anything."""
    if not NAME_RE.match(lab_id):
        raise ValueError(f"lab id {lab_id!r} must match {NAME_RE.pattern}")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"host names must be unique: {names}")
    if len(specs) > 200:
        raise ValueError("at most 200 hosts per lab")
    for spec in specs:
        if not NAME_RE.match(spec.name) or spec.name == "mirror":
            raise ValueError(f"host name {spec.name!r} must match {NAME_RE.pattern} and not be 'mirror'")
        if spec.board is not None and spec.board not in BOARDS:
            raise ValueError(f"unknown board {spec.board!r} for {spec.name} (known: {sorted(BOARDS)})")


def add_dir(tar: tarfile.TarFile, path: str, mode: int) -> None:
    info = tarfile.TarInfo(path)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, int(time.time())
    tar.addfile(info)


def add_file(tar: tarfile.TarFile, path: str, content: bytes, mode: int) -> None:
    info = tarfile.TarInfo(path)
    info.size, info.mode, info.mtime = len(content), mode, int(time.time())
    tar.addfile(info, io.BytesIO(content))


def raise_inotify_limits(hosts: int) -> None:
    """Every systemd in a lab host holds inotify instances of the machine's root user; Debian's default of 128 runs
    out at about 20 hosts (units then fail at boot and sshd never starts). Raise it, never lower it."""
    wanted = max(1024, 64 * hosts)
    path = Path("/proc/sys/fs/inotify/max_user_instances")
    try:
        if int(path.read_text()) < wanted:
            path.write_text(f"{wanted}\n")
    except OSError as error:
        raise LabError(f"cannot raise {path} to {wanted} for {hosts} lab hosts (run as root): {error}") from error


def lxcfs_running() -> bool:
    """lxcfs mounted at /var/lib/lxcfs (it makes /proc/meminfo honour --memory)."""
    try:
        return (LXCFS_DIR / "proc" / "meminfo").is_file()
    except OSError:  # a dead lxcfs leaves its FUSE mount behind: "Transport endpoint is not connected"
        return False


NETWORK_ATTEMPTS = 5


def create_network(lab_id: str) -> tuple[str, str]:
    """A labelled bridge network whose subnet docker picked, re-created as a *user-configured* subnet.

    Docker only lets a container keep a fixed ``--ip`` (across stop/start and disconnect/connect) on a
    network with a configured subnet.  To still let docker choose a free range from its address pools,
    a probe network learns the range docker would pick; the real network is then created with it.
    A lock serialises this among parallel test sessions; a network made meanwhile by something that does not take
    the lock (a Molecule scenario's) can still take the range, and then the next free range is tried.
    """
    name = f"plab-{lab_id}"
    lock_path = Path(tempfile.gettempdir()) / "provision-lab-network.lock"
    with lock_path.open("w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for attempt in range(NETWORK_ATTEMPTS):
            probe = f"{name}-probe"
            docker("network", "rm", probe, check=False)
            docker("network", "create", *labels(lab_id), probe)
            try:
                subnet = docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", probe).strip()
            finally:
                docker("network", "rm", probe)
            try:
                docker("network", "create", "--driver", "bridge", "--subnet", subnet, *labels(lab_id), name)
            except LabError as error:
                if "overlaps" not in str(error) or attempt == NETWORK_ATTEMPTS - 1:
                    raise
                continue
            return name, subnet
    raise AssertionError("unreachable: the last attempt returns or raises")


def _ids(kind: str, label: str) -> list[str]:
    listing = "ps" if kind == "container" else "network"
    args = [listing, "-aq"] if kind == "container" else [listing, "ls", "-q"]
    return docker(*args, "--filter", f"label={label}").split()


def destroy_lab(lab_id: str) -> None:
    """Remove every container and network labelled with this lab id (and nothing else)."""
    _destroy_by_label(f"{LAB_ID_LABEL}={lab_id}")


def destroy_all_labs() -> None:
    """Remove all lab containers and networks on this machine (leftovers); the base image stays."""
    _destroy_by_label(f"{LAB_LABEL}=1")


def _destroy_by_label(label: str) -> None:
    containers = _ids("container", label)
    if containers:
        docker("rm", "-f", "-v", *containers)
    networks = _ids("network", label)
    if networks:
        docker("network", "rm", *networks)


def remove_workdir(workdir: Path) -> None:
    """Delete a lab's workdir (holds the private key)."""
    shutil.rmtree(workdir, ignore_errors=True)
