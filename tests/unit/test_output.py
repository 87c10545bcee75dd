"""Output conventions: results on stdout, progress and diagnostics on stderr; colour only on a terminal without
NO_COLOR; --check and --dry-run mean the same on every command that has one."""

from __future__ import annotations

import io

import pytest

from provisioner.cli.main import build_parser
from provisioner.cli.output import TextReporter

pytestmark = pytest.mark.unit


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tables_go_to_stdout_and_progress_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = TextReporter()
    reporter.info("up finished in 3.0s")
    reporter.warn("careful")
    reporter.table(["HOST", "READY"], [["s1", "yes"]])
    reporter.table(["STEP", "NODE"], [["1", "s1"]], result=False)
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["HOST  READY", "s1    yes"]
    assert "up finished" in captured.err and "careful" in captured.err and "STEP  NODE" in captured.err


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert TextReporter(stream=_Terminal()).color is True
    assert TextReporter(stream=io.StringIO()).color is False
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = _Terminal()
    reporter = TextReporter(stream=terminal)
    reporter.warn("plain")
    assert reporter.color is False and "\033[" not in terminal.getvalue()


@pytest.mark.parametrize("command", [["up"], ["upgrade", "--version", "v1.29.0+k3s1"]])
def test_check_and_dry_run_are_one_option(command: list[str]) -> None:
    parser = build_parser()
    for flag in ("--check", "--dry-run"):
        args = parser.parse_args([*command, "--inventory", "edge.yml", flag])
        assert (args.check if command[0] == "up" else args.dry_run) is True
