"""The node_prep role's load_kernel_modules module: which modules it would load (the pure parts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.playbook_code import PLAYBOOKS, load

pytestmark = pytest.mark.unit

modules = load("roles/node_prep/library/load_kernel_modules.py")
LIBRARY = PLAYBOOKS / "roles" / "node_prep" / "library"
BIN = Path(sys.executable).parent

PROC_MODULES = """overlay 151552 0 - Live 0x0000000000000000
nf_conntrack 176128 2 nf_nat,xt_conntrack, Live 0x0000000000000000
"""
BUILTIN = """kernel/net/bridge/br_netfilter.ko
kernel/drivers/block/loop.ko.zst
"""


def test_loaded_builtin_and_registered_modules_are_not_loaded_again() -> None:
    present = modules.loaded_modules(PROC_MODULES) | modules.builtin_modules(BUILTIN)
    assert present == {"overlay", "nf_conntrack", "br_netfilter", "loop"}
    assert modules.missing(["br_netfilter", "overlay", "loop"], present, set()) == []
    assert modules.missing(["vxlan"], present, {"vxlan"}) == []


def test_missing_modules_keep_their_order_once_each_and_dashes_equal_underscores() -> None:
    present = modules.loaded_modules(PROC_MODULES)
    assert modules.missing(["br-netfilter", "nf-conntrack", "vxlan", "br-netfilter"], present, set()) == [
        "br-netfilter",
        "vxlan",
    ]


def test_kernel_state_reads_proc_builtin_and_sys(tmp_path: Path) -> None:
    release = os.uname().release
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "modules").write_text(PROC_MODULES)
    builtin = tmp_path / "lib" / "modules" / release
    builtin.mkdir(parents=True)
    (builtin / "modules.builtin").write_text(BUILTIN)
    (tmp_path / "sys" / "module" / "ip_tables").mkdir(parents=True)
    present, registered = modules.kernel_state(tmp_path)
    assert present == {"overlay", "nf_conntrack", "br_netfilter", "loop"}
    assert registered == {"ip_tables"}


def test_module_through_ansible_in_check_mode_on_this_machine(tmp_path: Path) -> None:
    """The real module, run by ansible on the control machine in check mode (nothing is loaded): a module the kernel
    has is left alone, an unknown one would be loaded."""
    present, registered = modules.kernel_state()
    known = sorted(present | registered)
    assert known, "the running kernel shows no module in /proc/modules, modules.builtin or /sys/module"
    have, unknown = known[0], "provision_no_such_module"
    result = subprocess.run(
        [BIN / "ansible", "localhost", "-c", "local", "--check", "-o", "-M", str(LIBRARY),
         "-m", "load_kernel_modules", "-a", f"names={have},{unknown}"],
        capture_output=True, text=True, check=False, env=os.environ | {"ANSIBLE_LOCALHOST_WARNING": "False"},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(result.stdout.split("=>", 1)[1])
    assert outcome["changed"] is True
    assert outcome["loaded"] == [unknown] and outcome["present"] == [have]
