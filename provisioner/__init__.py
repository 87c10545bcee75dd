"""provision: turn edge devices or VMs into a Kubernetes cluster from one inventory file."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def tool_version() -> str:
    """The installed distribution's version (pyproject.toml is its one source)."""
    try:
        return version("provision")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"
