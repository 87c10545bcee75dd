"""Collecting problems with the line where the offending value is written.

A host's variable may come from its own entry, from any of its groups or from ``all.vars``. The line of a problem is
the line of the definition that wins in Ansible's precedence: the host entry first, then its groups from the most
specific, then ``all``. When the winning definition is a group's, the problem is about that group line, so it is
reported once without a host name instead of once per host.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from provisioner.errors import Problem
from provisioner.inventory.yamlfile import LineIndex, VarPath


@dataclass(frozen=True)
class Origin:
    """Where the winning definition of a variable is written."""

    line: int | None
    shared: bool  # defined for a group, not in the host's own entry


def field_name(path: VarPath) -> str:
    """``("k3s_node_taints", 0)`` -> ``k3s_node_taints[0]``; ``("provision_hardware", "arch")`` -> dotted."""
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text += f".{step}" if text else step
    return text


@dataclass
class Report:
    """Errors and warnings for one file, deduplicated and ordered by line."""

    file: str
    index: LineIndex
    host_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # host -> groups, most specific first
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def origin(self, path: VarPath, host: str | None) -> Origin:
        """The definition of ``path`` that Ansible uses for ``host`` (or for the cluster, when host is None)."""
        if not path:
            return Origin(None, shared=host is None)
        if host is not None and (path[0],) in _keys(self.index.host_vars, host):
            return Origin(self.index.host_var(host, path), shared=False)
        groups = self.host_groups.get(host, ()) if host is not None else ()
        for group in (*groups, "all") if "all" not in groups else groups:
            if (path[0],) in _keys(self.index.group_vars, group):
                return Origin(self.index.group_var(group, path), shared=True)
        if host is None:
            for (owner, key), _line in sorted(self.index.group_vars.items(), key=lambda item: item[1]):
                if owner != "all" and key == (path[0],):
                    return Origin(self.index.group_var(owner, path), shared=True)
        return Origin(None, shared=host is None)

    def _problem(
        self, field_path: VarPath | str, message: str, fix: str, host: str | None, line: int | None
    ) -> Problem:
        path: VarPath = (field_path,) if isinstance(field_path, str) else field_path
        origin = self.origin(path, host) if line is None else Origin(line, shared=False)
        shown_host = None if origin.shared and origin.line is not None else host
        return Problem(self.file, field_name(path), message, fix, shown_host, origin.line)

    def error(
        self, field_path: VarPath | str, message: str, fix: str = "", host: str | None = None, line: int | None = None
    ) -> None:
        """Record an error at the winning definition of ``field_path`` (or at ``line`` when given)."""
        _add(self.errors, self._problem(field_path, message, fix, host, line))

    def warn(
        self, field_path: VarPath | str, message: str, fix: str = "", host: str | None = None, line: int | None = None
    ) -> None:
        """Record a warning; warnings never stop a run."""
        _add(self.warnings, self._problem(field_path, message, fix, host, line))

    @property
    def all_line(self) -> int | None:
        """Line of the ``all:`` group, where a missing cluster-wide variable belongs."""
        return self.index.group_lines.get("all")

    def sorted_errors(self) -> list[Problem]:
        return _by_line(self.errors)

    def sorted_warnings(self) -> list[Problem]:
        return _by_line(self.warnings)


def _keys(table: dict[tuple[str, VarPath], int], owner: str) -> set[VarPath]:
    return {path for (who, path) in table if who == owner and len(path) == 1}


def _add(problems: list[Problem], problem: Problem) -> None:
    if problem not in problems:
        problems.append(problem)


def _by_line(problems: list[Problem]) -> list[Problem]:
    """File-wide problems first, then in file order; checks that hit the same line keep their order."""
    return sorted(problems, key=lambda p: (p.line is not None, p.line or 0))
