"""Recurrence: RFC 5545 RRULEs expanded with dateutil in local wall-clock time.

What recurs is the *local* wall-clock time: a program at 06:00 daily plays at
06:00 in the program's zone every day, whatever the UTC offset that day (Vietnam
has no daylight saving; the code does not rely on that). Rules are expanded on
naive local datetimes and each occurrence is then mapped to UTC.

Two protections around dateutil:

* dateutil searches up to year 9999 for a rule that can never match (``BYMONTH=2;
  BYMONTHDAY=30``), which costs seconds per call. Every expansion here runs a
  copy of ``rrule._iter`` whose year ceiling is the end of the window asked for
  (:func:`_bounded`), so a dead rule costs milliseconds.
* Expanding a window years after DTSTART would walk every earlier occurrence;
  for DAILY/WEEKLY/HOURLY/MINUTELY rules without COUNT the start is moved
  forward by whole periods first (:meth:`Recurrence._rule_near`), which changes
  no occurrence.
"""

from __future__ import annotations

import datetime as _dtmod
import functools
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

import dateutil.rrule as _rrmod
from dateutil.rrule import DAILY, HOURLY, MINUTELY, SECONDLY, WEEKLY, rrule, rrulestr

from netmgr.broadcast.timeparse import format_duration, get_tz, parse_until, wall_to_utc
from netmgr.errors import RuleError

MIN_GAP_S = 60
"""Occurrences closer than this are refused: nothing may fire more often than once a minute."""
CHECK_HORIZON_DAYS = 5 * 366
"""How far ahead a rule must fire at least once (Feb 29 rules fire within four years)."""
CHECK_MAX_OCCURRENCES = 10_000
"""How many occurrences the minimum-gap check looks at (a week of a once-a-minute rule)."""
MAX_COUNT = 100_000

FREQ_NAMES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY")
KEY_ORDER = ("FREQ", "INTERVAL", "BYMONTH", "BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY",
             "BYHOUR", "BYMINUTE", "BYSECOND", "BYSETPOS", "WKST")
WEEKDAYS_RULE = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"
DAILY_RULE = "FREQ=DAILY"
_REBASE_PERIOD = {DAILY: timedelta(days=1), WEEKLY: timedelta(days=7),
                  HOURLY: timedelta(hours=1), MINUTELY: timedelta(minutes=1)}


@dataclass(frozen=True)
class ParsedRule:
    """An RRULE split into its pattern (canonical text) and its end (UNTIL text or COUNT)."""

    body: str
    until: str | None
    count: int | None
    freq: str


def _rule_text(text: str) -> str:
    """The RRULE value without a leading ``RRULE:``; refuse an empty or multi-line one."""
    s = str(text).strip()
    if s.upper().startswith("RRULE:"):
        s = s[6:]
    if not s:
        raise RuleError("rrule is empty; e.g. FREQ=WEEKLY;BYDAY=MO,WE,FR")
    if "\n" in s or "\r" in s:
        raise RuleError("rrule must be one RRULE value (no DTSTART/EXDATE lines); give the start separately")
    return s


def _rule_part(item: str, parts: dict[str, str]) -> tuple[str, str]:
    """One ``KEY=VALUE`` part, upper-cased; refuse a malformed, repeated or unsupported one."""
    if "=" not in item:
        raise RuleError(f"rrule part {item!r} is not KEY=VALUE; e.g. FREQ=DAILY;BYHOUR=6")
    key, value = item.split("=", 1)
    key, value = key.strip().upper(), value.strip().upper()
    if key in parts:
        raise RuleError(f"rrule gives {key} twice; give it once")
    if key == "DTSTART":
        raise RuleError("rrule must not contain DTSTART; give the program's start separately")
    if key not in KEY_ORDER and key not in ("UNTIL", "COUNT"):
        raise RuleError(f"rrule part {key} is not supported; use "
                        f"{', '.join(KEY_ORDER)}, UNTIL or COUNT (RFC 5545)")
    if not value:
        raise RuleError(f"rrule part {key} has no value")
    return key, value


def _rule_parts(s: str) -> dict[str, str]:
    """The rule's parts by key, checked one by one from left to right."""
    parts: dict[str, str] = {}
    for item in s.strip(";").split(";"):
        key, value = _rule_part(item, parts)
        parts[key] = value
    return parts


def _check_freq(parts: dict[str, str]) -> str:
    """The FREQ value; refuse a missing or unknown one, or one that fires too often."""
    freq = parts.get("FREQ")
    if freq is None:
        raise RuleError("rrule has no FREQ; start with FREQ=DAILY, FREQ=WEEKLY, ...")
    if freq not in FREQ_NAMES:
        raise RuleError(f"rrule FREQ={freq} is unknown; use one of {', '.join(FREQ_NAMES[:-1])}")
    if freq == "SECONDLY":
        raise RuleError("rrule FREQ=SECONDLY fires more often than once a minute; "
                        "use FREQ=MINUTELY or slower")
    return freq


def _check_bysecond(parts: dict[str, str]) -> None:
    """Refuse several BYSECOND values: they would fire more than once in a minute."""
    if "BYSECOND" in parts and len(parts["BYSECOND"].split(",")) > 1:
        raise RuleError("rrule BYSECOND with several values fires more often than once a minute; "
                        "give one second (or leave BYSECOND out)")


def _rule_count(parts: dict[str, str]) -> int | None:
    """The COUNT value as a number (None if absent); refuse it alongside UNTIL or out of range."""
    if "UNTIL" in parts and "COUNT" in parts:
        raise RuleError("rrule has both UNTIL and COUNT; RFC 5545 allows one of them")
    if "COUNT" not in parts:
        return None
    if not re.fullmatch(r"\d+", parts["COUNT"]) or not 1 <= int(parts["COUNT"]) <= MAX_COUNT:
        raise RuleError(f"rrule COUNT={parts['COUNT']} must be a whole number 1-{MAX_COUNT}")
    return int(parts["COUNT"])


def _check_interval(parts: dict[str, str]) -> None:
    """Refuse an INTERVAL that is not a whole number of at least 1."""
    if "INTERVAL" in parts and (not re.fullmatch(r"\d+", parts["INTERVAL"]) or int(parts["INTERVAL"]) < 1):
        raise RuleError(f"rrule INTERVAL={parts['INTERVAL']} must be a whole number of at least 1")


def _check_with_dateutil(body: str, s: str) -> None:
    """Let dateutil judge the BY* values now, with any start."""
    try:
        rrulestr(body, dtstart=datetime(2000, 1, 1))
    except (ValueError, TypeError, KeyError, IndexError) as e:
        if "empty" not in str(e):  # empty for this start is judged later with the real start
            raise RuleError(f"rrule {s!r} is not valid: {e}") from None


def parse_rrule(text: str) -> ParsedRule:
    """Check the syntax of an RRULE value and put it in canonical order.

    Accepts ``FREQ=WEEKLY;BYDAY=MO;BYHOUR=6`` with or without a leading ``RRULE:``.
    DTSTART is not part of the rule (it is the program's start); UNTIL and COUNT
    are returned apart so the caller can store them as fields.
    """
    # The checks run in this order on purpose: the first failing one is the message shown.
    s = _rule_text(text)
    parts = _rule_parts(s)
    freq = _check_freq(parts)
    _check_bysecond(parts)
    count = _rule_count(parts)
    _check_interval(parts)
    body = ";".join(f"{k}={parts[k]}" for k in KEY_ORDER if k in parts)
    _check_with_dateutil(body, s)
    return ParsedRule(body=body, until=parts.get("UNTIL"), count=count, freq=freq)


def parse_rrule_until(value: str, tz: str | tzinfo | None) -> datetime:
    """An RRULE UNTIL value (``20261231``, ``20261231T235959Z`` or local ``20261231T235959``) in UTC."""
    v = value.strip().upper()
    try:
        if re.fullmatch(r"\d{8}", v):
            return parse_until(f"{v[:4]}-{v[4:6]}-{v[6:]}", tz=tz)
        m = re.fullmatch(r"(\d{8})T(\d{6})(Z?)", v)
        if m:
            d, t, z = m.groups()
            iso = f"{d[:4]}-{d[4:6]}-{d[6:]}T{t[:2]}:{t[2:4]}:{t[4:]}" + ("+00:00" if z else "")
            return parse_until(iso, tz=tz)
    except ValueError as e:
        raise RuleError(f"rrule UNTIL={value}: {e}") from None
    raise RuleError(f"rrule UNTIL={value} is not a date (YYYYMMDD) or date-time (YYYYMMDDTHHMMSSZ)")


@functools.lru_cache(maxsize=32)
def _bounded_class(max_year: int) -> type[rrule]:
    """An rrule subclass whose search stops after ``max_year`` instead of year 9999.

    ``rrule._iter`` reads its ceiling from the ``datetime`` module it imported;
    the copy made here sees a module whose MAXYEAR is ``max_year``. Nothing else
    about the expansion changes.
    """
    proxy = types.ModuleType("datetime")
    proxy.__dict__.update(_dtmod.__dict__)
    proxy.MAXYEAR = max_year  # type: ignore[attr-defined]
    glob = dict(_rrmod.__dict__)
    glob["datetime"] = proxy
    orig = rrule._iter
    fn = types.FunctionType(orig.__code__, glob, orig.__name__, orig.__defaults__, orig.__closure__)
    return type(f"BoundedRRule{max_year}", (rrule,), {"_iter": fn})


def _bounded(rule: rrule, max_year: int) -> rrule:
    max_year = max(1, min(max_year, _dtmod.MAXYEAR))
    obj = object.__new__(_bounded_class(max_year))
    obj.__dict__.update(rule.__dict__)
    return obj


class Recurrence:
    """The occurrence starts of one program, in UTC.

    ``rule`` is the canonical RRULE body (no UNTIL/COUNT) or None for a one-off;
    ``start`` is the first occurrence anchor (DTSTART), whose local wall-clock
    time in ``tz`` supplies the defaults RFC 5545 takes from DTSTART.
    """

    def __init__(self, start: datetime, *, tz: str | tzinfo | None = None, rule: str | None = None,
                 until: datetime | None = None, count: int | None = None) -> None:
        self.tz = get_tz(tz)
        self.start = start.astimezone(UTC)
        self.rule_text = rule
        self.until = until.astimezone(UTC) if until is not None else None
        self.count = count
        self._dtstart_local = self.start.astimezone(self.tz).replace(tzinfo=None)
        self._rule: rrule | None = None
        if rule is not None:
            try:
                r = rrulestr(rule, dtstart=self._dtstart_local)
            except (ValueError, TypeError) as e:
                if "empty" in str(e):
                    raise RuleError("the rule never fires from its start "
                                    f"{self._dtstart_local:%Y-%m-%d %H:%M} "
                                    f"(dateutil: {e}); check INTERVAL against BYHOUR/BYMINUTE") from None
                raise RuleError(f"rrule {rule!r} is not valid: {e}") from None
            if not isinstance(r, rrule):  # pragma: no cover - parse_rrule keeps it one rule
                raise RuleError(f"rrule {rule!r} must be a single rule")
            until_local = None
            if self.until is not None:
                # Compare in wall-clock: the last local time not after UNTIL.
                until_local = self.until.astimezone(self.tz).replace(tzinfo=None)
            self._rule = r.replace(until=until_local, count=count)
            self._freq = r._freq
            self._interval = r._interval

    @property
    def recurring(self) -> bool:
        """True for a rule, False for a one-off."""
        return self._rule is not None

    def _rule_near(self, local_from: datetime, max_year: int) -> rrule:
        """The rule, with DTSTART moved forward by whole periods to just before ``local_from``."""
        assert self._rule is not None
        rule = self._rule
        period = _REBASE_PERIOD.get(self._freq)
        if period is not None and self.count is None:
            step = period * self._interval
            gap = local_from - self._dtstart_local
            k = gap // step - 1
            if k > 0:
                rule = rule.replace(dtstart=self._dtstart_local + step * k)
        return _bounded(rule, max_year)

    def between(self, start: datetime, end: datetime) -> list[datetime]:
        """Occurrence starts ``s`` with ``start <= s < end`` (UTC, sorted)."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if end <= start:
            return []
        if self._rule is None:
            return [self.start] if start <= self.start < end else []
        if end <= self.start or (self.until is not None and start > self.until):
            return []
        # A day of margin on each side covers any UTC offset; exact filtering below.
        lo = max(start, self.start) - timedelta(days=1)
        hi = end + timedelta(days=1)
        lo_l = lo.astimezone(self.tz).replace(tzinfo=None)
        hi_l = hi.astimezone(self.tz).replace(tzinfo=None)
        rule = self._rule_near(lo_l, hi_l.year + 1)
        out = []
        tz = self.tz
        for naive in rule.between(lo_l, hi_l, inc=True):
            utc = naive.replace(tzinfo=tz).astimezone(UTC)
            if start <= utc < end:
                out.append(utc)
        return out

    def overlapping(self, start: datetime, end: datetime, duration_s: int) -> list[datetime]:
        """Occurrence starts whose ``[s, s + duration)`` overlaps ``[start, end)``."""
        return self.between(start - timedelta(seconds=duration_s) + timedelta(microseconds=1), end)

    def iter_from(self, start: datetime, horizon: datetime) -> Iterator[datetime]:
        """Occurrence starts ``>= start`` and ``< horizon``, lazily, in order (UTC)."""
        start, horizon = start.astimezone(UTC), horizon.astimezone(UTC)
        if self._rule is None:
            if start <= self.start < horizon:
                yield self.start
            return
        lo = max(start, self.start) - timedelta(days=1)
        lo_l = lo.astimezone(self.tz).replace(tzinfo=None)
        hi_l = (horizon + timedelta(days=1)).astimezone(self.tz).replace(tzinfo=None)
        rule = self._rule_near(lo_l, hi_l.year + 1)
        tz = self.tz
        for naive in rule.xafter(lo_l, inc=True):
            if naive > hi_l:
                return
            utc = wall_to_utc(naive, tz)
            if utc >= horizon:
                return
            if utc >= start:
                yield utc

    def first_from(self, start: datetime, horizon: datetime) -> datetime | None:
        """The first occurrence start ``>= start`` before ``horizon``, or None."""
        return next(self.iter_from(start, horizon), None)

    def last(self) -> datetime | None:
        """The last occurrence of a rule bounded by COUNT or UNTIL (None if unbounded)."""
        if self._rule is None:
            return self.start
        if self.count is None and self.until is None:
            return None
        max_year = (self.until.year + 1) if self.until is not None else _dtmod.MAXYEAR
        last = None
        for naive in _bounded(self._rule, max_year):
            last = naive
        return wall_to_utc(last, self.tz) if last is not None else None


def check_firing(rec: Recurrence, now: datetime, duration_s: int, *,
                 horizon_days: int = CHECK_HORIZON_DAYS,
                 max_occurrences: int = CHECK_MAX_OCCURRENCES) -> datetime:
    """Refuse a rule that never fires from ``now`` or fires too often; return its first occurrence.

    "Too often" is two consecutive occurrences less than a minute apart, looked
    for among the first ``max_occurrences`` occurrences from now; an occurrence
    that starts before the previous one ends (gap shorter than the duration) is
    refused too, since a program cannot overlap itself on a speaker.
    """
    horizon = now + timedelta(days=horizon_days)
    it = rec.iter_from(now, horizon)
    try:
        first = next(it, None)
    except ValueError as e:  # dateutil: "Invalid combination of interval and byhour ..."
        raise RuleError(f"the rule never fires: {e}") from None
    if first is None:
        why = "its UNTIL/COUNT ends before now" if (rec.until or rec.count) else "no date matches it"
        raise RuleError(f"the rule never fires from now on ({why}, looked {horizon_days // 366} years "
                        "ahead); check UNTIL/COUNT and the BY* parts")
    prev = first
    min_gap: float | None = None
    at = None
    for n, occ in enumerate(it):
        gap = (occ - prev).total_seconds()
        if min_gap is None or gap < min_gap:
            min_gap, at = gap, prev
        if gap < MIN_GAP_S:
            break
        prev = occ
        if n + 2 >= max_occurrences:
            break
    if min_gap is not None and min_gap < MIN_GAP_S:
        raise RuleError(f"the rule fires {int(min_gap)} s apart (at {at:%Y-%m-%d %H:%M:%S} UTC); "
                        "nothing may fire more often than once a minute")
    if min_gap is not None and min_gap < duration_s:
        raise RuleError(f"the duration {format_duration(duration_s)} is longer than the "
                        f"{format_duration(int(min_gap))} between two occurrences, so the program "
                        "would overlap itself; shorten the duration or space the occurrences")
    return first


__all__ = [
    "DAILY_RULE", "MINUTELY", "SECONDLY", "WEEKDAYS_RULE", "ParsedRule", "Recurrence", "RuleError",
    "check_firing", "parse_rrule", "parse_rrule_until",
]
