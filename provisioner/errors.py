"""The exception tree of provision.

Every error the user can act on derives from ProvisionError and carries the exit code the CLI returns. The CLI
turns these into one red line (plus detail lines) at a single boundary; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ExitCode:
    """Process exit codes, distinct per failure class so scripts can react."""

    OK = 0
    FAILED = 1  # a phase failed on some host
    BAD_INPUT = 2  # inventory, flags or arguments are wrong; nothing was changed
    UNREACHABLE = 3  # some host could not be reached or logged into
    REFUSED = 4  # a safety check refused the operation (quorum, downgrade, ...)
    INTERRUPTED = 130


class ProvisionError(Exception):
    """Root of every error provision reports to the user."""

    exit_code = ExitCode.FAILED
    reported = False  # set when a command already put the error into its own JSON document

    def details(self) -> list[str]:
        """Extra lines shown under the one-line message."""
        return []


@dataclass(frozen=True)
class Problem:
    """One problem found in an input file: where it is and how to fix it."""

    file: str
    field: str
    message: str
    fix: str = ""
    host: str | None = None
    line: int | None = None

    def render(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        subject = f"host {self.host}: " if self.host else ""
        text = f"{where}: {subject}{self.field}: {self.message}"
        return f"{text} (fix: {self.fix})" if self.fix else text


class InventoryError(ProvisionError):
    """The inventory file is invalid. Holds every problem found, not just the first."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, problems: list[Problem], warnings: list[Problem] | None = None) -> None:
        self.problems = problems
        self.warnings: list[Problem] = list(warnings or [])  # non-fatal findings, shown with the errors
        count = len(problems)
        super().__init__(f"the inventory has {count} problem{'s' if count != 1 else ''}")

    def details(self) -> list[str]:
        return [p.render() for p in self.problems]


class UsageError(ProvisionError):
    """A command-line argument is wrong."""

    exit_code = ExitCode.BAD_INPUT


@dataclass
class HostProblem:
    """A problem found on one host by probing."""

    host: str
    check: str
    message: str
    fix: str = ""


class ProbeError(ProvisionError):
    """Probing found hosts that are unreachable or do not match the inventory."""

    exit_code = ExitCode.FAILED

    def __init__(self, problems: list[HostProblem], unreachable: bool = False) -> None:
        self.problems = problems
        if unreachable:
            self.exit_code = ExitCode.UNREACHABLE
        super().__init__(f"probing found {len(problems)} problem(s); nothing was changed")

    def details(self) -> list[str]:
        return [
            f"{p.host}: {p.check}: {p.message}" + (f" (fix: {p.fix})" if p.fix else "") for p in self.problems
        ]


@dataclass
class PhaseFailedError(ProvisionError):
    """A phase's playbook failed. Names the failed and unreachable hosts and how to resume."""

    phase: str
    rc: int
    failed: dict[str, str] = field(default_factory=dict)  # host -> short reason
    unreachable: dict[str, str] = field(default_factory=dict)
    resume_hint: str = ""

    def __post_init__(self) -> None:
        super().__init__(f"phase {self.phase} failed (ansible rc {self.rc})")
        self.exit_code = ExitCode.UNREACHABLE if self.unreachable and not self.failed else ExitCode.FAILED

    def details(self) -> list[str]:
        lines = [f"{h}: failed: {r}" for h, r in sorted(self.failed.items())]
        lines += [f"{h}: unreachable: {r}" for h, r in sorted(self.unreachable.items())]
        if self.resume_hint:
            lines.append(self.resume_hint)
        return lines


@dataclass
class InterruptedRunError(ProvisionError):
    """The user interrupted the run (Ctrl-C, SIGINT or SIGTERM) while a playbook ran: ansible-runner cancelled it."""

    playbook: str
    phase: str = ""

    def __post_init__(self) -> None:
        super().__init__(f"interrupted during {self.phase or self.playbook}")
        self.exit_code = ExitCode.INTERRUPTED

    def __str__(self) -> str:
        return f"interrupted during {self.phase or self.playbook}"

    def details(self) -> list[str]:
        return [
            "the hosts this step was changing may be left half-way; nothing after it ran",
            "rerun the same command to resume: hosts already as described are left alone",
        ]


class BusyError(ProvisionError):
    """Another provision run holds the cluster; nothing was changed."""

    exit_code = ExitCode.REFUSED


class RefusedError(ProvisionError):
    """A safety rule refused the operation before anything changed."""

    exit_code = ExitCode.REFUSED
