"""Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while a playbook runs: provision says it was
interrupted, where, and how to resume; exit 130; no traceback. The host is a listener on loopback that accepts SSH
connections and never answers, so the playbook is still waiting when the interrupt comes."""

from __future__ import annotations

import importlib.abc
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.cli import entry
from tests.unit.cli_runs import command_line, environment, loopback_inventory

pytestmark = pytest.mark.unit

PROVISION = Path(sys.executable).parent / "provision"


@pytest.fixture
def silent_port() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def _interrupted(tmp_path: Path, port: int, *command: str, after_s: float) -> subprocess.CompletedProcess[str]:
    loopback_inventory(tmp_path, "intr", port=port)
    proc = subprocess.Popen(
        command_line(tmp_path, *command, provision=[str(PROVISION)]), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=environment(tmp_path), cwd=tmp_path, start_new_session=True,
    )
    time.sleep(after_s)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_interrupt_during_a_playbook_is_reported_as_one(tmp_path: Path, silent_port: int) -> None:
    result = _interrupted(tmp_path, silent_port, "status", after_s=6)
    assert result.returncode == 130, result.stdout + result.stderr
    assert "interrupted during status.yml" in result.stderr and "rerun the same command" in result.stderr
    assert "Traceback" not in result.stderr and "fix the hosts" not in result.stderr


class _InterruptingFinder(importlib.abc.MetaPathFinder):
    """Ctrl-C arriving while the CLI is being imported (the import takes about half a second)."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname == "provisioner.cli.main":
            raise KeyboardInterrupt


def test_interrupt_while_starting_prints_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delitem(sys.modules, "provisioner.cli.main", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_InterruptingFinder(), *sys.meta_path])
    assert entry.main() == 130
    assert capsys.readouterr().err == "provision: interrupted while starting; nothing was done\n"
