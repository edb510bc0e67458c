"""A small InfluxQL query builder, and Grafana's way of expanding what the queries leave open.

The dashboards and the alert rules build every query here, so a query is written
once and reads the same in a panel, in an alert and in the tests that run it on
a real InfluxDB engine. Grafana's SDK has no InfluxQL model; these are raw
queries (``rawQuery: true``) in the InfluxDB data source's query model.

``Select`` is immutable: every method returns a new query::

    Select("ap").field(fn("last", "up"), "up").where(TIME_FILTER).by_tags("ap").render()
    # SELECT last("up") AS "up" FROM "ap" WHERE $timeFilter GROUP BY "ap"

:func:`expand` is what Grafana does to a raw InfluxQL query before it reaches
InfluxDB: ``$timeFilter``, ``$__interval``, ``$__interval_ms`` and the dashboard's
template variables. It follows the InfluxDB data source of Grafana 11-13
(``interpolateQueryExpr`` in public/app/plugins/datasource/influxdb/datasource.ts
and ``Query.Build`` in pkg/tsdb/influxdb/models/query.go): a multi-value or
"All" variable becomes ``(a|b)`` with each value regex-escaped; a single value is
regex-escaped only where it stands inside a ``=~ /.../`` or ``!~ /.../`` literal;
a custom "All" value (``allValue``) goes in as is.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netmgr.errors import QueryError

TIME_FILTER = "$timeFilter"
INTERVAL = "$__interval"
FILLS = ("null", "none", "previous", "linear")
ALL = "$__all"


def ident(name: str) -> str:
    """``name`` as a double-quoted InfluxQL identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def string(value: str) -> str:
    """``value`` as a single-quoted InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fn(name: str, fld: str | Expr, *args: str | int | float) -> Expr:
    """``name("fld", args...)``: an InfluxQL function of a field (or of another function)."""
    inner = fld.text if isinstance(fld, Expr) else ident(fld)
    extra = "".join(f", {a}" for a in args)
    return Expr(f"{name}({inner}{extra})")


def col(fld: str) -> Expr:
    """A bare field or tag, as selected in a raw (non-aggregated) query."""
    return Expr(ident(fld))


@dataclass(frozen=True)
class Expr:
    """A piece of a SELECT list; ``/`` and ``-`` combine two of them."""

    text: str

    def __truediv__(self, other: Expr | float) -> Expr:
        return Expr(f"{self.text} / {other.text if isinstance(other, Expr) else other}")

    def __sub__(self, other: Expr | float) -> Expr:
        return Expr(f"{self.text} - {other.text if isinstance(other, Expr) else other}")

    def __mul__(self, other: Expr | float) -> Expr:
        return Expr(f"{self.text} * {other.text if isinstance(other, Expr) else other}")


def tag_is(tag: str, value: str) -> str:
    """``"tag" = 'value'``."""
    return f"{ident(tag)} = {string(value)}"


def tag_matches(tag: str, pattern: str) -> str:
    """``"tag" =~ /pattern/`` (``pattern`` as written: template variables are expanded later)."""
    if "\n" in pattern:
        raise QueryError(f"regex for tag {tag!r} spans lines: {pattern!r}")
    return f"{ident(tag)} =~ /{pattern}/"


@dataclass(frozen=True)
class Select:
    """One InfluxQL SELECT statement, built step by step (each step returns a new query)."""

    source: str | Select
    fields: tuple[tuple[Expr, str | None], ...] = ()
    conditions: tuple[str, ...] = ()
    interval: str | None = None
    tags: tuple[str, ...] = ()
    fill_with: str | None = None
    descending: bool = False
    limit_to: int | None = None
    series_limit: int | None = None
    tz_name: str | None = None

    def field(self, expr: Expr | str, alias: str | None = None) -> Select:
        """Add ``expr`` (an :class:`Expr`, or a field name) to the SELECT list, as ``alias``."""
        e = expr if isinstance(expr, Expr) else col(expr)
        return dataclasses.replace(self, fields=(*self.fields, (e, alias)))

    def where(self, *conditions: str) -> Select:
        """AND these conditions to the WHERE clause."""
        return dataclasses.replace(self, conditions=(*self.conditions, *conditions))

    def in_time_range(self) -> Select:
        """Restrict to the dashboard's (or the alert's) time range: ``$timeFilter``."""
        return self.where(TIME_FILTER)

    def by_time(self, interval: str = INTERVAL) -> Select:
        """GROUP BY time(interval); Grafana's ``$__interval`` unless told otherwise."""
        return dataclasses.replace(self, interval=interval)

    def by_tags(self, *tags: str) -> Select:
        """GROUP BY these tags (one series per combination)."""
        return dataclasses.replace(self, tags=(*self.tags, *tags))

    def fill(self, how: str | int | float) -> Select:
        """What empty time buckets hold: null, none, previous, linear or a number."""
        text = str(how)
        if text not in FILLS and not re.fullmatch(r"-?\d+(\.\d+)?", text):
            raise QueryError(f"fill({text}) on {self._name()}: use one of {', '.join(FILLS)} or a number")
        return dataclasses.replace(self, fill_with=text)

    def newest_first(self) -> Select:
        """ORDER BY time DESC."""
        return dataclasses.replace(self, descending=True)

    def limit(self, n: int) -> Select:
        """At most ``n`` points per series."""
        return dataclasses.replace(self, limit_to=n)

    def slimit(self, n: int) -> Select:
        """At most ``n`` series."""
        return dataclasses.replace(self, series_limit=n)

    def tz(self, name: str) -> Select:
        """Bucket days in this time zone (e.g. Asia/Ho_Chi_Minh)."""
        return dataclasses.replace(self, tz_name=name)

    def _name(self) -> str:
        return self.source if isinstance(self.source, str) else f"({self.source._name()})"

    def render(self) -> str:
        """The query text (template variables and ``$timeFilter`` left for Grafana)."""
        if not self.fields:
            raise QueryError(f"SELECT from {self._name()} has no fields")
        if self.fill_with is not None and self.interval is None:
            raise QueryError(f"fill({self.fill_with}) on {self._name()} needs GROUP BY time()")
        parts = ["SELECT " + ", ".join(e.text + (f" AS {ident(a)}" if a else "") for e, a in self.fields)]
        if isinstance(self.source, Select) and self.source.fill_with in ("previous", "linear"):
            # InfluxDB 1.6 then returns the outer query's rows ungrouped (one per inner row,
            # times out of order): seen on the real engine in tests/integration.
            raise QueryError(f"fill({self.source.fill_with}) inside a subquery of {self._name()} breaks "
                             "the outer GROUP BY time on InfluxDB 1.x; use fill(none) inside")
        src = ident(self.source) if isinstance(self.source, str) else f"({self.source.render()})"
        parts.append(f"FROM {src}")
        if self.conditions:
            parts.append("WHERE " + " AND ".join(self.conditions))
        groups = ([f"time({self.interval})"] if self.interval else []) + [ident(t) for t in self.tags]
        if groups:
            parts.append("GROUP BY " + ", ".join(groups))
        if self.fill_with is not None:
            parts.append(f"fill({self.fill_with})")
        if self.descending:
            parts.append("ORDER BY time DESC")
        if self.limit_to is not None:
            parts.append(f"LIMIT {self.limit_to}")
        if self.series_limit is not None:
            parts.append(f"SLIMIT {self.series_limit}")
        if self.tz_name:
            parts.append(f"tz({string(self.tz_name)})")
        return " ".join(parts)

    def __str__(self) -> str:
        return self.render()


def show_tag_values(measurement: str | Sequence[str], key: str | Sequence[str]) -> str:
    """``SHOW TAG VALUES FROM "m" WITH KEY = "k"`` (a template variable's query)."""
    src = (ident(measurement) if isinstance(measurement, str)
           else "/^(" + "|".join(re.escape(m) for m in measurement) + ")$/")
    if isinstance(key, str):
        return f"SHOW TAG VALUES FROM {src} WITH KEY = {ident(key)}"
    return f"SHOW TAG VALUES FROM {src} WITH KEY IN (" + ", ".join(ident(k) for k in key) + ")"


# --------------------------------------------------------------------------- Grafana's expansion


@dataclass(frozen=True)
class Variable:
    """A template variable as Grafana expands it: its current value(s) and how it was declared."""

    name: str
    value: str | Sequence[str]
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    options: Sequence[str] = ()


_REGEX_SPECIALS = re.compile(r"[\\^$*+?.()|\[\]{}/]")
# The regex literals of a query, as Grafana's InfluxDB data source finds them.
_REGEX_LITERAL = re.compile(
    r"(\s*(=|!)~\s*)/((?![*+?])(?:[^\r\n\[/\\]|\\.|\[(?:[^\r\n\]\\]|\\.)*\])+)/"
    r"((?:g(?:im?|mi?)?|i(?:gm?|mg?)?|m(?:gi?|ig?)?)?)", re.M)


def escape_regex(value: str) -> str:
    """@grafana/data's escapeRegex: backslash every regex special character and ``/``."""
    return _REGEX_SPECIALS.sub(lambda m: "\\" + m.group(0), value)


def _is_number(value: str) -> bool:
    # JavaScript's !isNaN(parseFloat(value)): a leading number is enough.
    return re.match(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", value) is not None or \
        value.strip().startswith(("Infinity", "+Infinity", "-Infinity"))


def _format_value(var: Variable, value: str | Sequence[str], query: str) -> str:
    if isinstance(value, str) and _is_number(value):
        return value
    if var.multi:
        if isinstance(value, str):
            return escape_regex(value)
        return "(" + "|".join(escape_regex(v) for v in value) + ")"
    in_regex = re.compile(r"/(?:\^)?(.*)(\$" + re.escape(var.name) + r")(.*)(?:\$)?/")
    for m in _REGEX_LITERAL.finditer(query):
        if in_regex.search(m.group(0)):
            return escape_regex(value) if isinstance(value, str) else \
                "(" + "|".join(escape_regex(v) for v in value) + ")"
    return value if isinstance(value, str) else ",".join(value)


def _variable_text(var: Variable, query: str) -> str:
    value = var.value
    if value == ALL or (not isinstance(value, str) and list(value) == [ALL]):
        if var.all_value is not None:
            return var.all_value  # Grafana does not format a custom "All" value
        value = list(var.options)
    return _format_value(var, value, query)


def round_interval(ms: float) -> int:
    """Grafana's rangeutil.roundInterval: a raw interval (ms) to the nearest 'nice' one."""
    steps = [(15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000),
             (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000),
             (45000, 30000), (90000, 60000), (210000, 120000), (450000, 300000),
             (1050000, 600000), (2100000, 1800000), (5400000, 3600000), (9000000, 7200000),
             (16200000, 10800000), (32400000, 21600000), (86400000, 43200000),
             (604800000, 86400000), (1814400000, 604800000), (3628800000, 2592000000)]
    for limit, nice in steps:
        if ms < limit:
            return nice
    return 31536000000


_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000,
             "y": 31_536_000_000}


def parse_interval(text: str) -> int:
    """``"1m"`` -> 60000 (ms); the panel's min interval, Grafana style (``>1m`` allowed)."""
    m = re.fullmatch(r">?(\d+)(ms|s|m|h|d|w|y)", text.strip())
    if not m:
        raise QueryError(f"not an interval: {text!r} (use e.g. 30s, 1m, 1h)")
    return int(m.group(1)) * _UNITS_MS[m.group(2)]


def format_interval(ms: int) -> str:
    """Grafana's gtime.FormatInterval: the largest whole unit (1m, 30s, 200ms, 2h, 1d)."""
    for unit in ("y", "d", "h", "m", "s", "ms"):
        if ms >= _UNITS_MS[unit]:
            return f"{ms // _UNITS_MS[unit]}{unit}"
    return "1ms"


def panel_interval_ms(from_ms: int, to_ms: int, max_data_points: int = 1000,
                      min_interval: str | None = None) -> int:
    """``$__interval`` of a panel in ms: the range over its data points, rounded, not below
    the panel's min interval (as Grafana computes it)."""
    raw = max((to_ms - from_ms) / max(max_data_points, 1), 1)
    ms = round_interval(raw)
    if min_interval:
        ms = max(ms, parse_interval(min_interval))
    return ms


def expand(query: str, *, from_ms: int, to_ms: int, interval_ms: int,
           variables: Mapping[str, Variable] | Sequence[Variable] = ()) -> str:
    """The query InfluxDB receives from Grafana for this time range, interval and variables."""
    vars_ = dict(variables) if isinstance(variables, Mapping) else {v.name: v for v in variables}
    text = query.replace(TIME_FILTER, f"time >= {from_ms}ms and time <= {to_ms}ms")
    interval = format_interval(interval_ms)
    text = text.replace("$__interval_ms", str(interval_ms)).replace("$__interval", interval)
    text = re.sub(r"\$interval\b", interval, text)

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        var = vars_.get(name)
        if var is None:
            return m.group(0)
        return _variable_text(var, text)

    out = re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, text)
    if leftover := re.findall(r"\$\{?(\w+)", out):
        raise QueryError(f"unknown template variable(s) {sorted(set(leftover))} in {query!r}")
    return out
