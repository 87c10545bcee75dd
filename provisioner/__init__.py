"""provision: turn edge devices or VMs into a Kubernetes cluster from one inventory file.

Kept free of imports: the console entry point (provisioner.cli.entry) loads through here, and an interrupt while
it loads must reach its guard.
"""

from __future__ import annotations


def tool_version() -> str:
    """The installed distribution's version (pyproject.toml is its one source)."""
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 - see the module's docstring

    try:
        return version("provision")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"
