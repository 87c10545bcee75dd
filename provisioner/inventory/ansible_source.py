"""Resolve the inventory the way ansible-playbook will: groups, host ranges and variable precedence.

This is the only module that imports Ansible's inventory code. It reads the file with ansible-core's
InventoryManager (YAML plugin only) and asks a VariableManager for each host's variables, so ``all.vars`` <
parent group < child group < host vars, ``group_vars/`` and ``host_vars/`` beside the file, and host ranges
such as ``pi-[1:3]`` all mean exactly what they will mean when the playbooks run. Values come back with
Ansible's tags and vault wrappers removed (see ``plain``).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ansible.inventory.group import Group
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.inventory import BaseInventoryPlugin
from ansible.plugins.loader import inventory_loader
from ansible.vars.manager import VariableManager


class Vaulted:
    """Stands for an ansible-vault encrypted value: present, but unreadable without the vault password."""

    _instance: Vaulted | None = None

    def __new__(cls) -> Vaulted:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<vaulted>"


VAULTED: Final = Vaulted()
_VAULT_TYPES = frozenset({"EncryptedString", "AnsibleVaultEncryptedUnicode"})


_SCALAR_TYPES: tuple[type, ...] = (bool, str, int, float)  # bool first: it is an int too


def plain(value: object) -> object:
    """Turn Ansible's tagged containers and strings into builtins; vault values into VAULTED (never decrypted)."""
    if type(value).__name__ in _VAULT_TYPES:
        return VAULTED
    for scalar in _SCALAR_TYPES:
        if isinstance(value, scalar):
            return scalar(value)
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence | set):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class ResolvedHost:
    """One host as Ansible sees it: its groups (most specific first) and its variables, raw."""

    name: str
    groups: tuple[str, ...]
    variables: Mapping[str, Any]  # Ansible's values: call plain() on what you read


@dataclass(frozen=True)
class ResolvedInventory:
    """Hosts in ``all`` order plus the members of every group in Ansible's ``groups[...]`` order."""

    hosts: tuple[ResolvedHost, ...]
    groups: Mapping[str, tuple[str, ...]]


class AnsibleParseError(Exception):
    """Ansible could not read the file as a YAML inventory; the message is Ansible's own."""


class _YamlOnlyInventory(InventoryManager):  # type: ignore[misc]
    """InventoryManager restricted to the YAML plugin.

    With the default plugin list a YAML file the YAML plugin rejects falls through to the INI plugin, which
    happily turns its lines into bogus host names. The file format is YAML, so nothing else may read it.
    """

    def _fetch_inventory_plugins(self) -> list[BaseInventoryPlugin]:
        plugin = inventory_loader.get("yaml")
        if plugin is None:  # pragma: no cover - ansible-core always ships it
            raise AnsibleParseError("ansible-core's yaml inventory plugin is missing")
        return [plugin]

    def parse_source(self, source: str, cache: bool = False) -> bool:
        parsed = bool(super().parse_source(source, cache=cache))
        self.provision_parsed = parsed
        return parsed


def _sorted_group_names(groups: list[Group]) -> tuple[str, ...]:
    """Group names most specific first, the order in which they win in Ansible's precedence."""
    ordered = sorted(groups, key=lambda g: (g.depth, g.priority, g.name))
    return tuple(g.name for g in reversed(ordered))


def resolve(path: Path) -> ResolvedInventory:
    """Read ``path`` with Ansible. Ansible's own warnings are swallowed: the plain YAML pass reports those cases."""
    loader = DataLoader()
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
        inventory = _YamlOnlyInventory(loader=loader, sources=[str(path)])
    if not getattr(inventory, "provision_parsed", False):
        detail = " ".join(chatter.getvalue().split())
        raise AnsibleParseError(detail or "ansible-core could not parse it as a YAML inventory")
    variables = VariableManager(loader=loader, inventory=inventory)
    hosts = tuple(
        ResolvedHost(
            name=str(host.name),
            groups=_sorted_group_names(host.get_groups()),
            variables=variables.get_vars(host=host, include_hostvars=False),
        )
        for host in inventory.get_hosts("all")
    )
    groups = {str(name): tuple(str(h.name) for h in group.get_hosts()) for name, group in inventory.groups.items()}
    return ResolvedInventory(hosts=hosts, groups=groups)
