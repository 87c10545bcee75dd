"""klog-formatted lines on stderr (``W0102 15:04:05.000000   1234 file.go:42] message``), as kubeadm and the
kubelet log; line numbers are fixed per file here, not the upstream ones."""

from __future__ import annotations

import datetime
import os
import sys

_LINES = {"common.go": 101, "initconfiguration.go": 326, "strict.go": 47, "checks.go": 1080, "run.go": 74,
          "version.go": 104, "kubelet.go": 2900, "token.go": 220, "utils.go": 69, "reset.go": 123}


def _line(level: str, source: str, message: str) -> str:
    now = datetime.datetime.now()
    lineno = _LINES.get(source, 1)
    return f"{level}{now:%m%d %H:%M:%S}.{now.microsecond:06d} {os.getpid():7d} {source}:{lineno}] {message}\n"


def warning(source: str, message: str) -> None:
    sys.stderr.write(_line("W", source, message))
    sys.stderr.flush()


def info(source: str, message: str) -> None:
    sys.stderr.write(_line("I", source, message))
    sys.stderr.flush()


def error(source: str, message: str) -> None:
    sys.stderr.write(_line("E", source, message))
    sys.stderr.flush()
