"""Is the container runtime really answering on its CRI socket? (kubeadm's CRI check, the kubelet's runtime status)

The socket must accept a connection and speak HTTP/2 (gRPC): the client preface and a SETTINGS frame get a
SETTINGS frame back. When ``ctr`` (shipped with containerd) is on the PATH, the ``cri`` plugin must also be loaded
(``ctr plugins ls`` shows ``io.containerd.grpc.v1 cri ... ok``), since a containerd with CRI disabled answers gRPC but
not the CRI v1 runtime API.
"""

from __future__ import annotations

import shutil
import socket
import subprocess

from . import host, versions

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _socket_path(endpoint: str) -> str:
    return endpoint.split("://", 1)[1] if "://" in endpoint else endpoint


def probe(endpoint: str) -> str | None:
    """None when the runtime answers; else the gRPC-style reason (``rpc error: ...``)."""
    path = _socket_path(endpoint)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(3)
    try:
        try:
            sock.connect(str(host.path(path)))
        except FileNotFoundError:
            return _unavailable(f"dial unix {path}: connect: no such file or directory")
        except ConnectionRefusedError:
            return _unavailable(f"dial unix {path}: connect: connection refused")
        except PermissionError:
            return _unavailable(f"dial unix {path}: connect: permission denied")
        except OSError as exc:
            return _unavailable(f"dial unix {path}: connect: {exc.strerror or exc}")
        try:
            sock.sendall(_PREFACE)
            head = sock.recv(9)
        except OSError:
            head = b""
        if len(head) < 9 or head[3] != 0x04:
            return 'rpc error: code = Unavailable desc = connection closed before server preface received'
    finally:
        sock.close()
    ctr = shutil.which("ctr")
    if ctr:
        result = subprocess.run([ctr, "--address", str(host.path(path)), "plugins", "ls"], capture_output=True,
                                text=True, check=False, timeout=10)
        if result.returncode == 0:
            cri = [line.split() for line in result.stdout.splitlines() if line.split()[:2] ==
                   ["io.containerd.grpc.v1", "cri"]]
            if not cri or cri[0][-1] != "ok":
                return "rpc error: code = Unimplemented desc = unknown service runtime.v1.RuntimeService"
    return None


def _unavailable(detail: str) -> str:
    return f'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: {detail}"'


def preflight_message(endpoint: str, reason: str) -> str:
    """The ``[ERROR CRI]`` text of this kubeadm version (crictl-based before 1.31, the CRI client library after)."""
    quoted = reason.replace('"', '\\"')
    if versions.minor() >= 31:
        return (f"could not connect to the container runtime: failed to create new CRI runtime service: validate "
                f'service connection: validate CRI v1 runtime API for endpoint "{endpoint}": {reason}')
    return (f'container runtime is not running: output: time="{_now()}" level=fatal msg="validate service '
            f'connection: validate CRI v1 runtime API for endpoint \\"{endpoint}\\": {quoted}"\n, error: exit status 1')


def _now() -> str:
    import datetime

    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")
