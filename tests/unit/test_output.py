"""Output conventions: results on stdout, progress and diagnostics on stderr; colour only on a terminal without
NO_COLOR; --check and --dry-run mean the same on every command that has one."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from provisioner.cli.common import reporter_for
from provisioner.cli.main import build_parser
from provisioner.cli.output import TextReporter
from provisioner.runner import HostEvent
from provisioner.state import PhaseReport
from tests.unit.cli_runs import loopback_inventory, run

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


@pytest.mark.parametrize("command", [["reset", "--yes"], ["backup"], ["up"]])
def test_json_failure_is_one_document(tmp_path: Path, command: list[str]) -> None:
    """A command that wrote its report and then failed still prints one JSON document, with the error in it."""
    loopback_inventory(tmp_path, "onedoc")
    result = run(tmp_path, *command, "--json")
    assert result.returncode != 0
    document = json.loads(result.stdout)  # one document: json.loads refuses "Extra data"
    assert document.get("error"), document


def test_heartbeat_names_what_is_awaited_during_a_silent_wait() -> None:
    stream = io.StringIO()
    reporter = TextReporter(stream=stream, heartbeat_s=0.3)
    reporter.phase_started("verify", "Verify every node is Ready")
    reporter.host_event(HostEvent(host="s1", task="Wait for every node to be Ready", state="started"))
    reporter.host_event(HostEvent(host="a1", task="Wait for every node to be Ready", state="started"))
    time.sleep(1.2)
    beats = [line for line in stream.getvalue().splitlines() if "still waiting" in line]
    assert beats and "Wait for every node to be Ready (a1, s1)" in beats[0] and "verify:" in beats[0]
    reporter.host_event(HostEvent(host="s1", task="Wait for every node to be Ready", state="ok"))
    reporter.host_event(HostEvent(host="a1", task="Wait for every node to be Ready", state="ok"))
    reporter.phase_finished(PhaseReport(name="verify", status="ok", duration_s=1.2))
    after = len(stream.getvalue())
    time.sleep(0.8)
    assert len(stream.getvalue()) == after, "the heartbeat went on after the phase"


@pytest.mark.parametrize(
    ("flags", "shown"),
    [
        (["-q"], {"warning", "table"}),
        ([], {"phase", "changed", "warning", "info", "table"}),
        (["-v"], {"phase", "started", "changed", "warning", "info", "table"}),
        (["-vv"], {"phase", "started", "ok", "changed", "warning", "info", "table"}),
    ],
)
def test_verbosity_levels(flags: list[str], shown: set[str], capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["status", "--inventory", "edge.yml", *flags])
    reporter = reporter_for(args)
    assert isinstance(reporter, TextReporter)
    reporter._stream = None  # stderr, as in a run
    reporter.phase_started("install", "Install K3s")
    reporter.host_event(HostEvent(host="s1", task="Write config.yaml", state="started"))
    reporter.host_event(HostEvent(host="s1", task="Read the node list", state="ok"))
    reporter.host_event(HostEvent(host="s1", task="Write config.yaml", state="changed"))
    reporter.warn("careful")
    reporter.info("kubeconfig merged")
    reporter.table(["HOST"], [["s1"]])
    reporter.flush()
    out = capsys.readouterr()
    seen = {
        "phase": "==> install" in out.err, "started": "running     Write config.yaml" in out.err,
        "ok": "Read the node list" in out.err, "changed": "changed     Write config.yaml" in out.err,
        "warning": "careful" in out.err, "info": "kubeconfig merged" in out.err, "table": "HOST" in out.out,
    }
    assert {k for k, v in seen.items() if v} == shown
