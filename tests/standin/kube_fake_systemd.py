#!/usr/bin/env python3
"""Test helper: a tiny systemctl / systemd-run for local runs of the kube stand-ins under a fake root.

Used only by local tests through the hidden knobs ``KUBE_STANDIN_SYSTEMCTL`` and ``KUBE_STANDIN_SYSTEMD_RUN``
(argv[1] picks the role: ``systemctl`` or ``systemd-run``). Units are processes started in their own session;
their state lives in ``$KUBE_STANDIN_ROOT/run/fake-systemd/<unit>.json`` and their output in ``<unit>.log``.
``kubelet`` is the one "installed" unit: started as ``$FAKE_KUBELET_BIN`` with the drop-in's arguments and the
flags of ``/var/lib/kubelet/kubeadm-flags.env``. Host paths in a unit's arguments (``=/etc/...``, ``=/var/...``)
are moved under the fake root for programs that do not know the knob (etcd).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = os.environ["KUBE_STANDIN_ROOT"]
STATE = Path(ROOT) / "run" / "fake-systemd"


def _record(unit: str) -> dict[str, object] | None:
    path = STATE / f"{unit}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _stop(unit: str) -> None:
    record = _record(unit)
    if record is None:
        return
    pid = int(record["pid"])  # type: ignore[arg-type]
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        pass
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.1)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    (STATE / f"{unit}.json").unlink(missing_ok=True)


def _rooted(arg: str) -> str:
    name, eq, value = arg.partition("=")
    if eq and value.startswith(("/etc/", "/var/", "/run/")):
        return f"{name}={ROOT}{value}"
    return arg


def _start(unit: str, command: list[str], description: str, env: dict[str, str]) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    if Path(command[0]).name == "etcd":
        command = [command[0], *[_rooted(a) for a in command[1:]]]
    log = open(STATE / f"{unit}.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True, env={**os.environ, **env})
    (STATE / f"{unit}.json").write_text(json.dumps({"pid": proc.pid, "description": description}))


def _kubelet_command() -> list[str]:
    flags: list[str] = []
    env_file = Path(ROOT) / "var/lib/kubelet/kubeadm-flags.env"
    if env_file.exists():
        value = env_file.read_text().split("=", 1)[1].strip()
        flags = shlex.split(json.loads(value))
    return [os.environ["FAKE_KUBELET_BIN"], "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
            "--kubeconfig=/etc/kubernetes/kubelet.conf", "--config=/var/lib/kubelet/config.yaml", *flags]


def systemctl(args: list[str]) -> int:
    verb, rest = args[0], args[1:]
    units = [a if a.endswith(".service") or "*" in a else f"{a}.service" for a in rest if not a.startswith("-")]
    if verb == "is-enabled":
        print("enabled")
        return 0
    if verb in ("restart", "start") and units == ["kubelet.service"]:
        _stop("kubelet.service")
        _start("kubelet.service", _kubelet_command(), "kubelet", {})
        return 0
    if verb == "stop":
        for unit in units:
            _stop(unit)
        return 0
    if verb == "reset-failed":
        return 0
    if verb == "show":
        record = _record(units[0])
        active = record is not None and _alive(int(record["pid"]))  # type: ignore[arg-type]
        print(f"ActiveState={'active' if active else 'inactive'}")
        print(f"Description={record['description'] if record else ''}")
        return 0
    if verb == "list-units":
        prefix = next((u for u in rest if "*" in u), "*").split("*")[0]
        for path in sorted(STATE.glob("*.json")) if STATE.exists() else []:
            unit = path.name[:-5]
            if unit.startswith(prefix):
                print(f"{unit} loaded active running {_record(unit)['description']}")  # type: ignore[index]
        return 0
    print(f"fake systemctl: {verb} not modelled", file=sys.stderr)
    return 1


def systemd_run(args: list[str]) -> int:
    unit, description, env = "", "", {}
    split = args.index("--")
    for arg in args[:split]:
        if arg.startswith("--unit="):
            unit = arg.split("=", 1)[1]
        elif arg.startswith("--description="):
            description = arg.split("=", 1)[1]
        elif arg.startswith("--setenv="):
            key, _, value = arg.split("=", 1)[1].partition("=")
            env[key] = value
    if not unit.endswith(".service"):
        unit += ".service"
    _stop(unit)
    _start(unit, args[split + 1:], description, env)
    return 0


if __name__ == "__main__":
    role = sys.argv[1]
    raise SystemExit(systemctl(sys.argv[2:]) if role == "systemctl" else systemd_run(sys.argv[2:]))
