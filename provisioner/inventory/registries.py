"""Checks of the container registry settings both flavors take in one format: K3s's registries.yaml.

`mirrors` maps a registry name (or "*" for every registry) to the endpoints to pull from instead; `configs` maps a
registry host to its `auth` and `tls`. K3s writes the mapping as /etc/rancher/k3s/registries.yaml (k3s_registries);
the kubeadm flavor turns it into containerd's own hosts.toml files and registry auth (kubeadm_registries), where
containerd has no equivalent of K3s's `rewrite`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from urllib.parse import urlsplit

from provisioner.inventory.report import Report
from provisioner.inventory.yamlfile import VarPath

MIRROR_KEYS = ("endpoint", "rewrite")
CONFIG_KEYS = ("auth", "tls")
AUTH_KEYS = ("username", "password", "auth", "identity_token")
TLS_KEYS = ("ca_file", "cert_file", "key_file", "insecure_skip_verify")


def check(report: Report, field: str, value: object, *, rewrite: bool) -> None:
    """A mapping with mirrors and/or configs; `rewrite` only where the runtime has it (K3s)."""
    if not isinstance(value, Mapping):
        report.error(field, "must be a mapping with mirrors and/or configs", "see docs/inventory.md")
        return
    for key in value:
        if key not in ("mirrors", "configs"):
            report.error((field, str(key)), f"unknown key{_did_you_mean(str(key), ['mirrors', 'configs'])}",
                         "give only mirrors and configs")
    if "mirrors" not in value and "configs" not in value:
        report.error(field, "has neither mirrors nor configs", "add mirrors and/or configs, or remove it")
    mirror_keys = MIRROR_KEYS if rewrite else MIRROR_KEYS[:1]
    for registry, settings in _section(report, field, value.get("mirrors"), "mirrors", mirror_keys):
        path: VarPath = (field, "mirrors", registry)
        if not rewrite and "rewrite" in settings:
            report.error((*path, "rewrite"), "containerd (the kubeadm flavor's runtime) cannot rewrite image names",
                         "remove rewrite and give the mirror the images under their own names")
        _check_endpoints(report, settings.get("endpoint"), (*path, "endpoint"))
    for registry, settings in _section(report, field, value.get("configs"), "configs", CONFIG_KEYS):
        path = (field, "configs", registry)
        for name, allowed in (("auth", AUTH_KEYS), ("tls", TLS_KEYS)):
            _check_keys(report, settings.get(name), (*path, name), allowed)


def _section(
    report: Report, field: str, section: object, name: str, allowed: tuple[str, ...],
) -> list[tuple[str, Mapping[str, object]]]:
    """The (registry, settings) pairs of a well-formed section; every unknown key reported."""
    if section is None:
        return []
    if not isinstance(section, Mapping):
        report.error((field, name), "must be a mapping of registry name -> settings", "see docs/inventory.md")
        return []
    good = []
    for registry, settings in section.items():
        path: VarPath = (field, name, str(registry))
        if not isinstance(settings, Mapping):
            report.error(path, f"must be a mapping with {' and/or '.join(allowed)}", "see docs/inventory.md")
            continue
        extra = [str(k) for k in settings if k not in allowed and not (name == "mirrors" and k == "rewrite")]
        for key in extra:
            report.error((*path, key), f"unknown key{_did_you_mean(key, list(allowed))}", f"use {', '.join(allowed)}")
        good.append((str(registry), settings))
    return good


def _check_keys(report: Report, value: object, path: VarPath, allowed: tuple[str, ...]) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        report.error(path, f"must be a mapping with {', '.join(allowed)}", "see docs/inventory.md")
        return
    for key in value:
        if key not in allowed:
            report.error((*path, str(key)), f"unknown key{_did_you_mean(str(key), list(allowed))}",
                         f"use {', '.join(allowed)}")


def _check_endpoints(report: Report, endpoints: object, path: VarPath) -> None:
    if endpoints is None:
        return
    if not isinstance(endpoints, list):
        report.error(path, "must be a list of URLs", 'write endpoint: ["https://registry.example:5000"]')
        return
    for number, endpoint in enumerate(endpoints):
        if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("http", "https"):
            report.error(
                (*path, number), f"{endpoint!r} is not an http(s) URL", "write e.g. https://registry.example:5000"
            )


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
