"""How netmgr writes a value for a person: one convention for the CLI and the demo (issue 13).

- Times: local in the daemon's zone (``[daemon] timezone``), ``2026-12-04 01:47:05``, no
  microseconds; the zone is named once per output by :func:`zone_label`
  (``times in Asia/Ho_Chi_Minh (UTC+07:00)``), not on every value.
- Durations: the two largest units, ``1 d 0 h``, ``3 h 12 min``, ``5 min 3 s``, ``45 s``.
- Bytes: binary units, ``31.5 MiB``; bit rates: ``4.00 Mbit/s``.
- Booleans: a word, ``yes``/``no`` or one that fits the column (``late``/``on time``).

``--json`` keeps the exact machine values: these functions are for people only.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, tzinfo
from typing import Any

# A number above this is read as milliseconds since the epoch (in seconds it would be year 5138).
_MS_THRESHOLD = 1e11
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def to_datetime(value: Any) -> datetime | None:
    """``value`` as an aware datetime: a datetime (naive is UTC), an ISO 8601 string with or
    without ``Z``/offset (none is UTC; ``2026-12-05 01:33:09 +07`` too), or epoch seconds or
    milliseconds. None (or an empty string) is None; anything else raises ValueError."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > _MS_THRESHOLD else value
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        return _parse_iso(value.strip())
    raise ValueError(f"not a time: {value!r}")


def _parse_iso(text: str) -> datetime:
    s = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    head, sep, offset = s.rpartition(" ")
    if sep and offset[:1] in "+-" and offset[1:].replace(":", "").isdigit():  # "... 01:33:09 +07"
        s = head + offset + (":00" if len(offset) == 3 else "")
    dt = datetime.fromisoformat(s)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def format_time(value: Any, tz: tzinfo, *, seconds: bool = True, date: bool = True) -> str:
    """``value`` (see :func:`to_datetime`) in ``tz``: ``2026-12-04 01:47:05``; ``date=False``
    gives the time of day only, ``seconds=False`` drops the seconds. "" for None; a value that
    is no time is shown as it is."""
    try:
        dt = to_datetime(value)
    except (ValueError, OverflowError, OSError):
        return str(value)
    if dt is None:
        return ""
    fmt = ("%Y-%m-%d " if date else "") + ("%H:%M:%S" if seconds else "%H:%M")
    return dt.astimezone(tz).strftime(fmt)


def zone_label(tz: tzinfo, when: datetime | None = None) -> str:
    """The zone for a person, once per output: ``Asia/Ho_Chi_Minh (UTC+07:00)``."""
    now = (when or datetime.now(UTC)).astimezone(tz)
    offset = now.strftime("%z")
    utc = "UTC" if offset in ("", "+0000") else f"UTC{offset[:3]}:{offset[3:]}"
    name = getattr(tz, "key", None) or now.tzname() or str(tz)
    return utc if name in ("UTC", "Etc/UTC") else f"{name} ({utc})"


def times_in(tz: tzinfo) -> str:
    """The line naming the zone of an output's times."""
    return f"times in {zone_label(tz)}"


_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def format_duration(seconds: float | None) -> str:
    """The two largest units: ``1 d 0 h``, ``3 h 12 min``, ``5 min 3 s``, ``45 s``; under 10 s
    one decimal (``2.5 s``). Negative durations keep their sign; "" for None."""
    if seconds is None or (isinstance(seconds, float) and not math.isfinite(seconds)):
        return ""
    sign = "-" if seconds < 0 else ""
    s = abs(float(seconds))
    if s < 10:
        text = f"{s:.1f}".rstrip("0").rstrip(".")
        return f"{sign}{text} s"
    whole = round(s)
    for i, (unit, size) in enumerate(_UNITS[:-1]):
        if whole >= size:
            low_unit, low_size = _UNITS[i + 1]
            return f"{sign}{whole // size} {unit} {whole % size // low_size} {low_unit}"
    return f"{sign}{whole} s"


def format_bytes(n: float | None) -> str:
    """Binary units: ``512 B``, ``167.2 KiB``, ``31.5 MiB``; "" for None."""
    if n is None:
        return ""
    if abs(n) < 1024:
        return f"{n:.0f} B"
    size = n / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def format_bps(v: float | None) -> str:
    """A bit rate: ``4.00 Mbit/s``, ``950 bit/s``; "-" for None (not measured yet)."""
    if v is None:
        return "-"
    for unit, div in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if v >= div:
            return f"{v / div:.2f} {unit}"
    return f"{v:.0f} bit/s"


def yes_no(value: Any, yes: str = "yes", no: str = "no") -> str:
    """A boolean as a word (``late``/``on time``, ``yes``/``no``); "" for None."""
    if value is None:
        return ""
    return yes if value else no


def format_value(value: Any) -> str:
    """Any other value for a person: booleans as yes/no, None as "", floats without noise."""
    if isinstance(value, bool) or value is None:
        return yes_no(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {format_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def format_count(n: int | None) -> str:
    """A count with thousands separators: ``12,345``; "" for None."""
    return "" if n is None else f"{n:,}"


def zone_labels(zones: list[dict[str, Any]]) -> dict[str, str]:
    """Path -> the name a person reads for each of ``zones`` (the API's zone items): the display
    name, with the parent's name where two zones share one (``Tân Phú (Đồng Xoài)``), and the
    path where even that is shared."""
    names = {z["path"]: z.get("name") or z["path"] for z in zones}
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    labels = {}
    for z in zones:
        name = names[z["path"]]
        parent = z.get("parent")
        labels[z["path"]] = name if counts[name] == 1 else (
            f"{name} ({names[parent]})" if parent in names else z["path"])
    seen: dict[str, int] = {}
    for label in labels.values():
        seen[label] = seen.get(label, 0) + 1
    return {path: label if seen[label] == 1 else path for path, label in labels.items()}
