"""A fully offline cluster: `up` and `upgrade` take the binary and the image archive from a local artifact directory.

The lab is made without a release mirror: the hosts reach no release server, everything comes over SSH from the
control machine. What each host's K3s imported is read back with `k3s crictl images` and compared with image IDs
computed here from the release's own archive (sha256 of each image's config, as containerd names images).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.lab.fixtures import MakeLab
from tests.upgrade.helpers import NEW, OLD, LabCluster, make_cluster, restarts_to

pytestmark = pytest.mark.lab

ARCHIVE = "k3s-airgap-images-amd64.tar.zst"
ON_HOST = f"/var/lib/rancher/k3s/agent/images/{ARCHIVE}"


def release_image_ids(archive: Path) -> dict[str, str]:
    """Image reference -> short image ID (12 hex), read from a zstd-compressed `docker save` archive."""
    raw = subprocess.run(["zstd", "-q", "-d", "-c", str(archive)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        ids = {}
        for entry in manifest:
            config = tar.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
            for ref in entry["RepoTags"]:
                ids[ref] = hashlib.sha256(config).hexdigest()[:12]
    return ids


def host_images(cluster: LabCluster, host: str) -> dict[str, str]:
    """`k3s crictl images` on the host: reference -> short image ID."""
    out = cluster.lab.exec(host, "k3s crictl images", check=True).stdout.splitlines()
    return {f"{cols[0]}:{cols[1]}": cols[2][:12] for cols in (line.split() for line in out[1:]) if len(cols) >= 3}


def host_archive_sha(cluster: LabCluster, host: str) -> str:
    return cluster.lab.exec(host, f"sha256sum {ON_HOST}", check=True).stdout.split()[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def changed_total(stdout: str) -> int:
    return sum(sum(phase["changed"].values()) for phase in json.loads(stdout)["phases"])


def test_offline_up_and_upgrade_place_and_swap_the_image_archive(
    make_lab: MakeLab, mirror_dir: Path, tmp_path: Path
) -> None:
    if not (mirror_dir / OLD / ARCHIVE).exists():
        pytest.fail("the lab mirror has no .tar.zst archives: install zstd (scripts/setup does)")
    artifacts = tmp_path / "artifacts"
    shutil.copytree(mirror_dir, artifacts)  # a copy this test may damage
    hosts = ["s1", "a1"]
    lab = make_lab(hosts, mirror=False)
    cluster = make_cluster(
        lab, ["s1"], ["a1"], tmp_path / "cluster",
        extra_vars={"k3s_artifact_dir": str(artifacts), "k3s_airgap_images": True},
    )

    up = cluster.provision("up", "--json")
    assert up.returncode == 0, up.stderr[-3000:]
    old_ids = release_image_ids(artifacts / OLD / ARCHIVE)
    for host in hosts:
        assert host_archive_sha(cluster, host) == sha256(artifacts / OLD / ARCHIVE), host
        assert host_images(cluster, host) == old_ids, host
        log = cluster.lab.exec(host, "journalctl -u k3s -u k3s-agent --no-pager").stdout
        assert f"Imported images from {ON_HOST}" in log, host

    again = cluster.provision("up", "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    assert changed_total(again.stdout) == 0, again.stdout[-3000:]

    # A damaged target archive stops the upgrade in its checks: no host changed.
    good = (artifacts / NEW / ARCHIVE).read_bytes()
    (artifacts / NEW / ARCHIVE).write_bytes(good[:-100])
    refused = cluster.provision("upgrade", "--version", NEW, "--yes")
    assert refused.returncode != 0, refused.stderr[-3000:]
    assert f"{NEW}/{ARCHIVE} is missing, not listed in" in refused.stderr, refused.stderr[-3000:]
    assert all(cluster.binary_version(h) == OLD for h in hosts)
    assert all(host_archive_sha(cluster, h) == sha256(artifacts / OLD / ARCHIVE) for h in hosts)

    (artifacts / NEW / ARCHIVE).write_bytes(good)
    upgrade = cluster.provision("upgrade", "--version", NEW, "--yes")
    assert upgrade.returncode == 0, upgrade.stderr[-4000:]
    new_ids = release_image_ids(artifacts / NEW / ARCHIVE)
    assert set(new_ids.values()).isdisjoint(old_ids.values())  # the releases' images differ: the check can fail
    for host in hosts:
        assert cluster.binary_version(host) == NEW, host
        assert host_archive_sha(cluster, host) == sha256(artifacts / NEW / ARCHIVE), host
        assert host_images(cluster, host) == new_ids, host
        assert len(restarts_to(lab, host, NEW)) == 1, host
        staged = cluster.lab.exec(host, "ls -A /var/lib/rancher/k3s-upgrade 2>/dev/null").stdout.split()
        assert staged == [], (host, staged)
