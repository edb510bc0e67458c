"""A small fleet's telemetry for the dashboard and alert query tests, in netmgr's own line protocol.

The points come from netmgr's builders (``netmgr.telemetry.points``: ``speaker_point``,
``broadcast_point``, ``netmgr_point``; ``ap``/``ap_if``/``ap_radio`` points with the
tags and fields ``ap_points`` writes, built directly because ``ap_points`` needs a
live poller state) and are encoded by netmgr's encoder
(``netmgr.telemetry.lineproto.Encoder``): the same line protocol the telemetry
sink sends. The fleet stages what the alert rules look for:

- AP ``ap-dx-tp-03`` stops answering 12 minutes before ``now`` (AP down);
- speaker ``spk-bd-dl-02`` goes offline 30 minutes before ``now`` (speaker offline);
- the last broadcast in ``binh-phuoc/bu-dang/duc-lieu`` reached 6 of 10 speakers (delivery);
- the telemetry spool of host ``noc1`` grows for the last 20 minutes (spool growing).

A broadcast occurrence is written as its outcome changes, always with the
occurrence's start as its timestamp, so the latest write replaces the earlier
ones (InfluxDB keeps one point per series and timestamp).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterator

from netmgr.telemetry.lineproto import Encoder
from netmgr.telemetry.points import Point, broadcast_point, district_of, netmgr_point, speaker_point

MINUTE = 60_000_000_000
SECOND = 1_000_000_000

ZONES = ("binh-phuoc/dong-xoai/tan-phu", "binh-phuoc/dong-xoai/tan-binh", "binh-phuoc/bu-dang/duc-lieu")
DOWN_AP = "ap-dx-tp-03"
OFFLINE_SPEAKER = "spk-bd-dl-02"
BAD_DELIVERY_ZONE = "binh-phuoc/bu-dang/duc-lieu"
SPOOL_HOST = "noc1"
HOURS = 2

district = district_of


@dataclasses.dataclass(frozen=True)
class Ap:
    name: str
    zone: str
    vendor: str
    profile: str
    lat: float | None
    lon: float | None


APS = (
    Ap("ap-dx-tp-01", ZONES[0], "ubiquiti", "unifi", 11.5351, 106.8832),
    Ap("ap-dx-tp-02", ZONES[0], "mikrotik", "routeros", 11.5372, 106.8861),
    Ap(DOWN_AP, ZONES[0], "ruckus", "unleashed", 11.5390, 106.8790),
    Ap("ap-dx-tb-01", ZONES[1], "openwrt", "openwrt", 11.5520, 106.9011),
    Ap("ap-bd-dl-01", ZONES[2], "cambium", "epmp", None, None),  # no coordinates
    Ap("ap-bd-dl-02", ZONES[2], "zyxel", "nwa", 11.8811, 107.2420),
)
SPEAKERS = tuple(
    (f"spk-{code}-{i:02d}", zone, net, 11.54 + 0.01 * n + 0.001 * i, 106.88 + 0.01 * n + 0.001 * i)
    for n, (code, zone) in enumerate((("dx-tp", ZONES[0]), ("dx-tb", ZONES[1]), ("bd-dl", ZONES[2])))
    for i, net in enumerate(("4g", "wifi", "eth"), start=1)
)


def points(now_ns: int, midnight_ns: int) -> Iterator[Point]:
    """Every point of the fleet's last ``HOURS`` hours, ending at ``now_ns``.

    ``midnight_ns`` is the start of "today": the broadcasts fall after it, so a
    "today" panel has rows even just after midnight.
    """
    start = now_ns - HOURS * 3600 * SECOND
    yield from _aps(start, now_ns)
    yield from _speakers(start, now_ns)
    yield from _broadcasts(max(now_ns - 40 * MINUTE, midnight_ns + SECOND), now_ns)
    yield from _netmgr(start, now_ns)


def line_protocol(now_ns: int, midnight_ns: int, batch: int = 5000) -> Iterator[bytes]:
    """The fleet as line-protocol batches, encoded by netmgr's Encoder (nothing may be dropped)."""
    enc = Encoder()
    pts = list(points(now_ns, midnight_ns))
    for i in range(0, len(pts), batch):
        body, n = enc.encode(pts[i:i + batch])
        assert n == len(pts[i:i + batch]), f"the encoder dropped points: {enc.stats()}"
        yield body + b"\n"
    problems = {k: v for k, v in enc.stats().items() if k != "lines" and v}
    assert not problems, f"the fleet's points are not clean for the encoder: {problems}"


def _aps(start: int, now: int) -> Iterator[Point]:
    for n, ap in enumerate(APS):
        tags = {"ap": ap.name, "zone": ap.zone, "district": district(ap.zone), "vendor": ap.vendor,
                "profile": ap.profile}
        errors = 0
        for k, ts in enumerate(range(start + n * SECOND, now, MINUTE)):
            up = 0 if ap.name == DOWN_AP and ts > now - 12 * MINUTE else 1
            fields: dict[str, object] = {"up": up}
            if ap.lat is not None:
                fields.update(lat=ap.lat, lon=ap.lon)
            if not up:  # a failed poll measured nothing (as ap_points writes it)
                yield Point("ap", tags, fields, ts)
                continue
            clients = 5 + (k + 3 * n) % 17
            fields.update(response_ms=12.5 + (k % 7), uptime_s=float(86400 + 60 * k), clients=clients,
                          cpu_pct=20.0 + (k % 30), mem_used_pct=55.0 + (k % 10))
            yield Point("ap", tags, fields, ts)
            errors += k % 3
            for i, ifname in enumerate(("eth0", "wlan0")):
                rx = 1e6 * (1 + math.sin(k / 10 + i)) + 1000.0
                yield Point("ap_if", {"ap": ap.name, "zone": ap.zone, "ifname": ifname},
                            {"rx_bps": rx, "tx_bps": rx / 3, "in_errors": errors + i, "out_errors": errors // 2,
                             "oper_up": 1}, ts)
            for radio, band, channel in (("radio0", "2.4", 6), ("radio1", "5", 36 + 4 * n)):
                yield Point("ap_radio", {"ap": ap.name, "zone": ap.zone, "radio": radio, "band": band},
                            {"clients": clients // 2, "channel": channel, "noise_dbm": -95.0 + (k % 5),
                             "tx_power_dbm": 20.0}, ts)


def _speakers(start: int, now: int) -> Iterator[Point]:
    nets: dict[str, str] = {}  # as the radio service keeps it: the last will keeps the node's net
    for n, (node, zone, net, lat, lon) in enumerate(SPEAKERS):
        for k, ts in enumerate(range(start + n * SECOND, now, 30 * SECOND)):
            if node == OFFLINE_SPEAKER and ts > now - 30 * MINUTE:
                yield speaker_point(node, zone, {}, False, ts, nets)  # the last will: a status change
                break  # an offline node sends nothing more
            playing = (k // 20) % 3 == 0
            yield speaker_point(node, zone, {
                "rssi_dbm": -70.0 - (n * 3 + k % 11), "volume": 60 + n, "playing": playing,
                "priority": "normal", "temperature_c": 41.5 + (k % 9), "voltage_v": 12.1 - (k % 4) / 10,
                "uptime_s": 3600 + 30 * k, "net": net, "firmware": "2.4.1", "lat": lat, "lon": lon}, True, ts, nets)


def _broadcasts(start: int, now: int) -> Iterator[Point]:
    """Two occurrences per zone between ``start`` and ``now``; each written as it progresses."""
    span = now - start
    program = 100
    for n, zone in enumerate(ZONES):
        for j, priority in enumerate(("normal", "emergency" if n == 1 else "normal")):
            occ = start + span * (1 + 2 * j + 6 * n) // 20
            program += 1
            targets = 10
            final = 6 if (zone == BAD_DELIVERY_ZONE and j == 1) else 10 - (n + j) % 2
            when = dt.datetime.fromtimestamp(occ / SECOND, dt.UTC)
            for stage, (accepted, played) in enumerate(((3, 0), (final, final - 1))):
                yield broadcast_point(zone, priority, program, when,
                                      f"Bản tin {zone.split('/')[-1]} số {j + 1}, \"chiều\"",
                                      targets=targets, accepted=accepted, played=played, failed=stage,
                                      offline=targets - accepted, late=0,
                                      latency_ms=850.0 + 100 * n + 40 * j + 10 * stage, ts_ns=occ)


def _netmgr(start: int, now: int) -> Iterator[Point]:
    polls = failed = late = messages = bad = written = errors = 0
    for k, ts in enumerate(range(start, now, 10 * SECOND)):
        polls += len(APS)
        failed += 1 if k % 6 == 0 else 0
        late += 1 if k % 50 == 0 else 0
        messages += 9
        bad += 1 if k % 40 == 0 else 0
        written += 120
        spooling = ts > now - 20 * MINUTE
        errors += 1 if spooling else 0
        spool_points = int((ts - (now - 20 * MINUTE)) // SECOND) * 12 if spooling else 0
        yield netmgr_point("poller", {"polls": polls, "polls_failed": failed, "late_polls": late,
                                      "poll_ms_p50": 18.0 + k % 5, "poll_ms_p99": 140.0 + k % 30,
                                      "aps": len(APS)}, ts, host=SPOOL_HOST)
        yield netmgr_point("radio", {"nodes_online": len(SPEAKERS) - (1 if ts > now - 30 * MINUTE else 0),
                                     "nodes_total": len(SPEAKERS), "messages": messages, "bad_messages": bad,
                                     "commands_inflight": k % 4}, ts, host=SPOOL_HOST)
        yield netmgr_point("telemetry", {"queue_depth": 40 + k % 25, "points_written": written,
                                         "points_dropped": 0, "write_errors": errors,
                                         "spool_bytes": spool_points * 64, "spool_points": spool_points},
                           ts, host=SPOOL_HOST)
