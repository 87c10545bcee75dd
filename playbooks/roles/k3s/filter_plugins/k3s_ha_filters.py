"""Filters for K3s high availability: the datastore URL with its password, critical settings, etcd members.

They live with the role so that plain ansible-playbook runs behave exactly like the provision CLI. None of them
logs anything; the callers mark the tasks that handle the password no_log.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

# Settings every server of one cluster must share: K3s's own list (CriticalControlArgs in its daemons/config
# package, each with its command-line name); a server whose values differ from the cluster's is refused with
# "critical configuration value mismatch". K3s has no `disable-service-lb` flag: that value is servicelb in the
# `disable` list. Keys a release does not know cannot be set there (its flag table refuses them), so one list serves
# every supported version. Other `disable` entries (traefik, local-storage, metrics-server, coredns) are not
# critical: K3s removes a disabled packaged component from a running cluster, so changing them is a rolling restart.
CRITICAL_KEYS = (
    "cluster-cidr",
    "cluster-dns",
    "cluster-domain",
    "disable-cloud-controller",
    "disable-helm-controller",
    "disable-network-policy",
    "disable-service-lb",
    "egress-selector-mode",
    "embedded-registry",
    "flannel-backend",
    "flannel-external-ip",
    "flannel-ip-masq-disable-random-fully",
    "flannel-ipv6-masq",
    "secrets-encryption",
    "secrets-encryption-provider",
    "service-cidr",
    "supervisor-metrics",
)
# What k3s uses when a key is absent, so "absent" and "set to the default" compare equal (booleans default false).
CRITICAL_DEFAULTS: dict[str, Any] = {
    "cluster-cidr": "10.42.0.0/16",
    "service-cidr": "10.43.0.0/16",
    "cluster-dns": "10.43.0.10",
    "cluster-domain": "cluster.local",
    "flannel-backend": "vxlan",
    "egress-selector-mode": "agent",
    "secrets-encryption-provider": "aescbc",
}
_BOOL_KEYS = (
    "disable-cloud-controller", "disable-helm-controller", "disable-network-policy", "disable-service-lb",
    "embedded-registry", "flannel-external-ip", "flannel-ip-masq-disable-random-fully", "flannel-ipv6-masq",
    "secrets-encryption", "supervisor-metrics",
)
_LIST_KEYS = ("cluster-cidr", "service-cidr", "cluster-dns")
_MYSQL_RE = re.compile(r"^(mysql://)(?P<user>[^:@/]*)(?::[^@]*)?@(?P<rest>tcp\(.*)$")


def datastore_url(endpoint: str, password: str) -> str:
    """k3s's datastore-endpoint with the password put in; etcd URLs (no password) are returned as they are.

    PostgreSQL URLs are parsed by lib/pq as URLs, so the password is percent-encoded; the MySQL driver reads
    ``user:password@tcp(...)`` literally, so it goes in unchanged.
    """
    endpoint, password = str(endpoint), str(password)
    if not password:
        return endpoint
    scheme = endpoint.partition("://")[0]
    if scheme in ("postgres", "postgresql"):
        parts = urlsplit(endpoint)
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{user}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    if scheme == "mysql":
        match = _MYSQL_RE.match(endpoint)
        if match is None:
            return endpoint
        return f"mysql://{match.group('user')}:{password}@{match.group('rest')}"
    return endpoint


def _normalised(key: str, value: Any) -> Any:
    if value is None:
        value = CRITICAL_DEFAULTS.get(key)
    if key in _BOOL_KEYS:
        return value is True or str(value).strip().lower() == "true"
    if key in _LIST_KEYS:
        items = value if isinstance(value, list) else ([] if value in (None, "") else str(value).split(","))
        return sorted(str(i).strip() for i in items if str(i).strip())
    return None if value is None else str(value)


def _disabled(config: dict[str, Any]) -> list[str]:
    value = config.get("disable") or []
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(i).strip() for i in items if str(i).strip()]


def critical_values(config: dict[str, Any] | None) -> dict[str, Any]:
    """The critical settings of one server's config.yaml content, with k3s defaults filled in."""
    config = dict(config or {})
    config["disable-service-lb"] = "servicelb" in _disabled(config)
    return {key: _normalised(key, config.get(key)) for key in CRITICAL_KEYS}


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(value) or "(none)"
    return "(unset)" if value is None else str(value)


def critical_diff(current: dict[str, Any] | None, intended: dict[str, Any] | None) -> list[str]:
    """One line per critical key whose value would change: 'cluster-cidr: 10.42.0.0/16 -> 10.52.0.0/16'."""
    have, want = critical_values(current), critical_values(intended)
    return [f"{k}: {_shown(have[k])} -> {_shown(want[k])}" for k in CRITICAL_KEYS if have[k] != want[k]]


def etcd_member_names(db_info: dict[str, Any] | None) -> list[str]:
    """Member names from k3s's /db/info (an etcd MemberListResponse), a learner marked as such."""
    return [str(m["name"]) + (" (learner)" if m.get("isLearner") else "")
            for m in (db_info or {}).get("members", []) or [] if m.get("name")]


def is_etcd_member(db_info: dict[str, Any] | None, node_name: str) -> bool:
    """Whether the server is a voting etcd member. k3s names a member '<node name>-<8 hex>' (a member that has not
    started yet has no name) and adds a joining server as a learner, which the leader promotes once it caught up:
    until then it does not count for quorum, and etcd refuses the next join ("too many learner members")."""
    pattern = re.compile(rf"^{re.escape(str(node_name))}-[0-9a-f]{{8}}$")
    return any(pattern.match(str(m.get("name") or "")) and not m.get("isLearner")
               for m in (db_info or {}).get("members", []) or [])


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict[str, Any]:
        return {
            "k3s_datastore_url": datastore_url,
            "k3s_critical_diff": critical_diff,
            "k3s_etcd_member_names": etcd_member_names,
            "k3s_is_etcd_member": is_etcd_member,
        }
