"""Static pods as systemd transient units, so that they outlive a kubelet restart like containers do.

Each manifest in ``staticPodPath`` becomes ``kube-standin-pod-<pod name>.service``, started with
``systemd-run --unit=... --collect -p Restart=always`` and the description
``lab stand-in static pod <name> (manifest <hash>)``. The kubelet restarts a unit only when its manifest's hash
changed (or the unit is not running), and stops units whose manifest is gone. ``kubeadm reset`` stops exactly the
units with that prefix.

What runs: ``etcd`` → Debian's ``/usr/bin/etcd`` with the manifest's flags (etcd 3.4 knows every flag kubeadm
writes for 1.28–1.31; ``ETCD_UNSUPPORTED_ARCH`` is set off amd64, which 3.4 needs on arm64/arm);
``kube-apiserver``, ``kube-controller-manager``, ``kube-scheduler`` → this program under that name (a symlink in
``/run/kube-standin/bin``). Other images are not run (logged).
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from . import host, klog, versions

UNIT_PREFIX = "kube-standin-pod-"
BIN_DIR = "/run/kube-standin/bin"
OWN = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
# etcd 3.5 flags kubeadm might write that Debian's etcd 3.4 lacks; dropped (none for the 1.28–1.31 defaults).
ETCD_DROP: tuple[str, ...] = ("--experimental-compact-hash-check-enabled", "--feature-gates")


def _self() -> str:
    return os.path.realpath(sys.argv[0])


def command_for(pod: dict[str, Any]) -> list[str] | None:
    container = pod["spec"]["containers"][0]
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    if not argv:
        return None
    name = os.path.basename(argv[0])
    if name == "etcd":
        return ["/usr/bin/etcd", *[a for a in argv[1:] if a.split("=", 1)[0] not in ETCD_DROP]]
    if name in OWN:
        link = host.path(f"{BIN_DIR}/{name}")
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink() or os.readlink(link) != _self():
            link.unlink(missing_ok=True)
            link.symlink_to(_self())
        return [str(link), *argv[1:]]
    return None


def unit(name: str) -> str:
    return f"{UNIT_PREFIX}{name}.service"


def _state(name: str) -> tuple[str, str]:
    result = host.systemctl("show", unit(name), "-p", "ActiveState", "-p", "Description")
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return values.get("ActiveState", "inactive"), values.get("Description", "")


def running_units() -> list[str]:
    result = host.systemctl("list-units", "--all", "--plain", "--no-legend", f"{UNIT_PREFIX}*")
    return [line.split()[0] for line in result.stdout.splitlines() if line.split()]


def image_version(pod: dict[str, Any]) -> str:
    """The tag of the pod's image when it is a Kubernetes release (kube-apiserver:v1.31.1), else ''."""
    tag = str(pod["spec"]["containers"][0].get("image", "")).rpartition(":")[2]
    return tag if re.fullmatch(r"v\d+\.\d+\.\d+", tag) else ""


def start(name: str, command: list[str], digest: str, version: str = "") -> None:
    import subprocess

    description = f"lab stand-in static pod {name} (manifest {digest})"
    env = []
    if os.path.basename(command[0]) == "etcd" and platform.machine() not in ("x86_64", "amd64"):
        env = [f"--setenv=ETCD_UNSUPPORTED_ARCH={'arm64' if platform.machine() == 'aarch64' else 'arm'}"]
    if version and os.path.basename(command[0]) in OWN:
        env.append(f"--setenv={versions.IMAGE_VERSION_ENV}={version}")
    result = subprocess.run([host.systemd_run(), f"--unit={unit(name)}", "--collect", f"--description={description}",
                             "-p", "Restart=always", "-p", "RestartSec=5", *env, "--", *command],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        klog.error("kubelet.go", f'"Error syncing pod, skipping" err="failed to start static pod {name}: '
                   f'{result.stderr.strip()}" pod="kube-system/{name}"')


def stop(unit_name: str) -> None:
    host.systemctl("stop", unit_name)
    host.systemctl("reset-failed", unit_name)


def manifest_signature(manifest_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times of the manifests: cheap to compare every second."""
    if not manifest_dir.is_dir():
        return ()
    found = []
    for path in sorted(manifest_dir.iterdir()):
        try:
            stat = path.stat()
        except OSError:
            continue
        found.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def sync(manifest_dir: Path, node_name: str) -> dict[str, str]:
    """Make the running units match the manifests; returns pod name → manifest hash of what should run."""
    wanted: dict[str, tuple[list[str], str, str]] = {}
    if manifest_dir.is_dir():
        for path in sorted(manifest_dir.iterdir()):
            if path.name.startswith(".") or path.suffix not in (".yaml", ".yml", ".json") or not path.is_file():
                continue
            try:
                raw = path.read_bytes()
                pod = yaml.safe_load(raw)
                name = str(pod["metadata"]["name"])
                command = command_for(pod)
            except (OSError, yaml.YAMLError, KeyError, TypeError, IndexError) as exc:
                klog.error("config.go", f'"Could not process manifest file" err="{exc}" path="{path}"')
                continue
            if command is None:
                klog.info("kubelet.go", f'"static pod image not modelled by the stand-in, not run" pod="{name}"')
                continue
            wanted[name] = (command, hashlib.sha256(raw).hexdigest()[:12], image_version(pod))
    for name, (command, digest, version) in wanted.items():
        state, description = _state(name)
        if state in ("active", "activating") and description.endswith(f"(manifest {digest})"):
            continue
        if state != "inactive" or description:
            stop(unit(name))
        klog.info("kubelet.go", f'"SyncLoop ADD" source="file" pods=["kube-system/{name}-{node_name}"]')
        start(name, command, digest, version)
    for running in running_units():
        name = running[len(UNIT_PREFIX):].removesuffix(".service")
        if name not in wanted:
            klog.info("kubelet.go", f'"SyncLoop REMOVE" source="file" pods=["kube-system/{name}-{node_name}"]')
            stop(running)
    return {name: digest for name, (_, digest, _) in wanted.items()}


def stop_all() -> None:
    for running in running_units():
        stop(running)
