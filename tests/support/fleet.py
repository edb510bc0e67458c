"""A simulated province for telemetry tests and bench/telemetry: real poll results, real builders.

Every AP gets the evaluated result of one of the vendor recordings in
devices/sim (round robin), two polls apart so its interfaces have rates; the
zone tree has 11 districts and 111 communes (Binh Phuoc's shape).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from datetime import UTC, datetime
from typing import Any

import yaml

from netmgr.paths import devices_dir
from netmgr.snmp import snmprec
from netmgr.snmp.client import Target
from netmgr.snmp.evaluate import PollResult, evaluate
from netmgr.snmp.points import ap_points
from netmgr.snmp.poller import apply_result
from netmgr.snmp.profiles import Profile, load_profiles
from netmgr.snmp.state import ApRuntime, Reach
from netmgr.telemetry.points import Point, broadcast_point, netmgr_point, speaker_point

DISTRICTS = 11
COMMUNES = 111
NETS = ("4g", "wifi", "eth", "other")


def communes() -> list[str]:
    return [f"binh-phuoc/district-{i % DISTRICTS:02d}/commune-{i:03d}" for i in range(COMMUNES)]


@functools.cache
def recorded() -> list[tuple[Profile, PollResult]]:
    """(profile, result) of every recording in devices/sim, evaluated like a poll."""
    profiles = load_profiles()
    expected = yaml.safe_load((devices_dir() / "sim" / "expected.yaml").read_text())
    out = []
    for name, exp in sorted(expected.items()):
        agent = snmprec.Agent(snmprec.load(devices_dir() / "sim" / f"{name}.snmprec"))
        prof = profiles[exp["profile"]]
        scalars, columns = prof.fetch_plan()
        out.append((prof, evaluate(prof, {o: agent.get(o) for o in scalars}, agent.walk(sorted(columns)))))
    return out


def _later(result: PollResult, seconds: float) -> PollResult:
    """The same agent a poll later: counters moved as if ~2 Mbit/s flowed each way."""
    r = copy.deepcopy(result)
    if r.uptime_ticks is not None:
        r.uptime_ticks += int(seconds * 100)
    step = int(seconds * 250_000)
    r.interfaces = [dataclasses.replace(i, in_octets=None if i.in_octets is None else i.in_octets + step,
                                        out_octets=None if i.out_octets is None else i.out_octets + step // 2)
                    for i in r.interfaces]
    return r


def ap_fleet(n: int) -> list[ApRuntime]:
    """``n`` polled APs (up, with rates), each with lat/lon."""
    recs = recorded()
    zones = communes()
    aps = []
    now = datetime.now(UTC)
    for i in range(n):
        prof, res = recs[i % len(recs)]
        ap = ApRuntime(i + 1, f"ap-{i:05d}", zones[i % len(zones)],
                       Target(f"ap-{i:05d}", "127.0.0.1", 161, community="public"), prof.name,
                       profile=prof, reach=Reach("up", 0, 1, 0, now), lat=11.5 + i * 1e-4, lon=106.8 + i * 1e-4)
        apply_result(ap, res, 1000.0)
        apply_result(ap, _later(res, 60.0), 1060.0)
        ap.response_ms, ap.last_ok, ap.last_poll = 12.5 + i % 50, now, now
        aps.append(ap)
    return aps


def speaker_telemetry(i: int) -> dict[str, Any]:
    return {"rssi_dbm": -60.0 - i % 30, "volume": 70, "playing": i % 7 == 0,
            "priority": "emergency" if i % 70 == 0 else None, "temperature_c": 38.5, "voltage_v": 12.1,
            "uptime_s": 86400.0 + i, "net": NETS[i % len(NETS)], "firmware": "2.4.1"}


def speaker_points(n: int, ts_ns: int) -> list[Point]:
    """Per node: the birth status (before any telemetry), one telemetry point, a status change."""
    zones = communes()
    out = []
    nets: dict[str, str] = {}  # as the radio service keeps it: the status change keeps the net
    for i in range(n):
        node, zone = f"spk-{i:04d}", zones[i % len(zones)]
        out.append(speaker_point(node, zone, {}, True, ts_ns, nets))
        out.append(speaker_point(node, zone, speaker_telemetry(i), True, ts_ns + 1, nets))
        out.append(speaker_point(node, zone, {}, False, ts_ns + 2, nets))
    return out


def broadcast_points(ts_ns: int) -> list[Point]:
    out = []
    for zone in communes():
        for prio in ("normal", "priority", "emergency"):
            out.append(broadcast_point(zone, prio, 1, "2024-05-01T05:00:00+07:00", "Bản tin sáng", targets=20,
                                       accepted=19, played=18, failed=1, offline=1, late=0, latency_ms=850.0,
                                       ts_ns=ts_ns))
    return out


def netmgr_points(ts_ns: int) -> list[Point]:
    return [netmgr_point(c, {"queue_depth": 1}, ts_ns, host="netmgr-1")
            for c in ("poller", "radio", "telemetry", "scheduler", "api")]


def province(n_aps: int = 10_000, n_speakers: int = 2_000, ts_ns: int = 1_700_000_000_000_000_000) -> list[Point]:
    """One round of every measurement for the whole province."""
    pts: list[Point] = []
    for ap in ap_fleet(n_aps):
        pts += ap_points(ap, ts_ns)
    return pts + speaker_points(n_speakers, ts_ns) + broadcast_points(ts_ns) + netmgr_points(ts_ns)
