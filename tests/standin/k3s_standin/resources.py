"""kubectl's client side of resource types: discovery, name and kind mapping, the patch ``apply`` sends.

Discovery reads ``/api/v1`` and every version of every group in ``/apis`` (the legacy discovery documents), as
kubectl's REST mapper does, so a type exists for kubectl exactly when the server serves it: a Plan cannot be applied
before its CustomResourceDefinition is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True)
class Mapping:
    """One resource type as discovery describes it."""

    group: str  # "" for the core group
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        return f"{base}/{self.plural}" + (f"/{name}" if name else "")

    def reference(self, name: str) -> str:
        """``plan.upgrade.cattle.io/k3s-server``, ``namespace/default``: how kubectl names an object it changed."""
        return f"{self.kind.lower()}{'.' + self.group if self.group else ''}/{name}"

    def names(self) -> set[str]:
        return {self.plural, self.singular, self.kind.lower(), *self.short_names}


def discover(get: Callable[[str], Any]) -> list[Mapping]:
    """Every resource type the server serves (subresources left out), core group first, then /apis in order."""
    found = _resources(get("/api/v1"), "", "v1")
    for group in get("/apis").get("groups", []):
        for version in group.get("versions", []):
            found += _resources(get(f"/apis/{version['groupVersion']}"), group["name"], version["version"])
    return found


def _resources(listing: Json, group: str, version: str) -> list[Mapping]:
    return [
        Mapping(group, version, r["name"], r.get("singularName") or r["kind"].lower(), r["kind"],
                bool(r.get("namespaced")), tuple(r.get("shortNames", [])))
        for r in listing.get("resources", [])
        if "/" not in r["name"]
    ]


def by_name(mappings: list[Mapping], text: str) -> Mapping | None:
    """``plans``, ``plan``, ``crd``, ``plans.upgrade.cattle.io``, ``plans.v1.upgrade.cattle.io``: kubectl's forms."""
    text = text.lower()
    for mapping in mappings:
        for name in mapping.names():
            if text in (name, f"{name}.{mapping.group}", f"{name}.{mapping.version}.{mapping.group}"):
                return mapping
    return None


def by_kind(mappings: list[Mapping], api_version: str, kind: str) -> Mapping | None:
    return next((m for m in mappings if m.group_version == api_version and m.kind == kind), None)


def three_way_patch(original: Json | None, modified: Json, current: Json) -> Json:
    """The JSON merge patch ``kubectl apply`` sends: set what `modified` changes against `current`, and delete what
    the last apply (`original`) set but `modified` no longer has. Lists are replaced whole."""
    patch: Json = {}
    for key, value in modified.items():
        now = current.get(key)
        if isinstance(value, dict) and isinstance(now, dict):
            before = (original or {}).get(key)
            sub = three_way_patch(before if isinstance(before, dict) else None, value, now)
            if sub:
                patch[key] = sub
        elif value != now:
            patch[key] = value
    for key in original or {}:
        if key not in modified and key in current:
            patch[key] = None
    return patch
