"""Series cardinality of a 10,000-AP, 2,000-speaker province, built with the real builders.

Bounds (docs/telemetry.md, "Cardinality"): with I interfaces (software loopbacks
left out) and R radios per AP (the 15 vendor recordings average I = 2.53,
R = 1.53), S speakers, C communes, H hosts:

- tag sets (InfluxDB 1.x series): APs x (1 + I + R) + 2 S + 3 C + 5 H
  = 10,000 x 5.07 + 4,000 + 333 + 5 = 55,038: bound 60,000;
- field series (what InfluxDB 2.x and VictoriaMetrics count, one per field):
  APs x (8 + 5 I + 4 R) + 12 S + 10 x 3 C + 17 x 5 H
  = 268,000 + 24,000 + 3,330 + 85 = 295,415: bound 300,000.
"""

from __future__ import annotations

from collections import defaultdict

from support import fleet

from netmgr.telemetry.lineproto import Encoder, split_line, unescape_name

TAGSET_BOUND = 60_000
FIELD_SERIES_BOUND = 300_000
ALLOWED_TAGS = {"ap": {"ap", "zone", "district", "vendor", "profile"}, "ap_if": {"ap", "zone", "ifname"},
                "ap_radio": {"ap", "zone", "radio", "band"}, "speaker": {"node", "zone", "district", "net"},
                "broadcast": {"zone", "district", "priority"}, "netmgr": {"component", "host"}}


def series_of(pts):
    enc = Encoder()
    payload, n = enc.encode(pts)
    assert n == len(pts) and enc.stats()["type_conflicts"] == 0
    tagsets: set[str] = set()
    fieldsets: set[tuple[str, str]] = set()
    for line in payload.decode().split("\n"):
        key, fields, _ = split_line(line)
        tagsets.add(key)
        fieldsets.update((key, unescape_name(k)) for k, _ in fields)
    return tagsets, fieldsets


def test_province_series_stay_under_the_bound():
    t0 = 1_700_000_000_000_000_000
    pts = fleet.province(10_000, 2_000, t0)
    tagsets, fieldsets = series_of(pts)
    print(f"\n{len(pts)} points, {len(tagsets)} tag sets, {len(fieldsets)} field series")
    assert len(tagsets) <= TAGSET_BOUND
    assert len(fieldsets) <= FIELD_SERIES_BOUND
    # A second round (a minute later, speakers on the same networks) adds no series.
    again = fleet.province(10_000, 2_000, t0 + 60 * 10**9)
    tagsets2, fieldsets2 = series_of(pts + again)
    assert tagsets2 == tagsets and fieldsets2 == fieldsets


def test_tags_are_the_schemas_and_bounded_by_the_inventory():
    pts = fleet.province(2_000, 500)
    values: dict[tuple[str, str], set[str]] = defaultdict(set)
    for p in pts:
        assert set(p.tags) <= ALLOWED_TAGS[p.measurement], p
        for k, v in p.tags.items():
            values[(p.measurement, k)].add(v)
    assert len(values[("ap", "ap")]) == 2_000
    assert len(values[("ap", "zone")]) == fleet.COMMUNES and len(values[("ap", "district")]) == fleet.DISTRICTS
    assert len(values[("ap_if", "ifname")]) < 40  # names come from the profiles' interfaces, not per AP
    assert values[("ap_radio", "band")] <= {"2.4", "5", ""}
    assert values[("speaker", "net")] <= {"4g", "wifi", "eth", "other", ""}
    assert len(values[("speaker", "node")]) == 500
    # No field value ever became a tag: the only per-point varying things are fields.
    assert all(len(v) <= 2_000 for v in values.values())
