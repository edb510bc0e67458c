"""An independent line-protocol reader, written from InfluxDB's rules (not from netmgr's encoder).

The encoder's tests parse what it wrote with this and compare with what went in.
"""

from __future__ import annotations

import re


def _read_name(s: str, i: int, stops: str) -> tuple[str, int]:
    """Read until an unescaped stop character; ``\\x`` for x in , = space is x, other backslashes stay."""
    out = []
    while i < len(s) and s[i] not in stops:
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in ", =":
            out.append(s[i + 1])
            i += 2
            continue
        out.append(s[i])
        i += 1
    return "".join(out), i


def _read_value(s: str, i: int) -> tuple[object, int]:
    if s[i] == '"':
        out = []
        i += 1
        while s[i] != '"':
            if s[i] == "\\" and s[i + 1] in '\\"':
                out.append(s[i + 1])
                i += 2
                continue
            out.append(s[i])
            i += 1
        return "".join(out), i + 1
    j = i
    while j < len(s) and s[j] not in ", ":
        j += 1
    raw = s[i:j]
    if raw.endswith("i"):
        return int(raw[:-1]), j
    if raw in ("t", "T", "true", "True", "TRUE"):
        return True, j
    if raw in ("f", "F", "false", "False", "FALSE"):
        return False, j
    v = float(raw)
    assert re.fullmatch(r"-?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?", raw), raw
    return v, j


def parse(line: str) -> tuple[str, dict[str, str], dict[str, object], int]:
    """(measurement, tags, fields, timestamp) of one line; AssertionError if it is not valid."""
    assert "\n" not in line and "\r" not in line
    m, i = _read_name(line, 0, ", ")
    assert m
    tags: dict[str, str] = {}
    while line[i] == ",":
        k, i = _read_name(line, i + 1, "=")
        assert line[i] == "="
        v, i = _read_name(line, i + 1, ", ")
        assert k and v and k not in tags
        tags[k] = v
    assert line[i] == " "
    i += 1
    fields: dict[str, object] = {}
    while True:
        k, i = _read_name(line, i, "=")
        assert line[i] == "=" and k and k not in fields
        v, i = _read_value(line, i + 1)
        fields[k] = v
        if line[i] == " ":
            break
        assert line[i] == ","
        i += 1
    ts = line[i + 1:]
    assert re.fullmatch(r"-?\d+", ts), ts
    return m, tags, fields, int(ts)
