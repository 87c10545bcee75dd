"""A subset of kubectl's JSONPath templates: fields, ``[*]``, ``[N]``, filters, range/end, literals."""

from __future__ import annotations

import json
import re
from typing import Any

_TOKEN = re.compile(r"\{([^{}]*)\}")
_FILTER = re.compile(r"^\?\(@\.([\w.\-/]+)\s*(==|!=)\s*(?:\"([^\"]*)\"|'([^']*)'|(\S+))\)$")


class JsonPathError(Exception):
    """Template that cannot be parsed or evaluated."""


def _split_path(expr: str) -> list[str]:
    parts: list[str] = []
    i = 0
    expr = expr.strip()
    if expr.startswith("$"):
        expr = expr[1:]
    while i < len(expr):
        ch = expr[i]
        if ch == ".":
            j = i + 1
            while j < len(expr) and expr[j] not in ".[":
                j += 1
            if j > i + 1:
                parts.append(expr[i + 1:j])
            i = j
        elif ch == "[":
            depth, j = 0, i
            while j < len(expr):
                if expr[j] == "[":
                    depth += 1
                elif expr[j] == "]":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            parts.append("[" + expr[i + 1:j] + "]")
            i = j + 1
        else:
            j = i
            while j < len(expr) and expr[j] not in ".[":
                j += 1
            parts.append(expr[i:j])
            i = j
    return parts


def _step(values: list[Any], part: str) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if part.startswith("["):
            inner = part[1:-1].strip()
            if not isinstance(value, list):
                continue
            if inner in ("*", ""):
                out.extend(value)
            elif inner.startswith("?"):
                match = _FILTER.match(inner)
                if not match:
                    raise JsonPathError(f"unsupported filter {inner}")
                field, op = match.group(1), match.group(2)
                want = next(g for g in match.groups()[2:] if g is not None)
                for item in value:
                    got = evaluate(item, "." + field)
                    text = _text(got[0]) if got else None
                    if (text == want) == (op == "=="):
                        out.append(item)
            elif ":" in inner:
                start, _, end = inner.partition(":")
                out.extend(value[int(start or 0):int(end) if end else None])
            else:
                try:
                    out.append(value[int(inner)])
                except (ValueError, IndexError):
                    continue
        elif part == "*":
            if isinstance(value, dict):
                out.extend(value.values())
            elif isinstance(value, list):
                out.extend(value)
        elif isinstance(value, dict) and part in value:
            out.append(value[part])
    return out


def evaluate(obj: Any, expr: str) -> list[Any]:
    values = [obj]
    for part in _split_path(expr):
        values = _step(values, part)
    return values


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def render(template: str, obj: Any) -> str:
    """Render a kubectl ``-o jsonpath=`` template."""
    template = template.strip()
    if template.startswith("'") and template.endswith("'"):
        template = template[1:-1]
    if "{" not in template:
        template = "{" + template + "}"
    pieces: list[tuple[str, str]] = []
    pos = 0
    for match in _TOKEN.finditer(template):
        if match.start() > pos:
            pieces.append(("text", template[pos:match.start()]))
        pieces.append(("expr", match.group(1)))
        pos = match.end()
    if pos < len(template):
        pieces.append(("text", template[pos:]))
    out, _ = _run(pieces, 0, obj)
    return out


def _run(pieces: list[tuple[str, str]], index: int, obj: Any) -> tuple[str, int]:
    out = ""
    while index < len(pieces):
        kind, value = pieces[index]
        if kind == "text":
            out += value
            index += 1
            continue
        expr = value.strip()
        if expr == "end":
            return out, index + 1
        if expr.startswith("range "):
            items = evaluate(obj, expr[len("range "):])
            end_index = index + 1
            for item in items:
                text, end_index = _run(pieces, index + 1, item)
                out += text
            if not items:
                _, end_index = _run(pieces, index + 1, {})
            index = end_index
            continue
        if expr.startswith('"') and expr.endswith('"'):
            out += json.loads(expr, strict=False)
        elif expr.startswith("'") and expr.endswith("'"):
            out += expr[1:-1]
        else:
            out += " ".join(_text(v) for v in evaluate(obj, expr))
        index += 1
    return out, index
