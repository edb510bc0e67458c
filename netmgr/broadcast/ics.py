"""iCalendar (RFC 5545) export of programs, for people's calendars (`netmgr broadcast ics`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from netmgr import __version__


def _escape(text: str) -> str:
    """TEXT value escaping (RFC 5545 3.3.11)."""
    return (text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n"))


def _fold(line: str) -> str:
    """Fold lines longer than 75 octets (RFC 5545 3.1), never inside a UTF-8 sequence."""
    out, cur, size = [], "", 0
    for ch in line:
        n = len(ch.encode())
        if size + n > 75:
            out.append(cur)
            cur, size = " ", 1
        cur += ch
        size += n
    out.append(cur)
    return "\r\n".join(out)


def _utc(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def to_ics(programs: Sequence[Any], tz: str, *, now: datetime | None = None) -> str:
    """One VEVENT per program; recurring programs carry their RRULE (UNTIL in UTC, or COUNT)."""
    stamp = _utc(now or datetime.now(UTC))
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:-//netmgr//netmgr {__version__}//EN",
             "CALSCALE:GREGORIAN", f"X-WR-TIMEZONE:{tz}"]
    for p in programs:
        w = p.when
        lines += ["BEGIN:VEVENT", f"UID:program-{p.id}@netmgr", f"DTSTAMP:{stamp}",
                  f"DTSTART:{_utc(w.start)}", f"DURATION:PT{int(p.duration_s)}S",
                  f"SUMMARY:{_escape(p.title)}"]
        if w.kind != "once":
            rule = w.rrule
            if w.until is not None:
                rule += f";UNTIL={_utc(w.until)}"
            elif w.count is not None:
                rule += f";COUNT={w.count}"
            lines.append(f"RRULE:{rule}")
        targets = ", ".join(list(p.targets.zones) + list(p.targets.speakers))
        desc = f"priority {p.priority.value}; volume {p.volume}; targets {targets}"
        lines += [f"DESCRIPTION:{_escape(desc)}",
                  f"CATEGORIES:{p.priority.value}", "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return "\r\n".join(_fold(x) for x in lines) + "\r\n"
