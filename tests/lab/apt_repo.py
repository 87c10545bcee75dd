"""pkgs.k8s.io-style apt repositories for the lab mirror: one signed flat repository per Kubernetes minor.

Under ``<mirror>/pkgs.k8s.io/core:/stable:/v1.<minor>/deb/``::

    Release, InRelease, Release.gpg    signed with the lab's apt key (below)
    Release.key                        that key, ASCII-armoured (what the install docs fetch and dearmor)
    Packages, Packages.gz              every architecture in one index, as a flat repository has it
    <debarch>/<package>_<version>_<debarch>.deb

Packages (versions ``<k8s version>-1.1``, dependencies as tests/standin/kubeadm_facts.md §9 states them):

* ``kubeadm``: /usr/bin/kubeadm and the kubelet drop-in /usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf;
  from 1.30 it depends on ``cri-tools (>= 1.30.0)`` only (before: kubelet, kubectl, kubernetes-cni, cri-tools).
* ``kubelet``: /usr/bin/kubelet, /usr/lib/systemd/system/kubelet.service, /etc/default/kubelet, the empty
  /etc/kubernetes/manifests and /var/lib/kubelet; depends on ``kubernetes-cni (>= 1.2.0)``. Its postinst enables and
  starts the unit, which then crash-loops until kubeadm writes the kubelet's config (as the install docs describe).
* ``kubectl``: /usr/bin/kubectl.
* ``cri-tools``: /usr/bin/crictl, a lab placeholder that only answers ``--version`` (no stand-in models crictl).
* ``kubernetes-cni``: /opt/cni/bin/<plugin> as links to Debian's plugins in /usr/lib/cni (containernetworking-plugins
  is in the lab image); upstream ships its own plugin binaries there.

The binaries are the stand-ins already published in the dl.k8s.io tree. The signing key is made once per machine with
``gpg --batch`` in the lab's state directory (``.lab/apt-signing`` in the repository root, ignored by git; override with
``PROVISION_LAB_GPG_HOME``), never in the repository. A host uses a repository like this (apt reads an armoured key
directly when the file ends in ``.asc``, so no ``gpg --dearmor`` is needed on the host)::

    repo=<mirror>/pkgs.k8s.io/core:/stable:/v1.30/deb
    key=/etc/apt/keyrings/kubernetes-apt-keyring.asc
    curl -fsSL $repo/Release.key -o $key
    echo "deb [signed-by=$key] $repo/ /" > /etc/apt/sources.list.d/kubernetes.list
    apt-get update && apt-get install -y kubeadm=1.30.2-1.1 kubelet=1.30.2-1.1 kubectl=1.30.2-1.1
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.lab.kube_mirror import KUBE_ARCHES, minor_of, release_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_GPG_HOME = REPO_ROOT / ".lab" / "apt-signing"
KEY_UID = "provision lab apt signing key (test only) <lab-apt@provision.invalid>"

#: Lab arch -> Debian architecture.
DEB_ARCH = {"amd64": "amd64", "arm64": "arm64", "arm": "armhf"}
#: A fixed date keeps Release (and so its checksums) the same for the same packages; apt accepts a past date.
RELEASE_DATE = "Mon, 01 Jul 2024 00:00:00 UTC"
SOURCE_DATE_EPOCH = 1719792000  # the same instant: file times in the .debs
MAINTAINER = "provision lab <lab-apt@provision.invalid>"

#: Versions of the two helper packages in each minor's repository (lab choices, close to what upstream carries).
CRI_TOOLS_VERSION = {30: "1.30.1", 31: "1.31.1"}
KUBERNETES_CNI_VERSION = {30: "1.4.0", 31: "1.5.1"}
#: What Debian's containernetworking-plugins puts in /usr/lib/cni (kubernetes-cni links to these).
CNI_PLUGINS = (
    "bandwidth", "bridge", "dhcp", "firewall", "host-device", "host-local", "ipvlan", "loopback", "macvlan",
    "portmap", "ptp", "sbr", "static", "tuning", "vlan", "vrf",
)  # fmt: skip

KUBELET_UNIT = """\
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""

# The drop-in kubeadm's package installs: the kubelet reads its kubeconfigs, its config file and the flags kubeadm
# writes at init/join (kubeadm-flags.env), plus the administrator's KUBELET_EXTRA_ARGS (kubeadm_facts.md §8).
KUBEADM_DROPIN = """\
# provision lab kubeadm package: the kubelet as kubeadm (v1.11+) runs it.
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# Written by "kubeadm init" and "kubeadm join": sets KUBELET_KUBEADM_ARGS.
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# The administrator's last-resort overrides: KUBELET_EXTRA_ARGS.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""  # noqa: E501

KUBELET_POSTINST = """\
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    systemctl enable kubelet.service >/dev/null 2>&1 || true
    systemctl restart kubelet.service || true
fi
"""

RELOAD_SCRIPT = """\
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
"""

KUBELET_PRERM = """\
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl disable --now kubelet.service >/dev/null 2>&1 || true
fi
"""


def crictl_script(version: str) -> str:
    return f"""\
#!/bin/sh
# provision lab: placeholder crictl from the lab's cri-tools package; only the version is modelled.
case "$1" in
  --version|-v) echo "crictl version v{version}"; exit 0 ;;
esac
echo "crictl (provision lab placeholder): '$*' is not modelled" >&2
exit 1
"""


@dataclass
class DebPackage:
    """One binary package to build: control fields and its files (path in the package -> content/link/mode)."""

    name: str
    version: str
    arch: str
    description: str
    depends: str = ""
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()
    conffiles: tuple[str, ...] = ()
    scripts: dict[str, str] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return f"{self.arch}/{self.name}_{self.version}_{self.arch}.deb"

    def control(self, installed_kib: int) -> str:
        lines = [
            f"Package: {self.name}",
            f"Version: {self.version}",
            f"Architecture: {self.arch}",
            f"Maintainer: {MAINTAINER}",
            f"Installed-Size: {installed_kib}",
        ]
        if self.depends:
            lines.append(f"Depends: {self.depends}")
        lines += ["Section: admin", "Priority: optional", "Homepage: https://kubernetes.io"]
        summary, _, body = self.description.partition("\n")
        lines.append(f"Description: {summary}")
        lines += [f" {line}" if line else " ." for line in body.splitlines()]
        return "\n".join(lines) + "\n"


def packages_for(version: str, arch: str, binaries: Path) -> list[DebPackage]:
    """The five packages of one Kubernetes version for one lab arch; ``binaries`` holds kubeadm/kubelet/kubectl."""
    minor = minor_of(version)
    deb_arch = DEB_ARCH[arch]
    revision = "-1.1"
    plain = version.removeprefix("v")
    cri = CRI_TOOLS_VERSION.get(minor, f"1.{minor}.0")
    cni = KUBERNETES_CNI_VERSION.get(minor, "1.4.0")

    def binary(tool: str) -> tuple[bytes, int]:
        return (binaries / tool).read_bytes(), 0o755

    if minor >= 30:
        kubeadm_depends = f"cri-tools (>= 1.{minor}.0)"
    else:
        kubeadm_depends = "kubelet, kubectl (>= 1.19.0), kubernetes-cni (>= 1.2.0), cri-tools (>= 1.28.0)"
    stand_in = "\nA provision lab stand-in (tests/standin), not a Kubernetes build."
    return [
        DebPackage(
            "kubeadm", plain + revision, deb_arch,
            "Command-line utility for administering a Kubernetes cluster" + stand_in,
            depends=kubeadm_depends,
            files={"usr/bin/kubeadm": binary("kubeadm"),
                   "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": (KUBEADM_DROPIN.encode(), 0o644)},
            scripts={"postinst": RELOAD_SCRIPT, "postrm": RELOAD_SCRIPT},
        ),
        DebPackage(
            "kubelet", plain + revision, deb_arch, "Node agent for Kubernetes clusters" + stand_in,
            depends="kubernetes-cni (>= 1.2.0)",
            files={"usr/bin/kubelet": binary("kubelet"),
                   "usr/lib/systemd/system/kubelet.service": (KUBELET_UNIT.encode(), 0o644),
                   "etc/default/kubelet": (b"KUBELET_EXTRA_ARGS=\n", 0o644),
                   "etc/kubernetes/manifests/.kubelet-keep": (b"", 0o644),
                   "var/lib/kubelet/.kubelet-keep": (b"", 0o644)},
            conffiles=("/etc/default/kubelet",),
            scripts={"postinst": KUBELET_POSTINST, "prerm": KUBELET_PRERM, "postrm": RELOAD_SCRIPT},
        ),
        DebPackage(
            "kubectl", plain + revision, deb_arch, "Command-line utility for interacting with a Kubernetes cluster"
            + stand_in,
            files={"usr/bin/kubectl": binary("kubectl")},
        ),
        DebPackage(
            "cri-tools", cri + revision, deb_arch, "Command-line utility for interacting with a container runtime"
            + "\nA provision lab placeholder: crictl answers --version only.",
            files={"usr/bin/crictl": (crictl_script(cri).encode(), 0o755)},
        ),
        DebPackage(
            "kubernetes-cni", cni + revision, deb_arch, "Binaries required to provision kubernetes container networking"
            + "\nIn the provision lab: links to Debian's containernetworking-plugins in /usr/lib/cni.",
            links={f"opt/cni/bin/{plugin}": f"/usr/lib/cni/{plugin}" for plugin in CNI_PLUGINS},
            dirs=("opt/cni/bin",),
        ),
    ]  # fmt: skip


def build_deb(package: DebPackage, out: Path) -> Path:
    """Stage the package tree with fixed times and build it with ``dpkg-deb`` (owner root)."""
    target = out / package.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="provision-lab-deb-") as scratch:
        stage = Path(scratch) / "pkg"
        control = stage / "DEBIAN"
        control.mkdir(parents=True)
        size = 0
        for directory in package.dirs:
            (stage / directory).mkdir(parents=True, exist_ok=True)
        for path, (content, mode) in package.files.items():
            file = stage / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(content)
            file.chmod(mode)
            size += len(content)
        for path, link_target in package.links.items():
            link = stage / path
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(link_target)
        for name, script in package.scripts.items():
            (control / name).write_text(script, encoding="utf-8")
            (control / name).chmod(0o755)
        if package.conffiles:
            (control / "conffiles").write_text("".join(f"{path}\n" for path in package.conffiles), encoding="utf-8")
        (control / "control").write_text(package.control(max(1, (size + 1023) // 1024)), encoding="utf-8")
        for item in sorted(stage.rglob("*"), reverse=True):
            os.utime(item, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH), follow_symlinks=False)
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH)}
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(stage), str(target)],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
    return target


def packages_stanza(package: DebPackage, deb: Path, repo: Path) -> str:
    """The package's entry in ``Packages``: its control fields plus where the .deb is and its checksums."""
    data = deb.read_bytes()
    control = subprocess.run(["dpkg-deb", "--field", str(deb)], check=True, capture_output=True, text=True).stdout
    return (
        control.rstrip("\n")
        + f"\nFilename: {deb.relative_to(repo).as_posix()}\nSize: {len(data)}\n"
        + f"MD5sum: {hashlib.md5(data).hexdigest()}\n"  # noqa: S324 - apt's index format, not security
        + f"SHA1: {hashlib.sha1(data).hexdigest()}\n"  # noqa: S324
        + f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
    )


def release_text(repo: Path, minor: int, index_names: Sequence[str]) -> str:
    """``Release`` of a flat repository: its architectures and the checksums of its index files."""
    lines = [
        "Origin: provision lab",
        f"Label: provision lab pkgs.k8s.io core:stable:v1.{minor}",
        f"Architectures: {' '.join(DEB_ARCH[arch] for arch in KUBE_ARCHES)}",
        f"Date: {RELEASE_DATE}",
        f"Description: Kubernetes v1.{minor} stand-in packages for the provision test lab (not for production)",
    ]
    for field_name, algorithm in (("MD5Sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256")):
        lines.append(f"{field_name}:")
        for name in index_names:
            data = (repo / name).read_bytes()
            lines.append(f" {hashlib.new(algorithm, data).hexdigest()} {len(data):>8} {name}")
    return "\n".join(lines) + "\n"


def publish_apt_repos(apt_root: Path, release: Path, versions: Sequence[str], *, gpg_home: Path | None = None) -> None:
    """One repository per minor under ``apt_root`` (``.../core:/stable:``), holding that minor's versions."""
    by_minor: dict[int, list[str]] = {}
    for version in versions:
        by_minor.setdefault(minor_of(version), []).append(version)
    key = SigningKey(gpg_home or Path(os.environ.get("PROVISION_LAB_GPG_HOME") or DEFAULT_GPG_HOME))
    with key.session():
        for minor, minor_versions in sorted(by_minor.items()):
            repo = apt_root / f"v1.{minor}" / "deb"
            repo.mkdir(parents=True, exist_ok=True)
            stanzas: dict[tuple[str, str, str], str] = {}
            for version in minor_versions:
                for arch in KUBE_ARCHES:
                    for package in packages_for(version, arch, release_dir(release, version, arch)):
                        deb = build_deb(package, repo)
                        stanzas[(package.name, package.version, package.arch)] = packages_stanza(package, deb, repo)
            index = "\n".join(stanzas[entry] for entry in sorted(stanzas))
            (repo / "Packages").write_text(index, encoding="utf-8")
            with (repo / "Packages.gz").open("wb") as handle, gzip.GzipFile("", "wb", 9, handle, mtime=0) as packed:
                packed.write(index.encode())
            (repo / "Release").write_text(release_text(repo, minor, ["Packages", "Packages.gz"]), encoding="utf-8")
            key.sign(repo / "Release")
            (repo / "Release.key").write_text(key.public_armored(), encoding="utf-8")


class SigningKey:
    """The lab's apt signing key in its own GnuPG home: made once per machine, shared by every mirror build.

    A file lock serialises generation and signing among parallel test sessions; the gpg-agent started for signing is
    stopped again when the session ends.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self._fingerprint: str | None = None

    def gpg(self, *args: str, input_text: str | None = None) -> str:
        result = subprocess.run(
            ["gpg", "--batch", "--no-tty", "--homedir", str(self.home), "--pinentry-mode", "loopback",
             "--passphrase", "", *args],
            input=input_text, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"gpg {' '.join(args[:2])} failed: {result.stderr.strip()}")
        return result.stdout

    @contextlib.contextmanager
    def session(self) -> Iterator[SigningKey]:
        """Hold the machine-wide lock while generating or signing; stop the gpg-agent gpg started at the end."""
        lock_path = Path(tempfile.gettempdir()) / "provision-lab-apt-key.lock"
        with lock_path.open("w", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self
            finally:
                if self.home.is_dir() and shutil.which("gpgconf"):
                    kill = ["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"]
                    subprocess.run(kill, capture_output=True, check=False)

    def ensure(self) -> str:
        """The key's fingerprint, generating the key (ed25519, signing only, no expiry) if the home has none."""
        if self._fingerprint is None:
            if shutil.which("gpg") is None:
                raise RuntimeError("gpg is missing: apt-get install -y gnupg (scripts/setup does)")
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self._secret_fingerprints():
                self.gpg("--quick-generate-key", KEY_UID, "ed25519", "sign", "0")
            self._fingerprint = self._secret_fingerprints()[0]
        return self._fingerprint

    def _secret_fingerprints(self) -> list[str]:
        listing = self.gpg("--with-colons", "--list-secret-keys")
        lines = listing.splitlines()
        return [
            line.split(":")[9]
            for previous, line in itertools.pairwise(lines)
            if previous.startswith("sec:") and line.startswith("fpr:")
        ]

    def sign(self, release: Path) -> None:
        """Release.gpg (detached, armoured) and InRelease (clear-signed) beside ``release``."""
        fingerprint = self.ensure()
        common = ("--yes", "--digest-algo", "SHA512", "--local-user", fingerprint)
        self.gpg(*common, "--armor", "--detach-sign", "--output", str(release.with_suffix(".gpg")), str(release))
        self.gpg(*common, "--clearsign", "--output", str(release.with_name("InRelease")), str(release))

    def public_armored(self) -> str:
        return self.gpg("--armor", "--export", self.ensure())
