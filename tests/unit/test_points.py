"""The point builders: schema names and types, what a failed poll writes, speakers, broadcasts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support import fleet

from netmgr.snmp.points import ap_points
from netmgr.telemetry.points import (
    SCHEMA,
    band_of,
    broadcast_point,
    channel_band,
    district_of,
    netmgr_point,
    speaker_point,
)

KIND = {"i": int, "f": float, "s": str}


def check_schema(p):
    types = SCHEMA[p.measurement]
    for k, v in p.fields.items():
        assert type(v) is KIND[types[k]], (p.measurement, k, v)


def test_district_is_the_first_two_levels():
    assert district_of("binh-phuoc/dong-xoai/tan-phu/ap-1") == "binh-phuoc/dong-xoai"
    assert district_of("binh-phuoc/dong-xoai") == "binh-phuoc/dong-xoai"
    assert district_of("binh-phuoc") == "binh-phuoc"


@pytest.mark.parametrize(("value", "channel", "band"), [
    (1, 1, "2.4"), (14, 14, "2.4"), (36, 36, "5"), (165, 165, "5"), (None, None, ""), (0, 0, ""),
    (200, 200, ""), (2412, 1, "2.4"), (2437, 6, "2.4"), (2484, 14, "2.4"), (5180, 36, "5"),
    (5745, 149, "5"), (5955, 1, "6"), (6115, 33, "6")])
def test_channel_and_band_from_channels_or_frequencies(value, channel, band):
    assert channel_band(value) == (channel, band)
    assert band_of(value) == band


def test_radios_reported_by_frequency_get_channel_numbers():
    by_profile = {ap.profile.name: ap for ap in fleet.ap_fleet(15)}
    radios = {p.tags["radio"]: p for p in ap_points(by_profile["routeros"], 1) if p.measurement == "ap_radio"}
    assert radios["wlan1"].fields["channel"] == 6 and radios["wlan1"].tags["band"] == "2.4"
    assert radios["wlan2"].fields["channel"] == 36 and radios["wlan2"].tags["band"] == "5"


def test_ap_points_of_a_polled_unifi():
    by_profile = {ap.profile.name: ap for ap in fleet.ap_fleet(15)}
    ap = by_profile["unifi"]
    pts = ap_points(ap, 42)
    for p in pts:
        check_schema(p)
        assert p.ts_ns == 42
    head = pts[0]
    assert head.measurement == "ap"
    assert head.tags == {"ap": ap.name, "zone": ap.zone, "district": district_of(ap.zone),
                         "vendor": "Ubiquiti", "profile": "unifi"}
    assert head.fields["up"] == 1 and head.fields["clients"] == 28
    assert head.fields["uptime_s"] == ap.result.uptime_ticks / 100
    assert head.fields["lat"] == ap.lat and "response_ms" in head.fields
    ifs = {p.tags["ifname"]: p.fields for p in pts if p.measurement == "ap_if"}
    assert "lo" not in ifs and set(ifs) == {"eth0", "wifi0", "wifi1"}
    assert ifs["eth0"]["rx_bps"] == pytest.approx(250_000 * 8) and ifs["eth0"]["oper_up"] == 1
    radios = {p.tags["radio"]: p for p in pts if p.measurement == "ap_radio"}
    assert set(radios) == {"ng", "na"}
    assert radios["ng"].fields == {"clients": 17}  # no channel from this agent: no band either
    assert radios["ng"].tags["band"] == ""


def test_a_failed_poll_writes_only_up_and_location():
    ap = fleet.ap_fleet(1)[0]
    ap.last_error = "ap-00000 127.0.0.1:161: timeout"
    ap.reach.status = "down"
    (p,) = ap_points(ap, 1)
    assert p.fields == {"up": 0, "lat": ap.lat, "lon": ap.lon}
    assert p.tags["vendor"] and p.tags["profile"]  # the profile is still known: same series


def test_up_follows_the_hysteresis_and_the_poll_before_it_decides():
    ap = fleet.ap_fleet(1)[0]
    ap.reach.status = "down"  # answered once, not yet up again (up_after > 1)
    assert ap_points(ap, 1)[0].fields["up"] == 0
    ap.reach.status = "unknown"
    assert ap_points(ap, 1)[0].fields["up"] == 1
    ap.last_error = "timeout"
    assert ap_points(ap, 1)[0].fields["up"] == 0


def test_speaker_point_fields_and_net_kept_across_status_changes():
    last_net: dict[str, str] = {}
    tel = fleet.speaker_telemetry(0) | {"playing": True, "priority": "emergency", "net": "4g",
                                        "lat": 11.6, "lon": 106.9}
    p = speaker_point("n-1", "binh-phuoc/dong-xoai/tan-phu", tel, True, 5, last_net)
    check_schema(p)
    assert p.tags == {"node": "n-1", "zone": "binh-phuoc/dong-xoai/tan-phu", "district": "binh-phuoc/dong-xoai",
                      "net": "4g"}
    assert p.fields["playing"] == 1 and p.fields["priority"] == 3 and p.fields["online"] == 1
    assert p.fields["firmware"] == "2.4.1" and p.fields["lat"] == 11.6
    off = speaker_point("n-1", "binh-phuoc/dong-xoai/tan-phu", {}, False, 6, last_net)
    assert off.tags["net"] == "4g" and off.fields == {"online": 0}
    silent = speaker_point("n-1", "z", {"playing": False, "priority": None, "net": "lte"}, True, 7, last_net)
    assert silent.fields["playing"] == 0 and silent.fields["priority"] == 0 and silent.tags["net"] == "other"
    unsaid = speaker_point("n-2", "z", {"playing": True, "priority": None}, True, 8, last_net)
    # Without a memory, a status change has no network to keep.
    assert speaker_point("n-1", "z", {}, False, 9).tags["net"] == ""
    assert unsaid.fields["priority"] == 1 and unsaid.tags["net"] == ""


def test_broadcast_point_truncates_the_title_and_writes_iso_occurrences():
    occ = datetime(2024, 5, 1, 5, 0, tzinfo=UTC)
    p = broadcast_point("binh-phuoc/dong-xoai/tan-phu", "emergency", 7, occ, "x" * 300, targets=20,
                        accepted=19, played=18, failed=1, offline=1, late=0, latency_ms=None, ts_ns=9)
    check_schema(p)
    assert p.tags == {"zone": "binh-phuoc/dong-xoai/tan-phu", "district": "binh-phuoc/dong-xoai",
                      "priority": "emergency"}
    assert len(p.fields["title"]) == 200 and p.fields["occurrence"] == "2024-05-01T05:00:00+00:00"
    assert "latency_ms" not in p.fields


def test_netmgr_point():
    p = netmgr_point("telemetry", {"queue_depth": 3, "spool_bytes": None}, 1, host="h")
    assert p.tags == {"component": "telemetry", "host": "h"} and p.fields == {"queue_depth": 3}
    with pytest.raises(ValueError, match="unknown component 'pollr'"):
        netmgr_point("pollr", {}, 1)
