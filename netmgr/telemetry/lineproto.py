"""A fast InfluxDB line-protocol encoder that never lets one bad value spoil a batch.

Rules (InfluxDB 1.x/2.x and VictoriaMetrics read every line the same way):

- measurement: ``,`` and space escaped; tag keys, tag values, field keys: ``,``,
  ``=`` and space escaped; string field values: ``"`` and ``\\`` escaped.
- CR and LF anywhere (names, tag values, strings) become a space: line protocol
  has no escape for them, and a raw newline would end the line (counted as
  ``sanitized``).
- A backslash that ends a name or tag value, or stands before ``\\``, ``,``,
  ``=``, ``"`` or a space, cannot be written unambiguously (InfluxDB and
  VictoriaMetrics unescape it differently): it becomes ``/`` (``sanitized``).
  Other backslashes are kept.
- Strings longer than :data:`MAX_STRING` characters (field values) or
  :data:`MAX_TAG` characters (names and tag values) are truncated (``truncated``).
- A ``"`` in a field key becomes ``'`` (VictoriaMetrics skips a line with a
  quote in a field key, however escaped) (``sanitized``).
- A measurement starting with ``#`` (a comment line) starts with ``_`` instead
  (``sanitized``). Empty tag keys or values are left out; the keys ``time``, ``_measurement`` and
  ``_field`` are refused by InfluxDB and dropped (``bad_keys``).
- NaN and ±infinity fields are dropped (``nonfinite``); integers outside int64
  and values of other types are dropped (``bad_values``).
- Field types: the first type seen for a (measurement, field) wins, seeded from
  the schema (:data:`netmgr.telemetry.points.SCHEMA`) and corrected by what the
  server reports (:meth:`Encoder.learn`). An int for a float field is written as
  a float (lossless); any other mismatch drops that field only
  (``type_conflicts``). InfluxDB rejects a *whole batch* with a type conflict
  inside it, so this must be settled before the batch leaves.
- A point left with no field is dropped (``points_dropped``); its neighbours and
  its own good fields are never lost to a bad field.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from netmgr.telemetry.points import SCHEMA, Point

log = logging.getLogger(__name__)

MAX_STRING = 1024  # characters of a string field value
MAX_TAG = 256  # characters of a measurement, key or tag value
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
RESERVED_KEYS = frozenset({"time", "_measurement", "_field"})
SERIES_CACHE_MAX = 200_000

_MEAS = str.maketrans({",": "\\,", " ": "\\ "})
_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_STR = str.maketrans({"\\": "\\\\", '"': '\\"'})
_NEWLINE = re.compile(r"[\r\n]")
_NEEDS_CLEANING = re.compile(r"[\r\n\\]")
_BAD_BACKSLASH = re.compile(r'\\(?=[\\,= "]|$)')
_KIND_NAMES = {"integer": "i", "float": "f", "string": "s", "boolean": "b", "unsigned": "u"}

COUNTERS = ("lines", "points_dropped", "nonfinite", "type_conflicts", "truncated", "sanitized",
            "bad_values", "bad_keys")


class Encoder:
    """Points to line protocol (ns timestamps); counters say what was dropped or changed.

    One encoder per pipeline: it remembers field types and caches series keys.
    Not thread-safe.
    """

    def __init__(self, schema: dict[str, dict[str, str]] | None = None) -> None:
        self._types: dict[str, dict[str, str]] = {m: dict(f) for m, f in (SCHEMA if schema is None
                                                                          else schema).items()}
        self._series: dict[tuple[Any, ...], str] = {}
        self._fkeys: dict[str, str] = {}
        self._esc: dict[str, str] = {}  # cleaned tag key or value -> escaped
        # measurement -> raw field key -> ("escaped_key=", kind): the hot path's one lookup
        self._fm: dict[str, dict[Any, tuple[str, str]]] = {}
        self.lines = 0
        self.points_dropped = 0
        self.nonfinite = 0
        self.type_conflicts = 0
        self.truncated = 0
        self.sanitized = 0
        self.bad_values = 0
        self.bad_keys = 0

    def stats(self) -> dict[str, int]:
        """The counters, for health and the ``netmgr`` measurement."""
        return {k: getattr(self, k) for k in COUNTERS}

    def learn(self, measurement: str, field: str, kind: str) -> None:
        """The server says ``field`` of ``measurement`` has type ``kind`` ("integer", "float",
        "string", "boolean" or i/f/s): values of another type are dropped from now on."""
        self._types.setdefault(measurement, {})[field] = _KIND_NAMES.get(kind, kind)
        self._fm.get(measurement, {}).pop(field, None)

    # ------------------------------------------------------------------ names

    def _clean(self, s: str, cap: int) -> str:
        """A name or tag value made writable (see the module rules); counts what it changed."""
        if len(s) <= cap and _NEEDS_CLEANING.search(s) is None:
            return s
        if "\n" in s or "\r" in s:
            s = _NEWLINE.sub(" ", s)
            self.sanitized += 1
        if len(s) > cap:
            s = s[:cap]
            self.truncated += 1
        if "\\" in s:
            fixed = _BAD_BACKSLASH.sub("/", s)
            if fixed != s:
                s = fixed
                self.sanitized += 1
        return s

    def _series_key(self, measurement: Any, tags: dict[Any, Any]) -> tuple[str, bool]:
        """The escaped ``measurement,k=v,...`` (tags sorted by key); and whether it was clean."""
        before = self.sanitized + self.truncated + self.bad_keys
        m = self._clean(str(measurement), MAX_TAG).translate(_MEAS)
        if not m:
            return "", False
        if m[0] == "#":  # a line starting with "#" is a comment: the server would skip it silently
            m = "_" + m[1:]
            self.sanitized += 1
        pairs: dict[str, str] = {}
        for k, v in tags.items():
            if v is None:
                continue
            ck = self._clean(str(k), MAX_TAG)
            cv = self._clean(v if type(v) is str else str(v), MAX_TAG)
            if not ck or not cv:
                continue
            if ck in RESERVED_KEYS:
                self.bad_keys += 1
                continue
            if ck in pairs:  # two keys that clean to one: keep the first
                self.sanitized += 1
                continue
            pairs[ck] = cv
        parts = [m]
        esc = self._esc
        for ck in sorted(pairs):
            cv = pairs[ck]
            ek = esc.get(ck) or esc.setdefault(ck, ck.translate(_KEY))
            ev = esc.get(cv)
            if ev is None:
                ev = cv.translate(_KEY)
                if len(esc) < 100_000:  # zones, vendors, interface names: the same few over and over
                    esc[cv] = ev
            parts.append(f"{ek}={ev}")
        return ",".join(parts), before == self.sanitized + self.truncated + self.bad_keys

    def _field_key(self, k: Any) -> str:
        if type(k) is str:
            cached = self._fkeys.get(k)
            if cached is not None:
                return cached
        before = self.sanitized + self.truncated
        ck = self._clean(str(k), MAX_TAG)
        if '"' in ck:  # VictoriaMetrics drops a whole line with a quote in a field key
            ck = ck.replace('"', "'")
            self.sanitized += 1
        if not ck:
            self.bad_keys += 1
            return ""
        if ck in RESERVED_KEYS:
            self.bad_keys += 1
            return ""
        ek = ck.translate(_KEY)
        if type(k) is str and before == self.sanitized + self.truncated and len(self._fkeys) < 10_000:
            self._fkeys[k] = ek
        return ek

    # ------------------------------------------------------------------ values

    def _slow_value(self, v: Any) -> tuple[str, str] | None:
        """(kind, text) of a value that is not exactly int/float/str/bool (numpy, subclasses)."""
        if isinstance(v, bool):
            return "i", "1i" if v else "0i"
        if isinstance(v, int):
            iv = int(v)
            if INT64_MIN <= iv <= INT64_MAX:
                return "i", f"{iv}i"
            return None
        if isinstance(v, float):
            fv = float(v)
            if fv - fv != 0.0:
                self.nonfinite += 1
                return "", ""
            return "f", repr(fv)
        if isinstance(v, str):
            return "s", self._string(str(v))
        return None

    def _string(self, v: str) -> str:
        if "\n" in v or "\r" in v:
            v = _NEWLINE.sub(" ", v)
            self.sanitized += 1
        if len(v) > MAX_STRING:
            v = v[:MAX_STRING]
            self.truncated += 1
        if "\\" in v or '"' in v:
            v = v.translate(_STR)
        return f'"{v}"'

    # ------------------------------------------------------------------ points

    def _value(self, v: Any) -> tuple[str, str] | None:
        """(kind, text) of a field value; None if it cannot be written (counted)."""
        t = type(v)
        if t is float:
            if v - v != 0.0:  # NaN or ±inf
                self.nonfinite += 1
                return None
            return "f", repr(v)
        if t is int:
            if not INT64_MIN <= v <= INT64_MAX:
                self.bad_values += 1
                return None
            return "i", f"{v}i"
        if t is str:
            return "s", self._string(v)
        r = self._slow_value(v)
        if r is None:
            self.bad_values += 1
            return None
        return r if r[0] else None

    def _new_field(self, m: str, fm: dict[Any, tuple[str, str]], k: Any, v: Any) -> str | None:
        """A field not in the per-measurement cache yet (or whose key needs cleaning)."""
        if v is None:
            return None
        r = self._value(v)
        if r is None:
            return None
        kind, text = r
        types = self._types.setdefault(m, {})
        known = types.get(k)
        if known is None:
            types[k] = known = kind
        elif known != kind:
            if known == "f" and kind == "i":
                text = text[:-1]  # an int where floats are stored: written as the same float
            else:
                self.type_conflicts += 1
                return None
        before = self.sanitized + self.truncated
        ek = self._field_key(k)
        if not ek:
            return None
        if before == self.sanitized + self.truncated and type(k) is str:
            fm[k] = (ek + "=", known)
        return f"{ek}={text}"

    def _dedup(self, parts: list[str]) -> list[str]:
        """Keys that clean to the same text (``"a\\n"`` and ``"a "``): the first one stays."""
        seen: set[str] = set()
        out = []
        for part in parts:
            key = part[:_scan(part, 0, "=")]
            if key in seen:
                self.sanitized += 1
                continue
            seen.add(key)
            out.append(part)
        return out

    def line(self, p: Point) -> str | None:
        """One point as a line (no newline), or None if nothing of it can be written."""
        m = p.measurement
        tags = p.tags
        try:
            # Flat (measurement, keys..., values...): cheaper to build and hash than item pairs,
            # and unambiguous (n tags always make 2n + 1 elements).
            ck: tuple[Any, ...] = (m, *tags, *tags.values())
            key = self._series.get(ck)
        except TypeError:  # an unhashable tag value: no cache for this one
            ck, key = (), None
        if key is None:
            key, clean = self._series_key(m, tags)
            if not key:
                self.points_dropped += 1
                return None
            if clean and ck:
                if len(self._series) >= SERIES_CACHE_MAX:
                    self._series.clear()
                self._series[ck] = key
        ts = p.ts_ns
        if type(ts) is not int:
            self.bad_values += 1
            self.points_dropped += 1
            return None
        fm = self._fm.get(m)
        if fm is None:
            fm = self._fm[m] = {}
        parts = []
        append = parts.append
        slow = False
        for k, v in p.fields.items():
            info = fm.get(k)
            if info is None:
                slow = True
                text = self._new_field(m, fm, k, v)
                if text is not None:
                    append(text)
                continue
            t = type(v)
            if t is float:
                if info[1] != "f":
                    self.type_conflicts += 1
                elif v - v != 0.0:  # NaN or ±inf
                    self.nonfinite += 1
                else:
                    append(info[0] + repr(v))
            elif t is int:
                kind = info[1]
                if not INT64_MIN <= v <= INT64_MAX:
                    self.bad_values += 1
                elif kind == "i":
                    append(f"{info[0]}{v}i")
                elif kind == "f":
                    append(f"{info[0]}{v}")  # an int where floats are stored: the same float
                else:
                    self.type_conflicts += 1
            elif t is str:
                if info[1] == "s":
                    append(info[0] + self._string(v))
                else:
                    self.type_conflicts += 1
            elif v is not None:
                slow = True
                text = self._new_field(m, fm, k, v)
                if text is not None:
                    append(text)
        if slow and len(parts) > 1:
            parts = self._dedup(parts)
        if not parts:
            self.points_dropped += 1
            return None
        self.lines += 1
        return f"{key} {','.join(parts)} {ts}"

    def encode(self, points: Iterable[Point]) -> tuple[bytes, int]:
        """A batch as newline-separated line protocol (UTF-8) and its number of lines."""
        lines = []
        for p in points:
            try:
                line = self.line(p)
            except Exception:
                log.exception("telemetry: cannot encode point measurement=%r", getattr(p, "measurement", "?"))
                self.points_dropped += 1
                continue
            if line is not None:
                lines.append(line)
        if not lines:
            return b"", 0
        text = "\n".join(lines)
        try:
            return text.encode("utf-8"), len(lines)
        except UnicodeEncodeError:  # lone surrogates: no valid UTF-8 for them
            self.sanitized += 1
            return text.encode("utf-8", "replace"), len(lines)


# --------------------------------------------------------------------------- reading lines back


def _scan(s: str, i: int, stops: str, quotes: bool = False) -> int:
    """Index of the first unescaped character of ``stops`` from ``i`` (outside quotes if asked)."""
    n = len(s)
    inq = False
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n:
            i += 2
            continue
        if quotes and c == '"':
            inq = not inq
        elif not inq and c in stops:
            return i
        i += 1
    return n


def split_line(line: str) -> tuple[str, list[tuple[str, str]], str]:
    """(series key, [(escaped field key, value text)], timestamp) of a line this module wrote."""
    sp = _scan(line, 0, " ")
    key = line[:sp]
    end = _scan(line, sp + 1, " ", quotes=True)
    fields = []
    i = sp + 1
    while i < end:
        j = _scan(line, i, ",", quotes=True)
        j = min(j, end)
        eq = _scan(line, i, "=")
        fields.append((line[i:eq], line[eq + 1:j]))
        i = j + 1
    return key, fields, line[end + 1:]


def unescape_name(s: str) -> str:
    """A measurement, key or tag value as the server stores it."""
    return s.replace("\\,", ",").replace("\\=", "=").replace("\\ ", " ")


def measurement_of(key: str) -> str:
    return unescape_name(key[:_scan(key, 0, ",")])


def kind_of(value_text: str) -> str:
    """i, u, s, b or f: the type a value in line protocol has."""
    if value_text.startswith('"'):
        return "s"
    last = value_text[-1:]
    if last == "i":
        return "i"
    if last == "u":
        return "u"
    if value_text in ("t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"):
        return "b"
    return "f"


def drop_field(lines: list[str], measurement: str, field: str, keep_kind: str) -> tuple[list[str], int]:
    """Remove ``field`` from the lines of ``measurement`` where its type is not ``keep_kind``;
    lines left with no field go. Returns the new lines and how many fields were removed."""
    out = []
    removed = 0
    for line in lines:
        key, fields, ts = split_line(line)
        if measurement_of(key) != measurement:
            out.append(line)
            continue
        kept = [(k, v) for k, v in fields if unescape_name(k) != field or kind_of(v) == keep_kind]
        if len(kept) == len(fields):
            out.append(line)
            continue
        removed += len(fields) - len(kept)
        if kept:
            out.append(f"{key} {','.join(f'{k}={v}' for k, v in kept)} {ts}")
    return out, removed
