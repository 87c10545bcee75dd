#!/usr/bin/python
"""Ansible module: make sure kernel modules are loaded, with ansible-core alone on the controller.

A module counts as present when the running kernel has it loaded (/proc/modules), built in (modules.builtin of the
running kernel) or otherwise registered (/sys/module/<name>); only the others are loaded with `modprobe`. Reports
changed only when it loaded something, so a rerun on a prepared host changes nothing. Supports check mode.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

DOCUMENTATION = r"""
module: load_kernel_modules
short_description: Load kernel modules that are neither loaded nor built into the running kernel
description:
  - Reads /proc/modules, the running kernel's modules.builtin and /sys/module, and runs modprobe for each module
    that none of them lists. Dashes and underscores in names are the same module, as for modprobe.
options:
  names: {type: list, elements: str, required: true, description: Kernel module names.}
author: provision
"""

RETURN = r"""
loaded:
  description: Modules this run loaded (in check mode, would load).
  type: list
  elements: str
  returned: always
present:
  description: Modules that were already loaded or built in.
  type: list
  elements: str
  returned: always
"""

_KO_SUFFIX = re.compile(r"\.ko(\.(xz|gz|zst))?$")


def canonical(name: str) -> str:
    """modprobe treats `-` and `_` in module names alike."""
    return name.strip().replace("-", "_")


def loaded_modules(proc_modules: str) -> set[str]:
    """Names in the first column of /proc/modules."""
    return {canonical(line.split()[0]) for line in proc_modules.splitlines() if line.strip()}


def builtin_modules(modules_builtin: str) -> set[str]:
    """Names from modules.builtin, whose lines are paths like kernel/net/bridge/br_netfilter.ko."""
    names = set()
    for line in modules_builtin.splitlines():
        path = line.strip()
        if path:
            names.add(canonical(_KO_SUFFIX.sub("", path.rsplit("/", 1)[-1])))
    return names


def missing(names: list[str], present: set[str], registered: set[str]) -> list[str]:
    """The requested modules (in the order given, once each) that the kernel does not have yet."""
    have = present | registered
    result: list[str] = []
    for name in names:
        if canonical(name) not in have and name not in result:
            result.append(name)
    return result


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def kernel_state(root: Path = Path("/")) -> tuple[set[str], set[str]]:
    """(loaded or built in, registered under /sys/module) for the running kernel under `root`."""
    release = os.uname().release
    present = loaded_modules(_read(root / "proc" / "modules"))
    present |= builtin_modules(_read(root / "lib" / "modules" / release / "modules.builtin"))
    present |= builtin_modules(_read(root / "usr" / "lib" / "modules" / release / "modules.builtin"))
    sys_module = root / "sys" / "module"
    registered = {canonical(p.name) for p in sys_module.iterdir()} if sys_module.is_dir() else set()
    return present, registered


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule  # noqa: PLC0415 - only where Ansible runs the module

    module = AnsibleModule(
        argument_spec={"names": {"type": "list", "elements": "str", "required": True}},
        supports_check_mode=True,
    )
    names: list[str] = module.params["names"]
    present, registered = kernel_state()
    to_load = missing(names, present, registered)
    result: dict[str, Any] = {
        "changed": bool(to_load),
        "loaded": to_load,
        "present": [n for n in names if n not in to_load],
    }
    if module.check_mode or not to_load:
        module.exit_json(**result)
    modprobe = module.get_bin_path("modprobe", required=True, opt_dirs=["/sbin", "/usr/sbin"])
    for name in to_load:
        rc, _out, err = module.run_command([modprobe, name])
        if rc != 0:
            module.fail_json(msg=f"modprobe {name} failed (rc {rc}): {err.strip()}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
