"""Times as officials type them, and as they are shown back.

Everything is stored in UTC; people enter and read times in the configured zone
(``daemon.timezone``, default ``Asia/Ho_Chi_Minh``). Accepted input:

``06:00``
    the next 06:00 *strictly after now* in the zone: today if it is still
    ahead, otherwise tomorrow (at 06:00:30 "06:00" means tomorrow).
``2026-12-01 06:00`` (also ``2026-12-01T06:00``, with optional ``:SS``)
    that wall-clock time in the zone.
ISO 8601 with an offset or ``Z`` (``2026-12-01T06:00:00+07:00``)
    that instant; the zone is not consulted.

A wall-clock time that does not exist in the zone (skipped by a daylight-saving
jump; Vietnam has none, other zones do) is refused; an ambiguous one (repeated
when clocks go back) means its first occurrence.

Parse errors are :class:`TimeParseError` (a ``ValueError``, so pydantic reports it
against the field) and say which forms are accepted.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from netmgr.errors import TimeParseError

DEFAULT_TZ = "Asia/Ho_Chi_Minh"
FORMS = "use HH:MM (next such time), YYYY-MM-DD HH:MM (local) or ISO 8601 with an offset"

_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")
_LOCAL = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DURATION_PART = re.compile(r"(\d+)\s*(h|m|s)")


def get_tz(zone: str | tzinfo | None) -> ZoneInfo | tzinfo:
    """The tzinfo for an IANA name (None means the default, Asia/Ho_Chi_Minh)."""
    if zone is None:
        return ZoneInfo(DEFAULT_TZ)
    if isinstance(zone, tzinfo):
        return zone
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeParseError(f"unknown time zone {zone!r}; use an IANA name such as {DEFAULT_TZ}") from None


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


# Times a schedule may name: far enough for any real program, near enough that adding a
# duration, a zone offset or a recurrence step can never overflow datetime (year 9999).
FIRST_YEAR, LAST_YEAR = 2000, 2199


def _in_range(dt: date, what: str) -> None:
    if not FIRST_YEAR <= dt.year <= LAST_YEAR:
        raise TimeParseError(f"{what} {dt.isoformat()} is out of range; give one between "
                             f"{FIRST_YEAR} and {LAST_YEAR}")


def ensure_utc(dt: datetime, what: str = "time") -> datetime:
    """``dt`` converted to UTC; a naive datetime is refused (it has no zone to mean anything),
    and so is one outside the years 2000-2199."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise TimeParseError(f"{what} {dt.isoformat()} has no time zone; give an offset (e.g. +07:00)")
    _in_range(dt, what)
    return dt.astimezone(UTC)


def localize(naive: datetime, tz: tzinfo, what: str = "time") -> datetime:
    """Attach ``tz`` to a wall-clock time and return it in UTC; refuse one skipped by a DST jump."""
    _in_range(naive, what)
    aware = naive.replace(tzinfo=tz, fold=0)
    back = aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if back != naive:
        raise TimeParseError(f"{what} {naive:%Y-%m-%d %H:%M} does not exist in {tz} "
                             "(clocks jump forward then); pick another time")
    return aware.astimezone(UTC)


def wall_to_utc(naive: datetime, tz: tzinfo) -> datetime:
    """Wall-clock ``naive`` in ``tz`` as UTC, without refusing skipped times.

    Used for recurrence: a recurring 02:30 in a zone that skips 02:00-03:00 one
    night plays at the instant zoneinfo assigns (fold=0: the pre-jump offset,
    i.e. 03:30 new time) rather than vanishing.
    """
    return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


def _check_hm(hour: int, minute: int, text: str) -> None:
    if hour > 23 or minute > 59:
        raise TimeParseError(f"{text!r} is not a time of day; hours 00-23, minutes 00-59")


def parse_hhmm(text: str) -> time:
    """``"06:00"`` -> ``time(6, 0)``; anything else raises TimeParseError."""
    m = _HHMM.match(str(text).strip())
    if not m:
        raise TimeParseError(f"{text!r} is not HH:MM (e.g. 06:00 or 17:30)")
    hour, minute = int(m.group(1)), int(m.group(2))
    _check_hm(hour, minute, text)
    return time(hour, minute)


def next_wall_time(at: time, tz: tzinfo, now: datetime) -> datetime:
    """The next instant strictly after ``now`` whose wall-clock time in ``tz`` is ``at`` (UTC)."""
    local_now = ensure_utc(now, "now").astimezone(tz)
    day = local_now.date()
    for _ in range(3):  # today, tomorrow; a third day only if DST removed tomorrow's slot
        candidate = datetime.combine(day, at)
        try:
            utc = localize(candidate, tz)
        except TimeParseError:
            day += timedelta(days=1)
            continue
        if utc > now:
            return utc
        day += timedelta(days=1)
    raise TimeParseError(f"{at:%H:%M} does not occur in {tz} in the next days")  # pragma: no cover


def parse_when(text: str | datetime, *, tz: str | tzinfo | None = None, now: datetime | None = None,
               what: str = "time") -> datetime:
    """Parse a start time (see module doc) and return it as an aware UTC datetime."""
    zone = get_tz(tz)
    if isinstance(text, datetime):
        if text.tzinfo is None:
            return localize(text, zone, what)
        return text.astimezone(UTC)
    if not isinstance(text, str):
        raise TimeParseError(f"{what} must be text or a datetime, not {type(text).__name__}; {FORMS}")
    s = text.strip()
    if not s:
        raise TimeParseError(f"{what} is empty; {FORMS}")
    if _HHMM.match(s):
        return next_wall_time(parse_hhmm(s), zone, now or utcnow())
    m = _LOCAL.match(s)
    if m:
        y, mo, d, h, mi, sec = (int(g) if g else 0 for g in m.groups())
        _check_hm(h, mi, s)
        try:
            naive = datetime(y, mo, d, h, mi, sec)
        except ValueError as e:
            raise TimeParseError(f"{what} {s!r}: {e}; {FORMS}") from None
        return localize(naive, zone, what)
    if _DATE.match(s):
        raise TimeParseError(f"{what} {s!r} has no time of day; add one, e.g. '{s} 06:00'")
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise TimeParseError(f"{what} {s!r} is not understood; {FORMS}") from None
    if dt.tzinfo is None:
        return localize(dt, zone, what)
    return dt.astimezone(UTC)


def parse_until(text: str | date | datetime, *, tz: str | tzinfo | None = None,
                what: str = "until") -> datetime:
    """An end bound for recurrence: a date means the end of that local day (inclusive)."""
    zone = get_tz(tz)
    if isinstance(text, datetime):
        return parse_when(text, tz=zone, what=what)
    if isinstance(text, date):
        return localize(datetime.combine(text, time(23, 59, 59)), zone, what)
    s = str(text).strip()
    if _DATE.match(s):
        try:
            day = date.fromisoformat(s)
        except ValueError as e:
            raise TimeParseError(f"{what} {s!r}: {e}") from None
        return localize(datetime.combine(day, time(23, 59, 59)), zone, what)
    if _HHMM.match(s):
        raise TimeParseError(f"{what} {s!r} needs a date, e.g. 2026-12-31 or 2026-12-31 18:00")
    return parse_when(s, tz=zone, what=what)


def parse_day(text: str | date, *, tz: str | tzinfo | None = None, now: datetime | None = None) -> date:
    """``today``, ``tomorrow``, ``yesterday`` or ``YYYY-MM-DD`` -> a local calendar day."""
    if isinstance(text, date) and not isinstance(text, datetime):
        return text
    s = str(text).strip().lower()
    today = ensure_utc(now or utcnow(), "now").astimezone(get_tz(tz)).date()
    rel = {"today": 0, "tomorrow": 1, "yesterday": -1}
    if s in rel:
        return today + timedelta(days=rel[s])
    try:
        day = date.fromisoformat(s)
    except ValueError:
        raise TimeParseError(f"day {text!r} is not understood; use YYYY-MM-DD, today or tomorrow") from None
    _in_range(day, "day")
    return day


def day_bounds(day: date, tz: str | tzinfo | None = None) -> tuple[datetime, datetime]:
    """The UTC instants where local ``day`` starts and the next one starts."""
    zone = get_tz(tz)
    start = wall_to_utc(datetime.combine(day, time()), zone)
    end = wall_to_utc(datetime.combine(day + timedelta(days=1), time()), zone)
    return start, end


def parse_duration(value: str | int | timedelta, what: str = "duration") -> int:
    """Seconds from ``3600``, ``"90s"``, ``"30m"``, ``"1h30m"``, ``"01:30"`` (h:mm) or ``"01:30:00"``."""
    if isinstance(value, bool):
        raise TimeParseError(f"{what} must be a number of seconds or text like 30m, not a boolean")
    if isinstance(value, timedelta):
        secs = value.total_seconds()
        if secs != int(secs):
            raise TimeParseError(f"{what} must be whole seconds")
        return int(secs)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != int(value):
            raise TimeParseError(f"{what} {value} must be whole seconds")
        return int(value)
    s = str(value).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+", s):
        raise TimeParseError(f"{what} {value!r} has no unit; write e.g. {s}s, {s}m or {s}h")
    m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", s)
    if m:
        h, mi, sec = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if mi > 59 or sec > 59:
            raise TimeParseError(f"{what} {value!r}: minutes and seconds must be below 60")
        return h * 3600 + mi * 60 + sec
    if s and re.fullmatch(r"(?:\d+[hms])+", s):
        total = 0
        for num, unit in _DURATION_PART.findall(s):
            total += int(num) * {"h": 3600, "m": 60, "s": 1}[unit]
        return total
    if s.startswith("p"):
        m = re.fullmatch(r"p(?:(\d+)d)?(?:t(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?)?", s)
        if m and any(m.groups()):
            d, h, mi, sec = (int(g or 0) for g in m.groups())
            return d * 86400 + h * 3600 + mi * 60 + sec
    raise TimeParseError(f"{what} {value!r} is not understood; use e.g. 90s, 30m, 1h30m, 01:30 or PT1H")


def format_offset(dt: datetime) -> str:
    """``+07`` or ``+05:30`` (the offset of an aware datetime, short form)."""
    off = dt.utcoffset() or timedelta(0)
    total = int(off.total_seconds())
    sign = "+" if total >= 0 else "-"
    h, rem = divmod(abs(total), 3600)
    m = rem // 60
    return f"{sign}{h:02d}" if m == 0 else f"{sign}{h:02d}:{m:02d}"


def format_local(dt: datetime, tz: str | tzinfo | None = None, *, seconds: bool = False) -> str:
    """``2026-12-01 06:00 +07``: an instant as people in ``tz`` read it."""
    local = ensure_utc(dt).astimezone(get_tz(tz))
    fmt = "%Y-%m-%d %H:%M:%S" if seconds or local.second else "%Y-%m-%d %H:%M"
    return f"{local.strftime(fmt)} {format_offset(local)}"


def format_duration(seconds: int) -> str:
    """``3600`` -> ``1h``, ``5400`` -> ``1h30m``, ``45`` -> ``45s``."""
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s" if s else ""]
    return "".join(parts) or "0s"
