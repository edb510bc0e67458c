"""Telemetry points and the builders that turn netmgr's state into them (an AP poll's points
are built by netmgr.snmp.points, next to the poller's state).

The schema is docs/telemetry.md (measurements ``ap``, ``ap_if``, ``ap_radio``,
``speaker``, ``broadcast``, ``netmgr``). Builders give every field the schema's
type (ints as ``int``, floats as ``float``, 0/1 flags as ``int``) and leave out
what is unknown (None), so a point never carries a field the source did not
measure. Tags are bounded by construction: names, zone paths, and small enums;
never per-client, never free text.
"""

from __future__ import annotations

import socket
from datetime import datetime
from typing import Any

# measurement -> field -> kind ("i" integer, "f" float, "s" string): the encoder starts
# from these, so a value of the wrong type is dropped even in a fresh process.
SCHEMA: dict[str, dict[str, str]] = {
    "ap": {"up": "i", "response_ms": "f", "uptime_s": "f", "clients": "i", "cpu_pct": "f",
           "mem_used_pct": "f", "lat": "f", "lon": "f"},
    "ap_if": {"rx_bps": "f", "tx_bps": "f", "in_errors": "i", "out_errors": "i", "oper_up": "i"},
    "ap_radio": {"clients": "i", "channel": "i", "noise_dbm": "f", "tx_power_dbm": "f"},
    "speaker": {"online": "i", "rssi_dbm": "f", "volume": "i", "playing": "i", "priority": "i",
                "temperature_c": "f", "voltage_v": "f", "uptime_s": "f", "firmware": "s",
                "lat": "f", "lon": "f"},
    "broadcast": {"program_id": "i", "occurrence": "s", "title": "s", "targets": "i", "accepted": "i",
                  "played": "i", "failed": "i", "offline": "i", "late": "i", "latency_ms": "f"},
}

# The daemon's own figures (measurement ``netmgr``, tag ``component``), declared once: field ->
# (component, kind, help). Each service's ``stats_fields()`` (netmgr.runtime.Service) fills its
# component's; counters are totals since the daemon started, the rest gauges.
INTERNAL_METRICS: dict[str, tuple[str, str, str]] = {
    "polls": ("poller", "i", "counter: AP polls done"),
    "polls_failed": ("poller", "i", "counter: AP polls that failed (timeout, bad response)"),
    "late_polls": ("poller", "i", "counter: polls started more than 5 s after their due time"),
    "poll_ms_p50": ("poller", "f", "median time of the last 4,096 successful polls, ms"),
    "poll_ms_p99": ("poller", "f", "99th percentile of the same, ms"),
    "aps": ("poller", "i", "APs in the poller's inventory"),
    "nodes_online": ("radio", "i", "speaker nodes online"),
    "nodes_total": ("radio", "i", "speaker nodes in the inventory"),
    "messages": ("radio", "i", "counter: status, telemetry and reply messages received"),
    "bad_messages": ("radio", "i", "counter: messages refused (malformed, unknown node, bad session)"),
    "commands_inflight": ("radio", "i", "commands not yet answered by every target"),
    "queue_depth": ("telemetry", "i", "points in memory: queue, overflow and outbox"),
    "points_written": ("telemetry", "i", "counter: points InfluxDB accepted"),
    "points_dropped": ("telemetry", "i", "counter: points that will never reach InfluxDB (any cause)"),
    "write_errors": ("telemetry", "i", "counter: failed writes to InfluxDB"),
    "spool_bytes": ("telemetry", "i", "bytes waiting in the on-disk spool"),
    "spool_points": ("telemetry", "i", "points waiting in the on-disk spool"),
}
SCHEMA["netmgr"] = {name: kind for name, (_, kind, _) in INTERNAL_METRICS.items()}

PRIORITY_CODE = {"normal": 1, "priority": 2, "emergency": 3}
NETS = frozenset({"4g", "wifi", "eth", "other"})
COMPONENTS = frozenset({"poller", "radio", "telemetry", "scheduler", "api"})
TITLE_MAX = 200


class Point:
    """One line-protocol point: measurement, tags, fields, timestamp in ns (UTC)."""

    __slots__ = ("fields", "measurement", "tags", "ts_ns")

    def __init__(self, measurement: str, tags: dict[str, str], fields: dict[str, Any], ts_ns: int) -> None:
        self.measurement = measurement
        self.tags = tags
        self.fields = fields
        self.ts_ns = ts_ns

    def __repr__(self) -> str:
        return f"Point({self.measurement!r}, {self.tags!r}, {self.fields!r}, {self.ts_ns})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Point):
            return NotImplemented
        return (self.measurement, self.tags, self.fields, self.ts_ns) == (
            other.measurement, other.tags, other.fields, other.ts_ns)

    __hash__ = None  # type: ignore[assignment]  # mutable


def district_of(zone: str) -> str:
    """The first two levels of a zone path (``province/district``); the path itself if shorter."""
    first = zone.find("/")
    if first < 0:
        return zone
    second = zone.find("/", first + 1)
    return zone if second < 0 else zone[:second]


def _f(v: Any) -> float | None:
    return None if v is None else float(v)


def _i(v: Any) -> int | None:
    return None if v is None else int(v)


def channel_band(value: int | None) -> tuple[int | None, str]:
    """(channel number, band) from what a profile reports as the channel.

    Several agents (airMAX, OpenWrt, RouterOS) report the frequency in MHz
    instead: 2412-2484 is 2.4 GHz, 5150-5895 is 5 GHz, 5955-7115 is 6 GHz, and
    the channel number follows from it. A plain channel 1-14 is 2.4 GHz and
    32-177 is 5 GHz (6 GHz channel numbers overlap both and are only told apart
    by frequency); anything else has no band ("").
    """
    if value is None:
        return None, ""
    if 2400 <= value <= 2500:
        return (14 if value == 2484 else (value - 2407) // 5), "2.4"
    if 4900 <= value <= 5925:
        return (value - 5000) // 5, "5"
    if 5925 < value <= 7125:
        return (value - 5950) // 5, "6"
    if 1 <= value <= 14:
        return value, "2.4"
    if 32 <= value <= 177:
        return value, "5"
    return value, ""


def band_of(channel: int | None) -> str:
    """The band of a channel number or frequency (see :func:`channel_band`)."""
    return channel_band(channel)[1]


def speaker_point(node_id: str, zone: str, telemetry: dict[str, Any], online: bool, ts_ns: int,
                  last_net: dict[str, str] | None = None) -> Point:
    """One ``speaker`` point from a node's telemetry (possibly empty: a status change).

    ``last_net``: the caller's memory of the network each node last reported (node -> net),
    read and updated here, so that a status-change point (no telemetry) keeps the node's series
    instead of opening a second one without the ``net`` tag. Without it, such a point has
    ``net`` "".

    ``telemetry`` keys: rssi_dbm, volume, playing (bool), priority (str or None),
    temperature_c, voltage_v, uptime_s, net, firmware, and optionally lat, lon.
    ``priority`` is 0 when nothing plays, else 1 normal, 2 priority, 3 emergency
    (normal when the node does not say).
    """
    net = telemetry.get("net")
    if net is not None:
        net = net if net in NETS else "other"
        if last_net is not None:
            last_net[node_id] = net
    else:
        net = last_net.get(node_id, "") if last_net is not None else ""
    tags = {"node": node_id, "zone": zone, "district": district_of(zone), "net": net}
    fields: dict[str, Any] = {"online": 1 if online else 0}
    for key in ("rssi_dbm", "temperature_c", "voltage_v", "uptime_s", "lat", "lon"):
        v = telemetry.get(key)
        if v is not None:
            fields[key] = float(v)
    v = telemetry.get("volume")
    if v is not None:
        fields["volume"] = int(v)
    if "playing" in telemetry:
        playing = bool(telemetry["playing"])
        fields["playing"] = 1 if playing else 0
        fields["priority"] = PRIORITY_CODE.get(telemetry.get("priority") or "normal", 1) if playing else 0
    fw = telemetry.get("firmware")
    if fw is not None:
        fields["firmware"] = str(fw)
    return Point("speaker", tags, fields, ts_ns)


def broadcast_point(zone: str, priority: str, program_id: int, occurrence: datetime | str, title: str, *,
                    targets: int, accepted: int, played: int, failed: int, offline: int, late: int,
                    latency_ms: float | None, ts_ns: int) -> Point:
    """One ``broadcast`` point: an occurrence's outcome (written when it changes and when final).

    ``zone`` is the commune the program belongs to; ``occurrence`` its start
    (a datetime is written as ISO 8601); ``latency_ms`` the median publish ->
    accepted time (None: nothing accepted yet); ``title`` is cut at 200 characters.
    """
    occ = occurrence.isoformat() if isinstance(occurrence, datetime) else str(occurrence)
    fields: dict[str, Any] = {"program_id": int(program_id), "occurrence": occ, "title": title[:TITLE_MAX],
                              "targets": int(targets), "accepted": int(accepted), "played": int(played),
                              "failed": int(failed), "offline": int(offline), "late": int(late)}
    if latency_ms is not None:
        fields["latency_ms"] = float(latency_ms)
    return Point("broadcast", {"zone": zone, "district": district_of(zone), "priority": priority},
                 fields, ts_ns)


_HOST: list[str] = []


def hostname() -> str:
    """This machine's name (the ``host`` tag of ``netmgr`` points), looked up once."""
    if not _HOST:
        _HOST.append(socket.gethostname())
    return _HOST[0]


def netmgr_point(component: str, fields: dict[str, Any], ts_ns: int, host: str | None = None) -> Point:
    """One ``netmgr`` point: a component's own figures (every 10 s)."""
    if component not in COMPONENTS:
        raise ValueError(f"netmgr point: unknown component {component!r}; one of {sorted(COMPONENTS)}")
    return Point("netmgr", {"component": component, "host": host or hostname()},
                 {k: v for k, v in fields.items() if v is not None}, ts_ns)
