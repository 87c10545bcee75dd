"""The `provision` command's entry point: nothing but a guard around loading and running the CLI.

Loading the CLI (Ansible, pyinfra, paramiko) takes a moment; an interrupt then must not print a traceback.
"""

from __future__ import annotations

import sys

INTERRUPTED = 130  # provisioner.errors.ExitCode.INTERRUPTED, not imported: this module must load instantly


def main() -> int:
    try:
        from provisioner.cli.main import main as run  # noqa: PLC0415 - the import is what is guarded
    except KeyboardInterrupt:
        sys.stderr.write("provision: interrupted while starting; nothing was done\n")
        return INTERRUPTED
    return run()


if __name__ == "__main__":
    sys.exit(main())
