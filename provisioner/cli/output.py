"""Progress and results for people (text) and machines (JSON). The only place that writes to the terminal."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any, TextIO

from provisioner.runner import HostEvent
from provisioner.state import PhaseReport

_STATE_MARKS = {"changed": "changed", "note": "", "failed": "FAILED", "unreachable": "UNREACHABLE"}
HEARTBEAT_S = 30.0  # after this long without a line, say what is still being waited for


class TextReporter:
    """One line per phase and per notable host event; quiet about tasks that changed nothing."""

    def __init__(self, stream: TextIO | None = None, verbosity: int = 0, heartbeat_s: float = HEARTBEAT_S) -> None:
        """verbosity: -1 quiet (warnings, errors, results), 0 phases and changes, 1 + task starts, 2 + every result."""
        self._stream = stream
        self.verbosity = verbosity
        self._phase_started = 0.0
        self._phase = ""
        # Heartbeat: a thread that, during a phase, reports what is awaited after heartbeat_s without a line.
        self._heartbeat_s = heartbeat_s
        self._lock = threading.Lock()
        self._awaited: dict[str, str] = {}  # host -> the task it is running
        self._last_line = 0.0
        self._beating: threading.Event | None = None
        # Colour only on a terminal, and never when NO_COLOR is set to anything (https://no-color.org).
        self.color = self.stream.isatty() and not os.environ.get("NO_COLOR")

    @property
    def stream(self) -> TextIO:
        """The given stream, else whatever sys.stderr is now (so redirections made later are honoured)."""
        return self._stream if self._stream is not None else sys.stderr

    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def _line(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)
            self._last_line = time.monotonic()

    def phase_started(self, name: str, title: str) -> None:
        self._phase_started = time.monotonic()
        self._phase = name
        if self.verbosity < 0:
            return
        self._line(self._paint(f"==> {name}: {title}", "1"))
        self._start_heartbeat()

    def _start_heartbeat(self) -> None:
        self._stop_heartbeat()
        if self._heartbeat_s <= 0:
            return
        stop = threading.Event()
        self._beating = stop
        threading.Thread(target=self._beat, args=(stop,), daemon=True, name="provision-heartbeat").start()

    def _stop_heartbeat(self) -> None:
        if self._beating is not None:
            self._beating.set()
            self._beating = None
        self._awaited.clear()

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(min(1.0, self._heartbeat_s)):
            if time.monotonic() - self._last_line < self._heartbeat_s:
                continue
            with self._lock:
                awaited = dict(self._awaited)
            if stop.is_set():
                return
            elapsed = time.monotonic() - self._phase_started
            by_task: dict[str, list[str]] = {}
            for host, task in sorted(awaited.items()):
                by_task.setdefault(task, []).append(host)
            waiting = "; ".join(f"{task} ({', '.join(hosts)})" for task, hosts in by_task.items()) or "ansible"
            self._line(f"    ... {self._phase}: {elapsed:.0f}s, still waiting for {waiting}")

    def host_event(self, event: HostEvent) -> None:
        with self._lock:
            if event.state == "started":
                self._awaited[event.host] = event.task
            else:
                self._awaited.pop(event.host, None)
        mark = _STATE_MARKS.get(event.state)
        shown = (
            (mark is not None and self.verbosity >= 0)
            or (event.state == "started" and self.verbosity >= 1)
            or self.verbosity >= 2  # noqa: PLR2004 - -vv
        )
        if not shown:
            return
        state = mark or ("running" if event.state == "started" else event.state)
        text = f"    {event.host:<20} {state:<11} {event.task}"
        if event.state == "note":
            text = f"    {event.host:<20} {'':<11} {event.message}"
        elif event.state in ("changed", "failed", "unreachable") and event.message:
            text += f": {event.message}"
        code = {"changed": "33", "failed": "31", "unreachable": "31"}.get(event.state, "0")
        self._line(self._paint(text, code))

    def phase_finished(self, report: PhaseReport) -> None:
        self._stop_heartbeat()
        if self.verbosity < 0 and report.status == "ok":
            return
        changed = sum(report.changed.values())
        extra = f", {changed} changed" if report.changed else ""
        self._line(f"    {report.name} {report.status} in {report.duration_s:.1f}s{extra}")

    def warn(self, message: str) -> None:
        self._line(self._paint(f"warning: {message}", "33"))

    def info(self, message: str) -> None:
        if self.verbosity >= 0:
            self._line(message)

    def error(self, message: str, details: list[str]) -> None:
        self._line(self._paint(f"error: {message}", "31;1"))
        for line in details:
            self._line(f"  {line}")

    def document(self, document: dict[str, Any]) -> None:
        """The command's one JSON result on stdout (only --json commands produce one)."""
        emit_json(document)

    def flush(self) -> None:
        """Text goes out as it comes; nothing is held back. The heartbeat ends with the command."""
        self._stop_heartbeat()

    def result_text(self, text: str) -> None:
        """A document for a pipe or a file (e.g. manifests) on stdout, as it is."""
        emit_text(text)

    def table(self, headers: list[str], rows: list[list[str]], *, result: bool = True) -> None:
        """A result table goes to stdout (so `provision status > file` keeps it); one that only explains what is
        about to happen (result=False) goes with the progress to stderr."""
        widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
        text = "\n".join(_cells(row, widths) for row in [headers, *rows])
        if result:
            emit_text(text)
        else:
            self._line(text)


def _cells(row: list[str], widths: list[int]) -> str:
    return "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()


class JsonReporter(TextReporter):
    """Progress stays off stdout; the final document is one JSON object on stdout.

    Warnings are gathered and travel in that document (`warnings`), whether the command succeeded or failed: one
    reporter lives for the whole command (cli/main.py makes it), so a warning given early reaches the error document.
    """

    def __init__(self) -> None:
        super().__init__()
        self.warnings: list[str] = []
        self._document: dict[str, Any] | None = None

    def host_event(self, event: HostEvent) -> None:
        return

    def phase_started(self, name: str, title: str) -> None:
        return

    def phase_finished(self, report: PhaseReport) -> None:
        return

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def info(self, message: str) -> None:
        return

    def error(self, message: str, details: list[str]) -> None:
        """An error the command did not put into its document: added to the document it made, or the only one."""
        self._document = (self._document or {"status": "error"}) | {"error": message, "details": details}

    def document(self, document: dict[str, Any]) -> None:
        """Kept until the command ends (flush), so that a later error joins it: one document, whatever happens."""
        self._document = document

    def flush(self) -> None:
        if self._document is None:
            return
        document, self._document = self._document, None
        given = [str(w) for w in document.get("warnings") or ()]
        emit_json(document | {"warnings": given + [w for w in self.warnings if w not in given]})

    def table(self, headers: list[str], rows: list[list[str]], *, result: bool = True) -> None:
        return

    def result_text(self, text: str) -> None:
        return  # the command puts such text into its document


def emit_json(document: dict[str, Any]) -> None:
    json.dump(document, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
    sys.stdout.flush()


def emit_text(text: str) -> None:
    """A document for a pipe or a file (e.g. manifests) on stdout, as it is; progress stays on stderr."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
