"""Facts about the machine the stand-in runs on: addresses, hostname, OS, plus sd_notify."""

from __future__ import annotations

import ipaddress
import os
import platform
import socket
import subprocess


def hostname() -> str:
    """Lower-cased short host name, what k3s uses as the default node name."""
    return socket.gethostname().split(".")[0].lower()


def ipv4_addresses() -> list[str]:
    """Non-loopback IPv4 addresses of this host, default-route interface first when known."""
    found: list[str] = []
    try:
        out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=5,
                             check=False).stdout
        for line in out.splitlines():
            parts = line.split()
            if "inet" in parts:
                addr = parts[parts.index("inet") + 1].split("/")[0]
                if not ipaddress.ip_address(addr).is_loopback:
                    found.append(addr)
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    if not found:
        found = _ioctl_addresses()
    primary = _default_route_source()
    if primary in found:
        found.remove(primary)
        found.insert(0, primary)
    return list(dict.fromkeys(found))


def _ioctl_addresses() -> list[str]:
    import fcntl
    import struct

    result = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
                addr = socket.inet_ntoa(packed[20:24])
                if not ipaddress.ip_address(addr).is_loopback:
                    result.append(addr)
            except OSError:
                continue
    finally:
        sock.close()
    return result


def _default_route_source() -> str:
    """Source address the kernel would pick for the default route (no packet is sent)."""
    try:
        with open("/proc/net/route") as handle:
            if not any(line.split()[1] == "00000000" for line in handle.readlines()[1:] if line.split()):
                return ""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1; connect() on UDP only selects a route
            return str(sock.getsockname()[0])
        finally:
            sock.close()
    except (OSError, IndexError):
        return ""


def os_image() -> str:
    try:
        with open("/etc/os-release") as handle:
            for line in handle:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def kernel_version() -> str:
    return platform.release()


def sd_notify(state: str) -> bool:
    """Send ``state`` to $NOTIFY_SOCKET (AF_UNIX datagram; ``@`` means the abstract namespace)."""
    target = os.environ.get("NOTIFY_SOCKET", "")
    if not target:
        return False
    address = "\0" + target[1:] if target.startswith("@") else target
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.connect(address)
        sock.sendall(state.encode())
        return True
    except OSError:
        return False
    finally:
        sock.close()
