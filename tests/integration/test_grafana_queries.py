"""Every panel query, variable query and alert query runs on a real InfluxDB engine and returns data.

Debian's influxdb 1.6 (the InfluxQL engine) is loaded through its /write endpoint
with a small fleet on the agreed schema (tests/grafana_fleet.py), built with
netmgr's point builders and encoded by netmgr's own line protocol encoder
(netmgr.telemetry.points, netmgr.telemetry.lineproto). Each query is expanded the way
Grafana does it (netmgr.grafana.influxql.expand: $timeFilter, $__interval,
$__interval_ms, the template variables with Grafana's escaping) for the panel's
time range and interval, sent to /query, and must come back without an error and
with at least one non-null value; time series must come back in time order.
The alert queries are then reduced and thresholded as Grafana's expressions do,
and must fire for exactly the staged faults.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest
from support import grafana_fleet as fleet

from netmgr.grafana import alerts
from netmgr.grafana.influxql import ALL, Variable, expand, panel_interval_ms
from netmgr.grafana.provisioning import all_dashboards
from netmgr.grafana.queries import PanelQuery, panel_queries, variable_queries

DB = "grafana_fleet"
DASHBOARDS = all_dashboards()
MAX_DATA_POINTS = 1000  # a panel about 1000 px wide, as Grafana sends it


class Engine:
    """The loaded influxd, queried like Grafana's InfluxDB data source (GET /query, epoch=ms)."""

    def __init__(self, url: str, now_ms: int, midnight_ms: int) -> None:
        self.url, self.now_ms, self.midnight_ms = url, now_ms, midnight_ms

    def query(self, text: str) -> dict[str, Any]:
        params = urllib.parse.urlencode({"q": text, "db": DB, "epoch": "ms"})
        with urllib.request.urlopen(f"{self.url}/query?{params}", timeout=30) as r:
            data = json.loads(r.read())
        assert "error" not in data, f"{text}\n-> {data['error']}"
        (result,) = data["results"]
        return result


@pytest.fixture(scope="module")
def engine(influxdb1) -> Engine:
    influxdb1.create_db(DB)
    now = time.time_ns()
    midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    midnight_ns = int(midnight.timestamp()) * 1_000_000_000
    for batch in fleet.line_protocol(now, midnight_ns):
        influxdb1.write(DB, batch)
    return Engine(influxdb1.url, now // 1_000_000, midnight_ns // 1_000_000)


def _time_range(d: dict[str, Any], q: PanelQuery | None, e: Engine) -> tuple[int, int]:
    if q is not None and q.time_from == "now/d":
        return e.midnight_ms, e.now_ms  # "today so far" (the test's day is UTC)
    assert q is None or q.time_from is None, f"{q.name}: time override {q.time_from} not handled here"
    frm = d["time"]["from"]
    units = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
    assert frm.startswith("now-") and frm[-1] in units, frm
    return e.now_ms - int(frm[4:-1]) * units[frm[-1]], e.now_ms


def _options(e: Engine, d: dict[str, Any], variables: dict[str, Variable]) -> dict[str, list[str]]:
    """Each variable's options, from its own query, as Grafana lists them."""
    frm, to = _time_range(d, None, e)
    out: dict[str, list[str]] = {}
    for v in variable_queries(d):
        if v.type == "custom":
            out[v.name] = [s.strip() for s in v.query.split(",")]
            continue
        assert v.type == "query", f"{d['uid']}: variable {v.name} of type {v.type}"
        result = e.query(expand(v.query, from_ms=frm, to_ms=to, interval_ms=60_000, variables=variables))
        values = sorted({row[1] for s in result.get("series", []) for row in s["values"]})
        assert values, f"{d['uid']}: variable ${v.name} has no options: {v.query}"
        out[v.name] = values
    return out


def _scenarios(d: dict[str, Any], options: dict[str, list[str]]) -> list[dict[str, Variable]]:
    """The variable settings each query is run with: All (or the first option), then a narrow choice."""
    declared = {v.name: v for v in variable_queries(d)}
    narrow = {"ap": fleet.DOWN_AP, "zone": "binh-phuoc/dong-xoai", "priority": "normal"}
    scenarios = []
    for pick in ("wide", "narrow"):
        chosen = {}
        for name, v in declared.items():
            opts = options[name]
            if pick == "narrow":
                value: str | list[str] = narrow[name]
                assert value in opts, f"{d['uid']}: ${name} has no option {value!r}: {opts}"
                value = [value] if v.multi else value
            else:
                value = ALL if v.include_all else opts[0]
            chosen[name] = Variable(name, value, multi=v.multi, include_all=v.include_all,
                                    all_value=v.all_value, options=opts)
        scenarios.append(chosen)
    return scenarios


def _check_result(q: PanelQuery, text: str, result: dict[str, Any]) -> int:
    series = result.get("series") or []
    values = [v for s in series for row in s["values"] for v in row[1:] if v is not None]
    assert values, f"{q.name}: no data\n{text}"
    if "GROUP BY time(" in text:
        for s in series:
            times = [row[0] for row in s["values"]]
            assert times == sorted(set(times)), f"{q.name}: time buckets out of order or repeated\n{text}"
    return len(values)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_query_returns_data(engine, name):
    d = DASHBOARDS[name]
    options = _options(engine, d, {})
    queries = panel_queries(d)
    assert queries
    for variables in _scenarios(d, options):
        for q in queries:
            frm, to = _time_range(d, q, engine)
            interval = panel_interval_ms(frm, to, q.max_data_points or MAX_DATA_POINTS, q.min_interval)
            text = expand(q.query, from_ms=frm, to_ms=to, interval_ms=interval, variables=variables)
            _check_result(q, text, engine.query(text))


def test_variables_list_what_the_fleet_has(engine):
    ap = _options(engine, DASHBOARDS["ap-detail"], {})["ap"]
    assert ap == sorted(a.name for a in fleet.APS)
    zone = _options(engine, DASHBOARDS["speaker-network"], {})["zone"]
    assert zone == sorted({*fleet.ZONES, *(fleet.district(z) for z in fleet.ZONES)})


def test_the_zone_prefix_selects_exactly_the_zones_under_it(engine):
    d = DASHBOARDS["speaker-network"]
    table = next(q for q in panel_queries(d) if q.panel == "Nodes")
    options = _options(engine, d, {})
    frm, to = _time_range(d, table, engine)
    for prefix in ("binh-phuoc/dong-xoai", "binh-phuoc/bu-dang/duc-lieu"):
        var = Variable("zone", [prefix], multi=True, include_all=True, all_value=".*", options=options["zone"])
        result = engine.query(expand(table.query, from_ms=frm, to_ms=to, interval_ms=60_000, variables=[var]))
        nodes = {s["tags"]["node"] for s in result["series"]}
        assert nodes == {n for n, z, *_ in fleet.SPEAKERS if z == prefix or z.startswith(prefix + "/")}


def test_the_overview_counts_match_the_fleet(engine):
    d = DASHBOARDS["province-overview"]
    frm, to = _time_range(d, None, engine)

    def stat(title: str) -> float:
        q = next(q for q in panel_queries(d) if q.panel == title)
        result = engine.query(expand(q.query, from_ms=frm, to_ms=to, interval_ms=60_000))
        return result["series"][0]["values"][-1][1]

    assert (stat("APs up"), stat("APs down")) == (len(fleet.APS) - 1, 1)
    assert (stat("Speakers online"), stat("Speakers offline")) == (len(fleet.SPEAKERS) - 1, 1)


# --------------------------------------------------------------------------- alert rules


def _reduce(values: list[float], how: str) -> float | None:
    values = [v for v in values if v is not None]  # settings.mode dropNN
    if not values:
        return None
    return {"last": values[-1], "mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "sum": sum(values), "count": len(values), "median": statistics.median(values)}[how]


def _fires(rule: dict[str, Any], engine: Engine) -> dict[tuple[tuple[str, str], ...], float]:
    """Run A on the engine, then B (reduce) and C (threshold) as Grafana's expressions do."""
    a, b, c = rule["data"]
    frm = engine.now_ms - a["relativeTimeRange"]["from"] * 1000
    text = expand(a["model"]["query"], from_ms=frm, to_ms=engine.now_ms, interval_ms=a["model"]["intervalMs"])
    result = engine.query(text)
    series = result.get("series") or []
    assert series, f"alert {rule['uid']}: its query returns no data\n{text}"
    evaluator = c["model"]["conditions"][0]["evaluator"]
    firing = {}
    for s in series:
        value = _reduce([row[1] for row in s["values"]], b["model"]["reducer"])
        assert value is not None, f"alert {rule['uid']}: series {s.get('tags')} is all null"
        limit = evaluator["params"][0]
        if (value > limit) if evaluator["type"] == "gt" else (value < limit):
            firing[tuple(sorted((s.get("tags") or {}).items()))] = value
    return firing


RULES = {r["uid"]: r for r in alerts.api_rules()}


def test_ap_down_fires_for_the_down_ap_only(engine):
    firing = _fires(RULES["netmgr-ap-down"], engine)
    assert list(firing) == [(("ap", fleet.DOWN_AP), ("zone", fleet.ZONES[0]))]


def test_speaker_offline_fires_for_the_offline_node_only(engine):
    firing = _fires(RULES["netmgr-speaker-offline"], engine)
    assert list(firing) == [(("node", fleet.OFFLINE_SPEAKER), ("zone", fleet.BAD_DELIVERY_ZONE))]


def test_broadcast_delivery_fires_for_the_zone_under_90_percent_only(engine):
    firing = _fires(RULES["netmgr-broadcast-delivery"], engine)
    assert firing == {(("priority", "normal"), ("zone", fleet.BAD_DELIVERY_ZONE)): pytest.approx(0.8)}


def test_spool_growing_fires_for_the_spooling_host(engine):
    firing = _fires(RULES["netmgr-spool-growing"], engine)
    assert list(firing) == [(("host", fleet.SPOOL_HOST),)]
    assert next(iter(firing.values())) > 0


def test_every_alert_rule_is_checked_here():
    assert set(RULES) == {"netmgr-ap-down", "netmgr-speaker-offline", "netmgr-broadcast-delivery",
                          "netmgr-spool-growing"}
