"""Build the lab's base image: Debian bookworm with systemd and sshd, without any registry.

The lab hosts must behave like small Debian machines reached over real SSH, yet the build machine
has no container registry.  So the root filesystem is made with ``debootstrap`` from the Debian
mirror the machine already uses, tuned for running systemd as PID 1 in a container, and turned into
an image with ``docker import``.

The image is built once per machine and reused.  Its tag carries a hash of the recipe (package list,
tuning script, suite, architecture), so changing the recipe yields a new tag and a rebuild instead of
silently reusing a stale image.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.lab import LAB_ID_LABEL, LAB_LABEL

log = logging.getLogger(__name__)

SUITE = "bookworm"
IMAGE_REPO = "provision-lab/debian"

#: What every lab host needs pre-installed, so that tests never apt-get per host.
PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-yaml",
    "python3-cryptography",
    "python3-cffi-backend",  # debootstrap does not resolve the virtual python3-cffi-backend-api-*
    "python3-psycopg2",
    "python3-pymysql",
    "iproute2",
    "iptables",
    "kmod",
    "procps",
    "sudo",
    "curl",
    "ca-certificates",
    "less",
    "netbase",
    "zstd",  # the k3s stand-in unpacks .tar.zst air-gap image archives with it (real k3s does so in-process)
    "keepalived",  # installed but not enabled: the keepalived_vip role configures and starts it
    # The kubeadm flavor's node prerequisites, from Debian (the product installs these with apt on real hosts; baked in
    # here so lab tests never apt-get per host). Installed, never running: see DISABLED_UNITS.
    "containerd",
    "runc",
    "containernetworking-plugins",  # CNI plugins in /usr/lib/cni (containerd's bin_dir is pointed there)
    "etcd-server",  # Debian's real etcd binary, which the kubelet stand-in runs as the etcd static pod
    "etcd-client",
    "conntrack",
    "socat",
    "ethtool",
    "ebtables",
)

#: Units that installed packages enable (Debian starts services on install) but that must not run until a role under
#: test configures them: the K3s flavor never uses containerd or etcd from the distribution, and the kubeadm flavor
#: enables containerd itself. Disabled, not masked, so the product can still enable and start them.
DISABLED_UNITS: tuple[str, ...] = ("keepalived.service", "containerd.service", "etcd.service")

#: Units that make no sense in a container (no consoles, no periodic maintenance that would
#: change a host behind a test's back).  Masked by linking them to /dev/null.
MASKED_UNITS: tuple[str, ...] = (
    "getty.target",
    "getty@.service",
    "serial-getty@.service",
    "console-getty.service",
    "systemd-firstboot.service",
    "systemd-remount-fs.service",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "fstrim.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    # No kernel modules can be loaded from a container (no /lib/modules); these only slow the boot.
    "modprobe@.service",
    "systemd-modules-load.service",
    "dev-hugepages.mount",
    "systemd-sysusers.service",
)

SSHD_CONFIG = """\
# provision lab: root logs in with keys only.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
# Only the fast key types: RSA key generation at first boot cost ~1 s per host (10 s with 10 hosts on 2 cores).
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
"""

JOURNALD_CONFIG = """\
[Journal]
Storage=volatile
RuntimeMaxUse=16M
"""

# Debian's ssh.service runs `sshd -t` first, which fails without host keys, and has no key
# generator of its own: each container makes its keys on first boot with this unit (so no two
# containers share keys, and a restarted container keeps its own).
HOSTKEYS_UNIT = """\
[Unit]
Description=Generate SSH host keys on first boot (provision lab)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
ExecStart=/usr/bin/ssh-keygen -q -t ecdsa -N "" -f /etc/ssh/ssh_host_ecdsa_key
RemainAfterExit=yes

[Install]
RequiredBy=ssh.service
WantedBy=multi-user.target
"""

DEBIAN_ARCH = {"amd64": "amd64", "arm64": "arm64"}


#: Bump when tune_rootfs/import_rootfs change what ends up in the image (the data below is hashed itself).
RECIPE_VERSION = 2

#: Trimmed from the tree after debootstrap: not needed on test hosts.
TRIMMED_DIRS: tuple[str, ...] = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/cache/apt",
)

#: ``docker import --change`` instructions (LABELs with the recipe hash are added on import).
IMPORT_CHANGES: tuple[str, ...] = ("ENV container=docker", 'CMD ["/lib/systemd/systemd"]')


def recipe_hash(arch: str) -> str:
    """Hash everything that shapes the image, so a changed recipe gets a new tag (and a rebuild).

    Only data is hashed, not source text, so reformatting the code does not force a rebuild.
    """
    recipe = {
        "suite": SUITE,
        "arch": arch,
        "packages": PACKAGES,
        "masked": MASKED_UNITS,
        "disabled": DISABLED_UNITS,
        "sshd": SSHD_CONFIG,
        "journald": JOURNALD_CONFIG,
        "hostkeys": HOSTKEYS_UNIT,
        "trimmed": TRIMMED_DIRS,
        "changes": IMPORT_CHANGES,
        "version": RECIPE_VERSION,
    }
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    return digest[:12]


def image_tags(arch: str) -> tuple[str, str]:
    """(stable tag, content tag) of the image for ``arch``."""
    return f"{IMAGE_REPO}:{SUITE}-{arch}", f"{IMAGE_REPO}:{SUITE}-{arch}-{recipe_hash(arch)}"


def debian_mirror() -> str:
    """The Debian mirror the machine's apt uses (deb822 or one-line format), else deb.debian.org."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in sources:
        for stanza in path.read_text(encoding="utf-8").split("\n\n"):
            fields = {
                key.strip().lower(): value.strip()
                for key, _, value in (line.partition(":") for line in stanza.splitlines())
                if value and not key.startswith("#")
            }
            suites = fields.get("suites", "").split()
            if SUITE in suites and "debian" in fields.get("uris", ""):
                return fields["uris"].split()[0]
    lists = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for path in lists:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+" + SUITE + r"\s", line)
            if match and "security" not in match.group(1):
                return match.group(1)
    return "http://deb.debian.org/debian"


def image_exists(ref: str) -> bool:
    """True when the docker engine has an image called ``ref``."""
    result = subprocess.run(["docker", "image", "inspect", ref], capture_output=True, check=False)
    return result.returncode == 0


def ensure_image(arch: str = "amd64", rebuild: bool = False) -> str:
    """Return the content tag of the lab image for ``arch``, building it only when missing.

    A file lock serialises builds, so parallel test sessions on one machine build once.
    """
    if arch not in DEBIAN_ARCH:
        raise ValueError(f"unsupported lab architecture {arch!r} (use one of {sorted(DEBIAN_ARCH)})")
    stable_tag, content_tag = image_tags(arch)
    lock_path = Path(tempfile.gettempdir()) / f"provision-lab-image-{arch}.lock"
    with lock_path.open("w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if rebuild or not image_exists(content_tag):
            build_image(arch, content_tag)
        subprocess.run(["docker", "tag", content_tag, stable_tag], check=True, capture_output=True)
    return content_tag


#: arch -> seconds the image build took in this process (for the bench); absent when reused.
build_seconds: dict[str, float] = {}


def build_image(arch: str, tag: str) -> None:
    """debootstrap a root filesystem, tune it for systemd-in-docker and import it as ``tag``."""
    started = time.monotonic()
    if arch != "amd64":
        enable_emulation(arch)
    workdir = Path(tempfile.mkdtemp(prefix=f"provision-lab-rootfs-{arch}-", dir="/var/tmp"))
    rootfs = workdir / "rootfs"
    try:
        log.info("debootstrap %s/%s into %s", SUITE, arch, rootfs)
        bootstrap = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--arch={DEBIAN_ARCH[arch]}",
                "--include=" + ",".join(PACKAGES),
                SUITE,
                str(rootfs),
                debian_mirror(),
            ],
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if bootstrap.returncode != 0:
            detail = rootfs / "debootstrap/debootstrap.log"
            tail = detail.read_text(errors="replace")[-3000:] if detail.exists() else ""
            raise RuntimeError(f"debootstrap failed (rc {bootstrap.returncode}): {bootstrap.stdout[-2000:]}\n{tail}")
        tune_rootfs(rootfs)
        import_rootfs(rootfs, tag, arch)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    build_seconds[arch] = time.monotonic() - started


def enable_emulation(arch: str) -> None:
    """Make the kernel run foreign binaries through qemu-user-static (needed to build and run arm64)."""
    qemu = {"arm64": "qemu-aarch64"}[arch]
    if not Path(f"/usr/bin/{qemu}-static").exists():
        raise RuntimeError(f"{qemu}-static is missing: apt-get install -y qemu-user-static binfmt-support")
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "status").exists():
        subprocess.run(["mount", "binfmt_misc", "-t", "binfmt_misc", str(binfmt)], check=True)
    if not (binfmt / qemu).exists():
        subprocess.run(["update-binfmts", "--enable", qemu], check=True)


def tune_rootfs(rootfs: Path) -> None:
    """Turn a plain debootstrap tree into a container host: keys-only sshd, no consoles, volatile journal."""
    etc = rootfs / "etc"
    (etc / "ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    (etc / "ssh/sshd_config.d/provision-lab.conf").write_text(SSHD_CONFIG, encoding="utf-8")
    for key in (etc / "ssh").glob("ssh_host_*"):
        key.unlink()
    units = etc / "systemd/system"
    (units / "ssh-hostkeys.service").write_text(HOSTKEYS_UNIT, encoding="utf-8")
    for wants in ("ssh.service.requires", "multi-user.target.wants"):
        (units / wants).mkdir(parents=True, exist_ok=True)
        link = units / wants / "ssh-hostkeys.service"
        if not link.is_symlink():
            link.symlink_to("/etc/systemd/system/ssh-hostkeys.service")
    # Installed packages must not start services on their own; roles under test enable what they configure.
    disable_units(units, DISABLED_UNITS)
    for unit in MASKED_UNITS:
        target = units / unit
        if target.exists() or target.is_symlink():
            target.unlink()
        target.symlink_to("/dev/null")
    (etc / "systemd/journald.conf.d").mkdir(parents=True, exist_ok=True)
    (etc / "systemd/journald.conf.d/provision-lab.conf").write_text(JOURNALD_CONFIG, encoding="utf-8")
    # An empty machine-id makes systemd generate a fresh one per container at boot.
    (etc / "machine-id").write_text("", encoding="utf-8")
    dbus_id = rootfs / "var/lib/dbus/machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
    root_ssh = rootfs / "root/.ssh"
    root_ssh.mkdir(mode=0o700, exist_ok=True)
    # Keep it lean: documentation, manuals, translations and apt caches are not needed on test hosts.
    for sub in TRIMMED_DIRS:
        path = rootfs / sub
        if path.is_dir():
            shutil.rmtree(path)
            path.mkdir()
    for lists in (rootfs / "var/lib/apt/lists").glob("*_Packages"):
        lists.unlink()


def disable_units(units: Path, names: tuple[str, ...]) -> list[str]:
    """What ``systemctl disable`` does offline: remove the ``*.wants``/``*.requires`` links and aliases of ``names``.

    Returns the removed links (relative to ``units``), for the build log.
    """
    removed = []
    for link in sorted(units.rglob("*")):
        if not link.is_symlink():
            continue
        target = Path(str(link.readlink())).name
        in_wants = link.parent.name.endswith((".wants", ".requires"))
        if (in_wants and link.name in names) or (target in names and link.name not in names):  # enablement or alias
            link.unlink()
            removed.append(str(link.relative_to(units)))
    log.info("disabled units: %s", ", ".join(removed) or "none enabled")
    return removed


def import_rootfs(rootfs: Path, tag: str, arch: str) -> None:
    """``tar | docker import`` with labels and systemd as the command.

    ``docker import`` cannot set STOPSIGNAL; containers get ``--stop-signal SIGRTMIN+3`` instead.
    """
    changes = [
        f"LABEL {LAB_LABEL}=1",
        f"LABEL {LAB_ID_LABEL}=image",
        f"LABEL provision.lab.arch={arch}",
        f"LABEL provision.lab.recipe={recipe_hash(arch)}",
        *IMPORT_CHANGES,
    ]
    command = ["docker", "import"]
    for change in changes:
        command += ["--change", change]
    command += ["-", tag]
    tar = subprocess.Popen(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    assert tar.stdout is not None
    try:
        result = subprocess.run(command, stdin=tar.stdout, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"docker import failed: {result.stderr.strip()}")
    finally:
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError(f"tar of {rootfs} failed with rc {tar.returncode}")


def main() -> None:
    """``python -m tests.lab.image [arch]``: build (or reuse) and print the tag and build time."""
    arch = sys.argv[1] if len(sys.argv) > 1 else "amd64"
    tag = ensure_image(arch, rebuild="--rebuild" in sys.argv)
    built = f"built in {build_seconds[arch]:.1f}s" if arch in build_seconds else "reused"
    print(f"{tag} ({built})")


if __name__ == "__main__":
    main()
