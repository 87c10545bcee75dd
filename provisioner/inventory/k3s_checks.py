"""Checks of the cluster-wide k3s fields: version or channel, artifact source, registries, config keys, datastore.

All checks are local (no network): what they cannot know, e.g. whether a mirror really holds the version, the
install phase reports later.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from provisioner.grammar import k3s_version_form, k3s_version_valid
from provisioner.inventory import k3s_flags
from provisioner.inventory.ansible_source import VAULTED
from provisioner.inventory.k3s_flags import Flag
from provisioner.inventory.model import DEFAULT_UPGRADE_IMAGE
from provisioner.inventory.report import Report
from provisioner.inventory.syntax import CHANNEL_RE, image_repository_problem, version_fix
from provisioner.inventory.yamlfile import VarPath

Command = Literal["server", "agent"]


@functools.cache
def config_keys(command: Command) -> dict[str, Flag]:
    """Every config key ``k3s <command>`` accepts (flag names and aliases) -> its flag."""
    flags = k3s_flags.SERVER_FLAGS if command == "server" else k3s_flags.AGENT_FLAGS
    keys: dict[str, Flag] = {}
    for flag in flags:
        keys[flag.name] = flag
        for alias in flag.aliases:
            keys[alias] = flag
    return keys


# config.yaml keys provision writes itself, with the inventory field to use instead.
MANAGED_KEYS: dict[str, str] = {
    "token": "set k3s_token (vault-encrypted) or PROVISION_K3S_TOKEN / --token-file; provision writes the token",
    "token-file": "set k3s_token (vault-encrypted) or PROVISION_K3S_TOKEN / --token-file; provision writes the token",
    "agent-token": "remove it; provision joins agents with the cluster token (k3s_token)",
    "agent-token-file": "remove it; provision joins agents with the cluster token (k3s_token)",
    "server": "set provision_api_endpoint; provision points joining nodes at it (default: the first server)",
    "cluster-init": "remove it; provision sets it on the first server when the cluster uses embedded etcd",
    "node-label": "use k3s_node_labels on the host or its group",
    "node-taint": "use k3s_node_taints on the host or its group",
    "node-name": "remove it; the node name is the inventory host name",
    "data-dir": "remove it; provision's backup, reset and upgrade rely on /var/lib/rancher/k3s",
    "datastore-endpoint": "use k3s_datastore_endpoint (and k3s_datastore_password_file for the password)",
    "private-registry": "use k3s_registries; provision writes /etc/rancher/k3s/registries.yaml",
    "config": "remove it; put the keys directly in k3s_server_config / k3s_agent_config",
    "cluster-reset": "remove it; a restore is a one-off operation, not a permanent setting",
    "cluster-reset-restore-path": "remove it; a restore is a one-off operation, not a permanent setting",
}

# config.yaml keys that would break what provision relies on: node names, file locations, the API port, full servers.
UNSUPPORTED_KEYS: dict[str, str] = {
    "with-node-id": "remove it; node names must equal the inventory host names, which provision looks nodes up by",
    "write-kubeconfig": "remove it; provision reads the admin kubeconfig from /etc/rancher/k3s/k3s.yaml",
    "etcd-snapshot-dir": "remove it; provision's backup and restore read snapshots from the data dir's db/snapshots",
    "https-listen-port": "remove it; joins, the kubeconfig and kube-vip reach the API on port 6443",
    "disable-apiserver": "remove it; provision runs every server as a full server (API, etcd, agent)",
    "disable-etcd": "remove it; provision runs every server as a full server (API, etcd, agent)",
    "disable-agent": "remove it; provision runs every server as a full server and checks each as a Ready node",
}

_SCALARS = (str, int, float, bool)


def _is_template(value: object) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def check_version_and_channel(report: Report, version: object, channel: object) -> None:
    """Exactly one of k3s_version / k3s_channel, each in its expected form."""
    if version is None and channel is None:
        report.error(
            "k3s_version",
            "neither k3s_version nor k3s_channel is set",
            f"pin a release with k3s_version ({k3s_version_form()}) for reproducible installs, "
            "or follow a channel with k3s_channel (stable, latest, testing, v1.28)",
            line=report.all_line,
        )
        return
    if version is not None and channel is not None:
        report.error(
            "k3s_channel",
            "both k3s_version and k3s_channel are set; they exclude each other",
            "keep k3s_version to pin a release, or k3s_channel to follow a channel",
        )
    if version is not None and not _is_template(version):
        _check_version(report, version)
    if channel is not None and not _is_template(channel):
        _check_channel(report, channel)


def _check_version(report: Report, version: object) -> None:
    if not isinstance(version, str):
        report.error(
            "k3s_version",
            f"must be a string, YAML read {type(version).__name__} {version!r}",
            f"quote it and use the form {k3s_version_form()}",
        )
    elif not k3s_version_valid(version):
        report.error(
            "k3s_version",
            f"{version!r} is not a k3s release name (expected {k3s_version_form()})",
            version_fix(version),
        )


def _check_channel(report: Report, channel: object) -> None:
    if not isinstance(channel, str) or not CHANNEL_RE.match(channel):
        shown = channel if isinstance(channel, str) else f"{type(channel).__name__} {channel!r}"
        fix = "use stable, latest, testing or a minor line such as v1.28"
        if isinstance(channel, str) and k3s_version_valid(channel):
            fix = f"a full release belongs in k3s_version: {channel}"
        elif isinstance(channel, float | int):
            fix = f'quote a minor line and prefix it with v: k3s_channel: "v{channel}"'
        report.error("k3s_channel", f"{shown!r} is not a k3s channel", fix)


def check_release_url(report: Report, url: object) -> str | None:
    """The base URL must be http(s) with a host; returns it without a trailing slash."""
    if not isinstance(url, str):
        report.error(
            "k3s_release_url", "must be a URL string", "write e.g. https://github.com/k3s-io/k3s/releases/download"
        )
        return None
    if _is_template(url):
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        report.error(
            "k3s_release_url",
            f"{url!r} is not an http(s) URL",
            "give the base URL of a release server or mirror, e.g. https://github.com/k3s-io/k3s/releases/download; "
            "for a local directory use k3s_artifact_dir",
        )
        return None
    if parts.scheme == "http":
        report.warn(
            "k3s_release_url",
            f"{url!r} is plain HTTP: the sha256 file comes from the same server, so a changed binary on the way "
            "would go unnoticed",
            "use https, or a local copy whose checksums you verified with k3s_artifact_dir",
        )
    return url.rstrip("/")


# Locations K3s is run with: provision writes config.yaml, backs up, upgrades and resets there. K3s is not told other
# values (no data-dir, config file or https-listen-port is written), so other values are refused, not ignored.
FIXED_LOCATIONS: dict[str, object] = {
    "k3s_data_dir": "/var/lib/rancher/k3s",
    "k3s_config_dir": "/etc/rancher/k3s",
    "k3s_api_port": 6443,
}


def check_fixed_locations(report: Report, ref: Mapping[str, Any]) -> None:
    """k3s_data_dir, k3s_config_dir and k3s_api_port may only repeat K3s's own values."""
    for name, default in FIXED_LOCATIONS.items():
        value = ref.get(name)
        if value is None or _is_template(value) or str(value).rstrip("/") == str(default):
            continue
        report.error(
            name,
            f"{value!r} is not supported: K3s would still use {default}, while provision's config, backup, upgrade "
            "and reset would look elsewhere",
            f"remove {name} (K3s's own {default} is used)",
        )


AIRGAP_IMAGE_FORMATS = ("tar.zst", "tar.gz", "tar")  # what K3s releases publish k3s-airgap-images-<arch> as


def check_airgap_images(report: Report, enabled: bool, fmt: object) -> str | None:
    """k3s_airgap_images / k3s_airgap_images_format: the archive format to place, or None when off."""
    if fmt is not None and not _is_template(fmt) and fmt not in AIRGAP_IMAGE_FORMATS:
        report.error(
            "k3s_airgap_images_format",
            f"{fmt!r} is not a format K3s releases publish the image archive in",
            f"use one of {', '.join(AIRGAP_IMAGE_FORMATS)} (tar.zst is the smallest)",
        )
        fmt = None
    if not enabled:
        return None
    return fmt if isinstance(fmt, str) and fmt in AIRGAP_IMAGE_FORMATS else AIRGAP_IMAGE_FORMATS[0]


def check_upgrade_image(report: Report, value: object) -> str:
    """k3s_upgrade_image (a private registry's copy of rancher/k3s-upgrade): a repository without a tag."""
    example = f"{DEFAULT_UPGRADE_IMAGE} or registry.example:5000/rancher/k3s-upgrade"
    if value is None:
        return DEFAULT_UPGRADE_IMAGE
    if not isinstance(value, str):
        shown = f"{type(value).__name__} {value!r}"
        report.error("k3s_upgrade_image", f"must be a string, YAML read {shown}", f"write e.g. {example}")
        return DEFAULT_UPGRADE_IMAGE
    problem = None if _is_template(value) else image_repository_problem(value)
    if problem is not None:
        report.error("k3s_upgrade_image", f"{value!r} {problem}", f"give the repository only, e.g. {example}")
    return value


def check_artifact_dir(report: Report, value: object, base: Path, *, version: object, channel: object) -> Path | None:
    """A local directory laid out like the release server; relative paths are relative to the inventory file."""
    if not isinstance(value, str) or not value:
        report.error("k3s_artifact_dir", "must be a directory path", "write e.g. k3s_artifact_dir: /srv/k3s-artifacts")
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (base / path).resolve()
    if channel is not None:
        report.error(
            "k3s_artifact_dir",
            "an artifact directory cannot follow a channel (resolving it needs the network)",
            "replace k3s_channel with a pinned k3s_version",
        )
    if not path.is_dir():
        report.error(
            "k3s_artifact_dir",
            f"directory {str(path)!r} does not exist",
            "create it with the release layout (<dir>/<version>/k3s, sha256sum-<arch>.txt) or fix the path",
        )
    elif isinstance(version, str) and k3s_version_valid(version) and not (path / version).is_dir():
        report.error(
            "k3s_artifact_dir",
            f"{str(path)!r} has no {version}/ subdirectory",
            f"download the {version} release assets into {path / version}",
        )
    return path


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_config(report: Report, field: str, config: object, command: Command, host: str | None = None) -> None:
    """Every key of k3s_server_config / k3s_agent_config must be a flag of that command and not managed by provision."""
    if config is None:
        return
    if not isinstance(config, Mapping):
        report.error(field, "must be a mapping of k3s config.yaml keys", "write e.g. {disable: [traefik]}", host=host)
        return
    for raw_key, value in config.items():
        _check_config_key(report, field, str(raw_key), value, command=command, host=host)


def _check_config_key(
    report: Report, field: str, raw_key: str, value: object, *, command: Command, host: str | None
) -> None:
    path: VarPath = (field, raw_key)
    key = raw_key.removesuffix("+")  # `key+:` appends to a list set in an earlier file
    if key.startswith("-"):
        report.error(path, "config keys are flag names without leading dashes", f"write {key.lstrip('-')}", host=host)
        return
    flag = config_keys(command).get(key)
    if flag is None:
        _unknown_key(report, path, key, command, host)
        return
    if flag.name in MANAGED_KEYS:
        report.error(path, "is set by provision and may not be given here", MANAGED_KEYS[flag.name], host=host)
        return
    if flag.name in UNSUPPORTED_KEYS:
        report.error(path, "would break what provision relies on", UNSUPPORTED_KEYS[flag.name], host=host)
        return
    if flag.deprecated:
        report.warn(path, f"is deprecated in k3s {command}", "remove it when you can", host=host)
    _check_config_value(report, path, flag, value, host)


def _unknown_key(report: Report, path: VarPath, key: str, command: Command, host: str | None) -> None:
    if command == "agent" and key in config_keys("server"):
        report.error(
            path,
            "is a k3s server flag, not an agent flag; k3s agent refuses unknown flags and would not start",
            "move it to k3s_server_config (or remove it)",
            host=host,
        )
        return
    names = sorted(config_keys(command))
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    if command == "server":
        effect = (
            "k3s server would skip it with the warning 'Unknown flag --"
            f"{key} found in config.yaml, skipping' and the setting would silently do nothing"
        )
    else:
        effect = "k3s agent refuses unknown flags and would not start"
    report.error(path, f"is not a k3s {command} flag; {effect}", f"{hint}see `k3s {command} --help`", host=host)


def _check_config_value(report: Report, path: VarPath, flag: Flag, value: object, host: str | None) -> None:
    if isinstance(value, _SCALARS) or _is_template(value):
        return
    if flag.repeatable and isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value):
        return
    expected = "a value or a list of values" if flag.repeatable else "a single value (the flag is not repeatable)"
    report.error(path, f"must be {expected}", "see `k3s --help` for the flag's type", host=host)


_MYSQL_RE = re.compile(r"^mysql://(?:(?P<user>[^:@/]*)(?::(?P<password>[^@]*))?@)?tcp\((?P<addr>[^)]+)\)/(?P<db>[^?]*)")


def check_datastore(report: Report, endpoint: object, password_file: object, servers: int, base: Path) -> Path | None:
    """An external datastore URL without a password, and the password file beside it. Never prints the URL."""
    if endpoint is not None:
        _check_endpoint(report, endpoint, servers)
    if password_file is None:
        return None
    if endpoint is None:
        report.error(
            "k3s_datastore_password_file",
            "is set but k3s_datastore_endpoint is not",
            "set k3s_datastore_endpoint or remove the password file",
        )
    if not isinstance(password_file, str) or not password_file:
        report.error(
            "k3s_datastore_password_file", "must be a file path", "write the path of a file holding only the password"
        )
        return None
    path = Path(password_file).expanduser()
    if not path.is_absolute():
        path = (base / path).resolve()
    if not path.is_file():
        report.error(
            "k3s_datastore_password_file",
            f"file {str(path)!r} does not exist",
            "create it (mode 0600, the password only) or fix the path; or use PROVISION_DATASTORE_PASSWORD",
        )
    return path


_SECRET_IN_URL_FIX = (
    "remove the password from the URL; put it in k3s_datastore_password_file or PROVISION_DATASTORE_PASSWORD"  # noqa: S105 - advice text, not a secret
)
_DATASTORE_FORMS = (
    "postgres://user@host:5432/db, mysql://user@tcp(host:3306)/db or https://etcd1:2379,https://etcd2:2379"
)


def _check_endpoint(report: Report, endpoint: object, servers: int) -> None:
    field = "k3s_datastore_endpoint"
    if endpoint is VAULTED or _is_template(endpoint):
        return
    if not isinstance(endpoint, str) or not endpoint:
        report.error(field, "must be a datastore URL", f"use one of {_DATASTORE_FORMS}")
        return
    scheme = endpoint.partition("://")[0] if "://" in endpoint else ""
    if scheme == "sqlite":
        if servers > 1:
            report.error(
                field, f"SQLite serves a single server, the inventory has {servers}", f"use one of {_DATASTORE_FORMS}"
            )
        return
    if scheme in ("postgres", "postgresql"):
        _check_postgres(report, endpoint)
    elif scheme == "mysql":
        _check_mysql(report, endpoint)
    elif scheme in ("http", "https"):
        _check_etcd(report, endpoint)
    else:
        shown = f"scheme {scheme!r}" if scheme else "a URL without scheme"
        report.error(field, f"{shown} is not a k3s datastore", f"use one of {_DATASTORE_FORMS}")


def _check_postgres(report: Report, endpoint: str) -> None:
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        report.error("k3s_datastore_endpoint", "is not a valid postgres URL", "write postgres://user@host:5432/db")
        return
    if parts.password:
        report.error("k3s_datastore_endpoint", "contains a password", _SECRET_IN_URL_FIX)
    if not parts.hostname:
        report.error("k3s_datastore_endpoint", "postgres URL has no host", "write postgres://user@host:5432/db")


def _check_mysql(report: Report, endpoint: str) -> None:
    match = _MYSQL_RE.match(endpoint)
    if not match:
        report.error(
            "k3s_datastore_endpoint",
            "is not in k3s's MySQL form (the address goes in tcp(...))",
            "write mysql://user@tcp(host:3306)/db",
        )
        return
    if match.group("password"):
        report.error("k3s_datastore_endpoint", "contains a password", _SECRET_IN_URL_FIX)


def _check_etcd(report: Report, endpoint: str) -> None:
    for item in endpoint.split(","):
        try:
            parts = urlsplit(item.strip())
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            report.error(
                "k3s_datastore_endpoint",
                "external etcd needs a comma-separated list of http(s)://host:port URLs",
                "write https://etcd1:2379,https://etcd2:2379",
            )
            return
        if parts.password:
            report.error("k3s_datastore_endpoint", "contains a password", _SECRET_IN_URL_FIX)
            return
