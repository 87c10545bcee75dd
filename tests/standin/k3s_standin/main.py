"""Entry point: architecture check, then multicall dispatch on argv[0] like the k3s binary.

``k3s``, ``kubectl``, ``crictl`` and ``ctr`` are one file (the installer makes symlinks);
the basename the process was started under picks the tool.
"""

from __future__ import annotations

import os
import platform
import sys

from . import _buildinfo

# uname -m values each release asset can run on.
_MACHINES = {
    "amd64": {"x86_64", "amd64"},
    "arm64": {"aarch64", "arm64"},
    "arm": {"armv7l", "armv6l", "armv7", "armv8l", "arm"},
}


def _check_arch() -> None:
    refuse_foreign_cpu(getattr(_buildinfo, "ARCH", ""))


def refuse_foreign_cpu(want: str) -> None:
    """Refuse to run on the wrong CPU the way the kernel refuses a foreign ELF binary (shell: exit 126); the kube
    stand-ins call it with their own build's architecture. Empty `want` (run from the source tree): no check."""
    if not want:
        return
    machine = platform.machine().lower()
    if machine not in _MACHINES.get(want, set()):
        sys.stderr.write(f"{sys.argv[0]}: cannot execute binary file: Exec format error\n")
        sys.stderr.flush()
        os._exit(126)


def version_text() -> str:
    """The two lines ``k3s --version`` prints."""
    return f"k3s version {_buildinfo.VERSION} ({_buildinfo.COMMIT})\ngo version {_buildinfo.GO_VERSION}\n"


def main() -> None:
    """Dispatch on the program name; never returns normally."""
    _check_arch()
    name = os.path.basename(sys.argv[0]) if sys.argv else "k3s"
    args = sys.argv[1:]
    try:
        if name == "kubectl":
            from . import kubectl

            code = kubectl.run(args)
        elif name == "crictl":
            from . import stubs

            code = stubs.crictl(args)
        elif name == "ctr":
            from . import stubs

            code = stubs.ctr(args)
        else:
            from . import cli

            code = cli.run(args)
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    raise SystemExit(code)
