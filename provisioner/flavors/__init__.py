"""Cluster flavors behind one interface (flavors/base.Flavor), found through a small registry.

The names the inventory accepts are provisioner.inventory.model.FLAVORS (the one list; the inventory layer sits
below this one); the registry maps each name it can install to its implementation.
"""

from __future__ import annotations

from collections.abc import Callable

from provisioner.errors import UsageError
from provisioner.flavors.base import Flavor, FlavorOptions, RestoreSource, Step, UpgradeRequest
from provisioner.flavors.k3s import K3sFlavor
from provisioner.flavors.kubeadm import KubeadmFlavor
from provisioner.inventory.model import FLAVORS

_REGISTRY: dict[str, Callable[[FlavorOptions], Flavor]] = {"k3s": K3sFlavor, "kubeadm": KubeadmFlavor}


def get_flavor(name: str, options: FlavorOptions) -> Flavor:
    factory = _REGISTRY.get(name)
    if factory is not None:
        return factory(options)
    if name in FLAVORS:
        raise UsageError(
            f"flavor {name!r} is not available in this release yet; use one of: {', '.join(sorted(_REGISTRY))}"
        )
    raise UsageError(f"unknown flavor {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")


__all__ = ["Flavor", "FlavorOptions", "RestoreSource", "Step", "UpgradeRequest", "get_flavor"]
