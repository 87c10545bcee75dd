"""logrus-style logging on stderr, because tooling greps k3s journals for these lines.

Format (logrus TextFormatter as k3s configures it):
``time="2024-01-02T03:04:05Z" level=info msg="Starting k3s v1.28.4+k3s2 (abcdef12)"``
"""

from __future__ import annotations

import sys
import threading
import time
from typing import NoReturn

_LOCK = threading.Lock()
_DEBUG = False


def set_debug(enabled: bool) -> None:
    """Enable ``level=debug`` lines (the ``--debug`` flag)."""
    global _DEBUG
    _DEBUG = enabled


def _timestamp() -> str:
    now = time.time()
    local = time.localtime(now)
    offset = local.tm_gmtoff or 0
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", local)
    if offset == 0:
        return stamp + "Z"
    sign = "+" if offset > 0 else "-"
    offset = abs(offset)
    return f"{stamp}{sign}{offset // 3600:02d}:{offset % 3600 // 60:02d}"


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def emit(level: str, msg: str) -> None:
    """Write one log line; ``level`` is info, warning, error, debug or fatal."""
    if level == "debug" and not _DEBUG:
        return
    line = f"time={_quote(_timestamp())} level={level} msg={_quote(msg)}\n"
    with _LOCK:
        sys.stderr.write(line)
        sys.stderr.flush()


def info(msg: str) -> None:
    emit("info", msg)


def warn(msg: str) -> None:
    emit("warning", msg)


def error(msg: str) -> None:
    emit("error", msg)


def debug(msg: str) -> None:
    emit("debug", msg)


class FatalExit(SystemExit):
    """Raised by :func:`fatal` so ``finally`` blocks still run."""


def fatal(msg: str) -> NoReturn:
    """Log at fatal level and exit 1, like logrus.Fatal."""
    emit("fatal", msg)
    raise FatalExit(1)
