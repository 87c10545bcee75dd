"""A lab datastore as a background service, for tools that cannot hold a pytest context manager (Molecule).

    python -m tests.ha.datastore_service start --kind postgres --network NET --state DIR
    python -m tests.ha.datastore_service rows --state DIR     # rows in kine's table (proof K3s keeps state there)
    python -m tests.ha.datastore_service stop --state DIR     # idempotent

`start` runs the same server as the HA tests (tests/ha/datastores.py: Debian's PostgreSQL or MariaDB, bound only to
the gateway address of the lab network NET, a random password) in a detached process, and leaves in DIR the
endpoint as a user writes it (`endpoint`, no password), the password (`password`, 0600) and the pid. `stop`
SIGTERMs that pid; the service then stops its server and removes its data.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.ha.datastores import LabDatastore, mariadb_on, postgres_on

START_TIMEOUT_S = 90.0


def network_addresses(network: str) -> tuple[str, str]:
    """(gateway, subnet) of a Docker network."""
    out = subprocess.run(["docker", "network", "inspect", network], capture_output=True, text=True, check=True).stdout
    config = json.loads(out)[0]["IPAM"]["Config"][0]
    subnet = config["Subnet"]
    gateway = config.get("Gateway") or subnet.split("/")[0].rsplit(".", 1)[0] + ".1"
    return gateway, subnet


def _server(kind: str, gateway: str, subnet: str) -> contextlib.AbstractContextManager[LabDatastore]:
    if kind == "postgres":
        return postgres_on(gateway, subnet)
    if kind == "mysql":
        return mariadb_on(gateway)
    raise SystemExit(f"unknown datastore kind {kind!r} (postgres or mysql)")


def serve(kind: str, network: str, state: Path) -> int:
    """Run the datastore until SIGTERM; publish its endpoint and password in ``state``."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    gateway, subnet = network_addresses(network)
    try:
        with _server(kind, gateway, subnet) as store:
            secret = state / "password"
            secret.touch(mode=0o600)
            secret.write_text(store.password, encoding="utf-8")
            (state / "store.json").write_text(json.dumps({"kind": store.kind, "address": store.address,
                                                         "port": store.port}), encoding="utf-8")
            (state / "endpoint").write_text(store.endpoint, encoding="utf-8")
            stop.wait()
    except BaseException as exc:  # pytest.skip raises a BaseException: report it, whatever it is
        (state / "error").write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
        return 1
    return 0


def start(kind: str, network: str, state: Path) -> int:
    stop(state)
    state.mkdir(parents=True, exist_ok=True)
    for name in ("endpoint", "password", "error", "store.json"):
        (state / name).unlink(missing_ok=True)
    with (state / "service.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.ha.datastore_service", "serve", "--kind", kind, "--network", network,
             "--state", str(state)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
    (state / "pid").write_text(str(proc.pid), encoding="utf-8")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if (state / "endpoint").exists():
            print((state / "endpoint").read_text(encoding="utf-8"))
            return 0
        if proc.poll() is not None:
            error = (state / "error").read_text(encoding="utf-8") if (state / "error").exists() else ""
            print(f"the {kind} datastore did not start: {error or 'see ' + str(state / 'service.log')}",
                  file=sys.stderr)
            return 1
        time.sleep(0.3)
    stop(state)
    print(f"the {kind} datastore did not start within {START_TIMEOUT_S:.0f}s", file=sys.stderr)
    return 1


def stop(state: Path) -> int:
    pid_file = state / "pid"
    if not pid_file.exists():
        return 0
    pid = int(pid_file.read_text(encoding="utf-8"))
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        for _ in range(150):
            time.sleep(0.2)
            os.kill(pid, 0)
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    pid_file.unlink(missing_ok=True)
    return 0


def rows(state: Path) -> int:
    store = LabDatastore(**json.loads((state / "store.json").read_text(encoding="utf-8")),
                         password=(state / "password").read_text(encoding="utf-8"))
    print(store.kine_rows())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.ha.datastore_service")
    parser.add_argument("action", choices=["start", "serve", "stop", "rows"])
    parser.add_argument("--kind", default="postgres", choices=["postgres", "mysql"])
    parser.add_argument("--network", default="")
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.action in ("start", "serve") and not args.network:
        parser.error(f"{args.action} needs --network")
    if args.action == "start":
        return start(args.kind, args.network, args.state)
    if args.action == "serve":
        return serve(args.kind, args.network, args.state)
    if args.action == "rows":
        return rows(args.state)
    return stop(args.state)


if __name__ == "__main__":
    sys.exit(main())
