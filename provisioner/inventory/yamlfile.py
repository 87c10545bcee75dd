"""The plain YAML pass: structure checks and line numbers.

Ansible resolves the inventory (groups, host ranges, precedence) but forgets where a value was written. This pass
reads the same file with PyYAML's composer, whose nodes carry marks, and records the line of every group, host
entry and variable (down to nested keys and list items). It also checks the shape Ansible's YAML inventory plugin
expects; that plugin only *warns* and skips a misspelt ``host:`` or a list where a mapping belongs, which would
silently drop hosts, so here those are errors.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field

import yaml
from ansible.parsing.utils.addresses import parse_address
from ansible.plugins.inventory import detect_range, expand_hostname_range

GROUP_SECTIONS = ("vars", "children", "hosts")

# One step of a path to a value: a mapping key or a list index.
Step = str | int
VarPath = tuple[Step, ...]


@dataclass(frozen=True)
class StructureProblem:
    """A problem with the file's shape, found before Ansible reads it."""

    field: str
    message: str
    fix: str
    line: int | None


@dataclass
class LineIndex:
    """Where things are written in the file (1-based lines). Later definitions win, as in Ansible."""

    group_lines: dict[str, int] = field(default_factory=dict)
    host_lines: dict[str, int] = field(default_factory=dict)  # first entry of the host
    host_group_lines: dict[tuple[str, str], int] = field(default_factory=dict)  # (host, group) -> entry line
    group_vars: dict[tuple[str, VarPath], int] = field(default_factory=dict)
    host_vars: dict[tuple[str, VarPath], int] = field(default_factory=dict)

    def group_var(self, group: str, path: VarPath) -> int | None:
        """Line of ``path`` in ``group``'s vars, falling back to the closest written parent."""
        return _closest(self.group_vars, group, path)

    def host_var(self, host: str, path: VarPath) -> int | None:
        """Line of ``path`` in ``host``'s own entry, falling back to the closest written parent."""
        return _closest(self.host_vars, host, path)


def _closest(table: dict[tuple[str, VarPath], int], owner: str, path: VarPath) -> int | None:
    for end in range(len(path), 0, -1):
        line = table.get((owner, path[:end]))
        if line is not None:
            return line
    return None


def expand_host_key(key: str) -> list[str]:
    """Host names an inventory host key stands for (``pi-[1:3]`` -> pi-1, pi-2, pi-3), as Ansible expands them."""
    try:
        pattern, _port = parse_address(key, allow_ranges=True)
    except Exception:
        pattern = key
    if detect_range(pattern):
        return [str(name) for name in expand_hostname_range(pattern)]
    return [str(pattern)]


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the scalar {node.value!r}"


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Walker:
    """Walks the composed node tree once, filling the index and collecting structure problems."""

    def __init__(self) -> None:
        self.index = LineIndex()
        self.problems: list[StructureProblem] = []
        self.sections_seen = 0  # how many vars/children/hosts sections the file has

    def problem(self, where: str, message: str, fix: str, node: yaml.Node) -> None:
        self.problems.append(StructureProblem(where, message, fix, _line(node)))

    def pairs(self, node: yaml.MappingNode, where: str) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
        """Key/value pairs with scalar keys; reports duplicate keys (Ansible keeps the last one silently)."""
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(where, "a key must be a plain name", "write the key as a string", key_node)
                continue
            key = str(key_node.value)
            if key in seen:
                self.problem(
                    f"{where}.{key}" if where else key,
                    f"duplicate key (first at line {seen[key]}); only the last one would count",
                    "remove or merge one of them",
                    key_node,
                )
            seen[key] = _line(key_node)
            yield key, key_node, value_node

    def record_value(self, table: dict[tuple[str, VarPath], int], owner: str, path: VarPath, node: yaml.Node) -> None:
        """Record lines of nested keys and list items under an already recorded variable."""
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    sub = (*path, str(key_node.value))
                    table[(owner, sub)] = _line(key_node)
                    self.record_value(table, owner, sub, value_node)
        elif isinstance(node, yaml.SequenceNode):
            for number, item in enumerate(node.value):
                sub = (*path, number)
                table[(owner, sub)] = _line(item)
                self.record_value(table, owner, sub, item)

    def variables(self, table: dict[tuple[str, VarPath], int], owner: str, node: yaml.Node, where: str) -> None:
        if _is_null(node):
            return
        if not isinstance(node, yaml.MappingNode):
            self.problem(
                where, f"must be a mapping of variables, found {_kind(node)}", "write `name: value` pairs", node
            )
            return
        for key, key_node, value_node in self.pairs(node, where):
            table[(owner, (key,))] = _line(key_node)
            self.record_value(table, owner, (key,), value_node)

    def group(self, name: str, key_node: yaml.Node, node: yaml.Node) -> None:
        self.index.group_lines.setdefault(name, _line(key_node))
        if _is_null(node):
            return
        if not isinstance(node, yaml.MappingNode):
            self.problem(
                name,
                f"a group must be a mapping with vars, children and/or hosts; found {_kind(node)}",
                f"write `{name}: {{hosts: {{...}}}}` or move it under `vars`",
                node,
            )
            return
        for key, section_key, value in self.pairs(node, name):
            where = f"{name}.{key}"
            if key in GROUP_SECTIONS:
                self.sections_seen += 1
            if key == "vars":
                self.variables(self.index.group_vars, name, value, where)
            elif key == "children":
                self.children(value, where)
            elif key == "hosts":
                self.hosts(name, value, where)
            else:
                self.problem(
                    where,
                    f"unexpected key; a group holds only vars, children and hosts{_suggest(key, GROUP_SECTIONS)}",
                    "rename it or move it under `vars`",
                    section_key,
                )

    def children(self, node: yaml.Node, where: str) -> None:
        if _is_null(node):
            return
        if not isinstance(node, yaml.MappingNode):
            self.problem(
                where, f"must be a mapping of groups, found {_kind(node)}", "write `group_name: {hosts: ...}`", node
            )
            return
        for child, key_node, value in self.pairs(node, where):
            self.group(child, key_node, value)

    def hosts(self, group: str, node: yaml.Node, where: str) -> None:
        if _is_null(node):
            return
        if isinstance(node, yaml.ScalarNode):  # Ansible accepts `hosts: name` for a single host
            self.host_entry(group, str(node.value), node, None, where)
            return
        if not isinstance(node, yaml.MappingNode):
            self.problem(
                where,
                f"must be a mapping of host names, found {_kind(node)}",
                "write each host as `name:` (optionally with its variables below it), not as a list item",
                node,
            )
            return
        for key, key_node, value in self.pairs(node, where):
            self.host_entry(group, key, key_node, value, where)

    def host_entry(self, group: str, key: str, key_node: yaml.Node, value: yaml.Node | None, where: str) -> None:
        for name in expand_host_key(key):
            self.index.host_lines.setdefault(name, _line(key_node))
            self.index.host_group_lines[(name, group)] = _line(key_node)
            if value is not None:
                self.variables(self.index.host_vars, name, value, f"{where}.{key}")


def _compose(text: str) -> yaml.Node | None:
    """Compose the single YAML document; unknown tags such as Ansible's ``!vault`` are fine at this level."""
    return yaml.compose(text, Loader=yaml.SafeLoader)


def read_structure(text: str) -> tuple[LineIndex, list[StructureProblem]]:
    """Check the file's shape and index its lines. Raises yaml.YAMLError when the text is not YAML."""
    walker = _Walker()
    root = _compose(text)
    if root is None or _is_null(root):
        return walker.index, [StructureProblem("file", "is empty", "write an inventory (see docs/inventory.md)", None)]
    if not isinstance(root, yaml.MappingNode):
        walker.problem(
            "file",
            f"not an inventory: the top level must be a mapping of groups (`all:`), found {_kind(root)}",
            "start the file with `all:` and put vars, children and hosts below it",
            root,
        )
        return walker.index, walker.problems
    for name, key_node, value in walker.pairs(root, ""):
        if name == "plugin":
            walker.problem(
                "plugin",
                "this is an inventory plugin configuration, not a YAML inventory",
                "list the hosts in a YAML inventory (see docs/inventory.md)",
                key_node,
            )
            continue
        walker.group(name, key_node, value)
    if walker.sections_seen == 0 and not any(p.field == "plugin" for p in walker.problems):
        first = StructureProblem(
            "file",
            "not an inventory: no group has vars, children or hosts",
            "start the file with `all:` and put vars, children and hosts below it (see docs/inventory.md)",
            _line(root),
        )
        return walker.index, [first]
    return walker.index, walker.problems
