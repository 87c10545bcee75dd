"""Cluster flavors behind one interface, found through a small registry."""

from __future__ import annotations

from collections.abc import Callable

from provisioner.errors import UsageError
from provisioner.flavors.base import Flavor, FlavorOptions
from provisioner.flavors.k3s import K3sFlavor

_REGISTRY: dict[str, Callable[[FlavorOptions], Flavor]] = {"k3s": K3sFlavor}
# Flavors the inventory format accepts but this release cannot install yet.
_PLANNED = {"kubeadm"}


def get_flavor(name: str, options: FlavorOptions) -> Flavor:
    factory = _REGISTRY.get(name)
    if factory is not None:
        return factory(options)
    if name in _PLANNED:
        raise UsageError(f"flavor {name!r} is not available in this release yet; use --flavor k3s")
    raise UsageError(f"unknown flavor {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")


__all__ = ["Flavor", "FlavorOptions", "get_flavor"]
