"""The HA filters of the k3s role: datastore URL with password, critical-setting differences, etcd members."""

from __future__ import annotations

import pytest

from tests.playbook_code import load

pytestmark = pytest.mark.unit



ha = load("roles/k3s/filter_plugins/k3s_ha_filters.py")


@pytest.mark.parametrize(
    ("endpoint", "password", "expected"),
    [
        ("postgres://k3s@db:5432/kubernetes?sslmode=disable", "s3:cr/t@",
         "postgres://k3s:s3%3Acr%2Ft%40@db:5432/kubernetes?sslmode=disable"),
        ("postgres://k3s@[fd00::1]:5432/k", "pw", "postgres://k3s:pw@[fd00::1]:5432/k"),
        ("mysql://k3s@tcp(db:3306)/kubernetes", "p@ss:w", "mysql://k3s:p@ss:w@tcp(db:3306)/kubernetes"),
        ("https://e1:2379,https://e2:2379", "ignored", "https://e1:2379,https://e2:2379"),
        ("postgres://k3s@db/k", "", "postgres://k3s@db/k"),
    ],
)
def test_datastore_url_puts_the_password_where_the_driver_reads_it(endpoint: str, password: str, expected: str) -> None:
    assert ha.datastore_url(endpoint, password) == expected


def test_absent_critical_keys_equal_k3s_defaults() -> None:
    assert ha.critical_diff({}, {"cluster-cidr": "10.42.0.0/16", "disable": [], "secrets-encryption": False}) == []
    assert ha.critical_diff({"disable": "traefik,servicelb"}, {"disable": ["servicelb"]}) == []
    assert ha.critical_diff({"flannel-ipv6-masq": "true"}, {"flannel-ipv6-masq": True}) == []


def test_critical_changes_are_k3s_own_list() -> None:
    diff = ha.critical_diff(
        {"cluster-cidr": "10.42.0.0/16", "agent-token": "old", "node-label": ["a=b"]},
        {"cluster-cidr": "10.52.0.0/16", "agent-token": "new", "disable": ["servicelb"], "node-label": ["c=d"]},
    )
    assert diff == ["cluster-cidr: 10.42.0.0/16 -> 10.52.0.0/16", "disable-service-lb: false -> true"]
    assert not any("old" in line or "new" in line for line in diff)


@pytest.mark.parametrize(
    "change",
    [
        {"disable": ["traefik"]},
        {"disable": ["local-storage", "metrics-server", "coredns"]},
        {"service-node-port-range": "30000-31000"},
        {"disable-kube-proxy": True},
        {"kube-apiserver-arg": ["audit-log-maxage=7"]},
    ],
)
def test_settings_k3s_does_not_check_are_not_critical(change: dict) -> None:
    assert ha.critical_diff({}, change) == []


def test_etcd_membership_matches_k3s_member_names_only() -> None:
    info = {"members": [{"name": "s1-0a1b2c3d"}, {"name": "s10-11223344"}, {"name": ""}]}
    assert ha.is_etcd_member(info, "s1")
    assert ha.is_etcd_member(info, "s10")
    assert not ha.is_etcd_member(info, "s2")
    assert not ha.is_etcd_member({"members": [{"name": "s1-extra-0a1b2c3d"}]}, "s1")
    # joined but not promoted yet: not a member that counts (k3s's learners)
    learner = {"members": [{"name": "s1-0a1b2c3d", "isLearner": False}, {"name": "s2-1a2b3c4d", "isLearner": True}]}
    assert ha.is_etcd_member(learner, "s1") and not ha.is_etcd_member(learner, "s2")
    assert ha.etcd_member_names(learner) == ["s1-0a1b2c3d", "s2-1a2b3c4d (learner)"]
    assert ha.etcd_member_names(None) == []
