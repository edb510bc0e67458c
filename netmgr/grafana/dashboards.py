"""The NOC's dashboards, built with grafana-foundation-sdk on the agreed telemetry schema.

Five dashboards (uids are stable: links, bookmarks and ``push`` depend on them):

=====================  ====================  ==================================================
uid                    file                  what
=====================  ====================  ==================================================
netmgr-overview        province-overview     APs up/down, clients, traffic, speakers, map,
                                             today's broadcasts
netmgr-ap              ap-detail             one AP ($ap): status, interfaces, radios, CPU
netmgr-speakers        speaker-network       speakers of a zone prefix ($zone)
netmgr-broadcasts      broadcast-audit       per occurrence outcome, delivery ratio, latency
netmgr-health          netmgr-health         the daemon itself: polls, queues, spool, MQTT
=====================  ====================  ==================================================

Every query is InfluxQL from :mod:`netmgr.grafana.influxql` against the data
source uid ``netmgr-influxdb``. Measurements, tags and fields are those of
the telemetry schema (docs/telemetry.md): ``ap``, ``ap_if``, ``ap_radio``,
``speaker``, ``broadcast``, ``netmgr``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import geomap, stat, table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import geomap as gm

from netmgr.grafana.common import TAGS, InfluxQL, datasource_ref
from netmgr.grafana.influxql import Expr, Select, col, fn, show_tag_values, tag_is, tag_matches

AP = tag_matches("ap", "^$ap$")
# A zone path prefix: "binh-phuoc/dong-xoai" matches the district and every commune in it,
# never "binh-phuoc/dong-xoai-2". "All" is ".*" (Grafana inserts a custom all value as is).
ZONE = tag_matches("zone", "^$zone(\\/|$)")
PRIORITY = tag_matches("priority", "^$priority$")
ONLINE_TEXT = {"type": "value", "options": {"0": {"text": "offline", "index": 0},
                                            "1": {"text": "online", "index": 1}}}


# --------------------------------------------------------------------------- panel helpers


def _thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=v, color=c) for v, c in steps])


def _up_down_mappings(up: str = "UP", down: str = "DOWN") -> list[dm.ValueMapping]:
    return [dm.ValueMap(options={
        "0": dm.ValueMappingResult(text=down, color="red", index=0),
        "1": dm.ValueMappingResult(text=up, color="green", index=1),
    })]


def _targets(panel: Any, queries: Iterable[InfluxQL]) -> Any:
    for i, q in enumerate(queries):
        panel = panel.with_target(q.ref_id(chr(ord("A") + i)))
    return panel


def ts(title: str, *queries: InfluxQL, unit: str = "short", w: int = 12, h: int = 8,
       min_interval: str | None = None, description: str | None = None,
       bars: bool = False, step: bool = False, max_: float | None = None) -> timeseries.Panel:
    """A time series panel; the legend is a table with last/max so a NOC reads numbers."""
    p = (timeseries.Panel().title(title).datasource(datasource_ref()).unit(unit).span(w).height(h)
         .legend(cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE)
                 .placement(cm.LegendPlacement.BOTTOM).show_legend(True).calcs(["lastNotNull", "max"]))
         .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
         .fill_opacity(10).line_width(1).span_nulls(False))
    if bars:
        p = p.draw_style(cm.GraphDrawStyle.BARS).fill_opacity(60)
    if step:
        p = p.line_interpolation(cm.LineInterpolation.STEP_AFTER)
    if min_interval:
        p = p.interval(min_interval)
    if description:
        p = p.description(description)
    if max_ is not None:
        p = p.max(max_)
    return _targets(p, queries)


def st(title: str, *queries: InfluxQL, unit: str = "short", w: int = 4, h: int = 4,
       thresholds: db.ThresholdsConfig | None = None, mappings: list[dm.ValueMapping] | None = None,
       description: str | None = None, graph: bool = False) -> stat.Panel:
    """A stat panel showing the last value (colour from thresholds)."""
    p = (stat.Panel().title(title).datasource(datasource_ref()).unit(unit).span(w).height(h)
         .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
         .color_mode(cm.BigValueColorMode.BACKGROUND)
         .graph_mode(cm.BigValueGraphMode.AREA if graph else cm.BigValueGraphMode.NONE)
         .text_mode(cm.BigValueTextMode.AUTO).justify_mode(cm.BigValueJustifyMode.AUTO)
         .orientation(cm.VizOrientation.AUTO).show_percent_change(False).wide_layout(True)
         .thresholds(thresholds or _thresholds((None, "blue"))))
    if mappings:
        p = p.mappings(mappings)
    if description:
        p = p.description(description)
    return _targets(p, queries)


def _group_by(keys: Iterable[str], values: Iterable[str]) -> list[dm.DataTransformerConfig]:
    """Grafana's groupBy transformation (last value of each column per key), names kept."""
    keys, values = list(keys), list(values)
    fields: dict[str, Any] = {k: {"operation": "groupby", "aggregations": []} for k in keys}
    fields.update({v: {"operation": "aggregate", "aggregations": ["lastNotNull"]} for v in values})
    return [
        dm.DataTransformerConfig(id_val="groupBy", options={"fields": fields}),
        dm.DataTransformerConfig(id_val="organize", options={
            "renameByName": {f"{v} (lastNotNull)": v for v in values},
            "indexByName": {}, "excludeByName": {}}),
    ]


def tbl(title: str, *queries: InfluxQL, w: int = 24, h: int = 10, description: str | None = None,
        sort_by: str | None = None, desc: bool = True) -> table.Panel:
    """A table of rows (queries in table format)."""
    p = (table.Panel().title(title).datasource(datasource_ref()).span(w).height(h)
         .show_header(True).cell_height(cm.TableCellHeight.SM).filterable(True))
    if sort_by:
        p = p.sort_by([cb.TableSortByFieldState().display_name(sort_by).desc(desc)])
    if description:
        p = p.description(description)
    return _targets(p, (q.table() for q in queries))


def _color_cells(unit: str, steps: list[tuple[float | None, str]]) -> list[dm.DynamicConfigValue]:
    return [
        dm.DynamicConfigValue(id_val="unit", value=unit),
        dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
        dm.DynamicConfigValue(id_val="thresholds", value={
            "mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}),
    ]


def _variable(name: str, label: str, query: str, *, multi: bool = False, all_value: str | None = None,
              description: str = "") -> db.QueryVariable:
    v = (db.QueryVariable(name).label(label).query(query).datasource(datasource_ref())
         .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
         .multi(multi))
    if all_value is not None:
        v = v.include_all(True).all_value(all_value)
    if description:
        v = v.description(description)
    return v


def _dashboard(uid: str, title: str, tags: list[str], *, time_from: str, refresh: str,
               description: str) -> db.Dashboard:
    return (db.Dashboard(title).uid(uid).tags([*TAGS, *tags]).description(description)
            .time(time_from, "now").refresh(refresh).timezone("browser").editable()
            .tooltip(dm.DashboardCursorSync.CROSSHAIR)
            .timepicker(db.TimePicker().refresh_intervals(["10s", "30s", "1m", "5m", "15m", "1h"]))
            .link(db.DashboardLink("netmgr").type(dm.DashboardLinkType.DASHBOARDS).tags(TAGS)
                  .as_dropdown(True).include_vars(False).keep_time(True)))


def fn_ratio(num: str, den: str) -> Expr:
    """``"num" / "den"`` of two raw fields, point by point."""
    return col(num) / col(den)


def _last_per_series(measurement: str, fld: str, *tags: str, where: Iterable[str] = ()) -> Select:
    """The last value of ``fld`` of every series (one row per tag combination) in the range."""
    return Select(measurement).field(fn("last", fld), fld).where(*where).in_time_range().by_tags(*tags)


def _count_over_time(measurement: str, fld: str, key: str, where: Iterable[str] = ()) -> Select:
    """Per time bucket: how many ``key`` series reported ``fld`` = 1 in it (their last value).

    Use it with a min interval of at least twice the reporting period, so every
    series that is still reporting has a point in every bucket.
    """
    inner = (Select(measurement).field(fn("last", fld), fld).where(*where).in_time_range()
             .by_time().by_tags(key).fill("none"))
    return Select(inner).field(fn("sum", fld), fld).in_time_range().by_time()


# --------------------------------------------------------------------------- the dashboards


def province_overview() -> db.Dashboard:
    """Province overview: the two networks at a glance, a map, and today's broadcasts."""
    aps_last = _last_per_series("ap", "up", "ap")
    spk_last = _last_per_series("speaker", "online", "node")
    # Per AP and bucket first, then the sum over APs; buckets of 2 min or more hold at least
    # one poll of every AP (polled every minute), so the sum never dips for a missed bucket.
    clients = (Select(Select("ap").field(fn("mean", "clients"), "clients").in_time_range()
                      .by_time().by_tags("ap").fill("none"))
               .field(fn("sum", "clients"), "clients").in_time_range().by_time())
    traffic = (Select(Select("ap_if").field(fn("mean", "rx_bps"), "rx").field(fn("mean", "tx_bps"), "tx")
                      .in_time_range().by_time().by_tags("ap", "ifname").fill("none"))
               .field(fn("sum", "rx"), "rx").field(fn("sum", "tx"), "tx").in_time_range().by_time())
    ap_map = (Select("ap").field(fn("last", "up"), "up").field(fn("last", "lat"), "lat")
              .field(fn("last", "lon"), "lon").in_time_range().by_tags("ap", "zone"))
    spk_map = (Select("speaker").field(fn("last", "online"), "online").field(fn("last", "lat"), "lat")
               .field(fn("last", "lon"), "lon").in_time_range().by_tags("node", "zone"))
    today = (Select("broadcast").field("zone").field("priority").field("program_id").field("occurrence")
             .field("title").field("targets").field("accepted").field("played").field("failed")
             .field("offline").field("late").in_time_range())

    red_green = _thresholds((None, "red"), (1, "green"))
    layer_style = {"opacity": 0.85, "size": {"fixed": 6, "min": 4, "max": 12},
                   "rotation": {"fixed": 0, "mode": "mod", "min": -360, "max": 360}}

    def markers(name: str, ref: str, status: str, symbol: str) -> cb.MapLayerOptions:
        return (cb.MapLayerOptions().type("markers").name(name).tooltip(True)
                .location(cb.FrameGeometrySource().mode(cm.FrameGeometrySourceMode.COORDS)
                          .latitude("lat").longitude("lon"))
                .filter_data({"id": "byRefId", "options": ref})
                .config({"showLegend": True, "style": {
                    **layer_style, "color": {"field": status, "fixed": "dark-green"},
                    "symbol": {"fixed": f"img/icons/marker/{symbol}.svg", "mode": "fixed"}}}))

    the_map = (geomap.Panel().title("Map: APs (circles) and speakers (triangles), red = down")
               .datasource(datasource_ref()).span(24).height(14)
               .description("Last known status and position in the time range; "
                            "devices without coordinates are not drawn.")
               .view(geomap.MapViewConfig().id("fit").lat(0).lon(0).zoom(8).all_layers(True))
               .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True)
                         .show_attribution(True).show_scale(True))
               .basemap(cb.MapLayerOptions().type("default").name("Basemap"))
               .layers([markers("APs", "A", "up", "circle"), markers("Speakers", "B", "online", "triangle")])
               .tooltip(geomap.TooltipOptions().mode(gm.TooltipMode.DETAILS))
               .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
               .thresholds(red_green).mappings(_up_down_mappings()))
    the_map = _targets(the_map, [InfluxQL(ap_map).table(), InfluxQL(spk_map).table()])

    broadcasts = tbl("Today's broadcasts", InfluxQL(today), h=9, sort_by="occurrence",
                     description="Every broadcast occurrence since local midnight, latest outcome.")
    broadcasts = (broadcasts.time_from("now/d").hide_time_override(False)
                  .transformations(_group_by(["occurrence", "program_id", "zone", "priority", "title"],
                                             ["targets", "accepted", "played", "failed", "offline", "late"])))

    return (_dashboard("netmgr-overview", "Province overview", ["overview"], time_from="now-6h",
                       refresh="1m", description="Smart Wi-Fi and smart radio of the province at a glance.")
            .with_row(db.Row("Smart Wi-Fi"))
            .with_panel(st("APs up", InfluxQL(Select(aps_last).field(fn("sum", "up"), "up").in_time_range()),
                           thresholds=_thresholds((None, "green")),
                           description="APs whose last poll in the time range answered."))
            .with_panel(st("APs down", InfluxQL(Select(aps_last).field(fn("count", "up") - fn("sum", "up"),
                                                                       "down").in_time_range()),
                           thresholds=_thresholds((None, "green"), (1, "red")),
                           description="APs whose last poll in the time range failed."))
            .with_panel(ts("Clients on all APs", InfluxQL(clients).alias("clients"), w=8,
                           min_interval="2m"))
            .with_panel(ts("Traffic, all AP interfaces", InfluxQL(traffic).alias("$col"), unit="bps", w=8,
                           min_interval="2m"))
            .with_row(db.Row("Smart radio"))
            .with_panel(st("Speakers online", InfluxQL(Select(spk_last).field(fn("sum", "online"), "online")
                                                       .in_time_range()),
                           thresholds=_thresholds((None, "green"))))
            .with_panel(st("Speakers offline",
                           InfluxQL(Select(spk_last).field(fn("count", "online") - fn("sum", "online"),
                                                           "offline").in_time_range()),
                           thresholds=_thresholds((None, "green"), (1, "orange"))))
            .with_panel(ts("Speakers online", InfluxQL(_count_over_time("speaker", "online", "node"))
                           .alias("online"), w=16, min_interval="2m"))
            .with_row(db.Row("Map"))
            .with_panel(the_map)
            .with_row(db.Row("Broadcasts"))
            .with_panel(broadcasts))


def ap_detail() -> db.Dashboard:
    """One access point: status, response time, interfaces, radios, CPU and memory."""
    def last(fld: str) -> InfluxQL:
        return InfluxQL(Select("ap").field(fn("last", fld), fld).where(AP).in_time_range())

    def mean(measurement: str, *fields: str, by: tuple[str, ...] = (), agg: str = "mean") -> Select:
        q = Select(measurement)
        for f in fields:
            q = q.field(fn(agg, f), f)
        return q.where(AP).in_time_range().by_time().by_tags(*by).fill("null")

    def per_minute(fld: str, alias: str) -> tuple[Any, str]:
        return fn("non_negative_derivative", fn("max", fld), "1m"), alias

    errors = Select("ap_if")
    for expr, alias in (per_minute("in_errors", "in"), per_minute("out_errors", "out")):
        errors = errors.field(expr, alias)
    errors = errors.where(AP).in_time_range().by_time().by_tags("ifname").fill("null")

    return (_dashboard("netmgr-ap", "AP detail", ["wifi", "ap"], time_from="now-6h", refresh="1m",
                       description="One Wi-Fi access point; pick it in $ap.")
            .with_variable(_variable("ap", "AP", show_tag_values("ap", "ap"),
                                     description="AP name (tag ap of measurement ap)"))
            .with_row(db.Row("Now"))
            .with_panel(st("Status", last("up"), mappings=_up_down_mappings(),
                           thresholds=_thresholds((None, "red"), (1, "green"))))
            .with_panel(st("Response time", last("response_ms"), unit="ms",
                           thresholds=_thresholds((None, "green"), (500, "orange"), (2000, "red"))))
            .with_panel(st("Uptime", last("uptime_s"), unit="s"))
            .with_panel(st("Clients", last("clients")))
            .with_panel(st("CPU", last("cpu_pct"), unit="percent",
                           thresholds=_thresholds((None, "green"), (80, "orange"), (95, "red"))))
            .with_panel(st("Memory used", last("mem_used_pct"), unit="percent",
                           thresholds=_thresholds((None, "green"), (85, "orange"), (95, "red"))))
            .with_row(db.Row("Over time"))
            .with_panel(ts("Up (1) / down (0)", InfluxQL(mean("ap", "up", agg="min")).alias("up"), w=8,
                           step=True, min_interval="1m", max_=1))
            .with_panel(ts("Response time", InfluxQL(mean("ap", "response_ms")).alias("response"), unit="ms",
                           w=8, min_interval="1m"))
            .with_panel(ts("Clients", InfluxQL(mean("ap", "clients", agg="max")).alias("clients"), w=8,
                           min_interval="1m"))
            .with_panel(ts("CPU and memory", InfluxQL(mean("ap", "cpu_pct", "mem_used_pct")).alias("$col"),
                           unit="percent", max_=100, min_interval="1m"))
            .with_panel(ts("Uptime", InfluxQL(mean("ap", "uptime_s", agg="last")).alias("uptime"), unit="s",
                           min_interval="1m",
                           description="Falls to zero when the AP restarts."))
            .with_row(db.Row("Interfaces"))
            .with_panel(ts("Traffic per interface",
                           InfluxQL(mean("ap_if", "rx_bps", "tx_bps", by=("ifname",)))
                           .alias("$tag_ifname $col"), unit="bps", min_interval="1m"))
            .with_panel(ts("Interface errors per minute", InfluxQL(errors).alias("$tag_ifname $col"),
                           min_interval="1m", description="Increase of the error counters per minute."))
            .with_panel(ts("Interface link (1 up, 0 down)",
                           InfluxQL(mean("ap_if", "oper_up", by=("ifname",), agg="min"))
                           .alias("$tag_ifname"), step=True, min_interval="1m", max_=1))
            .with_row(db.Row("Radios"))
            .with_panel(ts("Clients per radio",
                           InfluxQL(mean("ap_radio", "clients", by=("radio", "band"), agg="max"))
                           .alias("$tag_radio ($tag_band GHz)"), w=8, min_interval="1m"))
            .with_panel(ts("Channel", InfluxQL(mean("ap_radio", "channel", by=("radio", "band"), agg="last"))
                           .alias("$tag_radio ($tag_band GHz)"), w=8, step=True, min_interval="1m"))
            .with_panel(ts("Noise floor", InfluxQL(mean("ap_radio", "noise_dbm", by=("radio", "band")))
                           .alias("$tag_radio ($tag_band GHz)"), unit="dBm", w=8, min_interval="1m")))


def speaker_network() -> db.Dashboard:
    """The speakers of a zone (any path prefix: province, district, commune)."""
    where = (ZONE,)
    last = _last_per_series("speaker", "online", "node", where=where)
    playing = _last_per_series("speaker", "playing", "node", where=where)

    def by_zone(agg: str, fld: str, alias: str) -> InfluxQL:
        return InfluxQL(Select("speaker").field(fn(agg, fld), alias).where(*where).in_time_range()
                        .by_time().by_tags("zone").fill("null")).alias(f"$tag_zone {alias}")

    nodes = Select("speaker")
    for fld in ("online", "playing", "rssi_dbm", "volume", "temperature_c", "voltage_v", "uptime_s",
                "firmware"):
        nodes = nodes.field(fn("last", fld), fld)
    nodes = nodes.where(*where).in_time_range().by_tags("node", "zone", "net")

    node_table = tbl("Nodes", InfluxQL(nodes), h=12, sort_by="online", desc=False,
                     description="Last report of every node in the zone (offline first).")
    node_table = (node_table
                  .override_by_name("online", [*_color_cells("short", [(None, "red"), (1, "green")]),
                                               dm.DynamicConfigValue(id_val="mappings", value=[ONLINE_TEXT])])
                  .override_by_name("rssi_dbm", _color_cells("dBm", [(None, "red"), (-100, "orange"),
                                                                     (-85, "green")]))
                  .override_by_name("temperature_c", _color_cells("celsius", [(None, "green"), (60, "orange"),
                                                                              (75, "red")]))
                  .override_by_name("voltage_v", [dm.DynamicConfigValue(id_val="unit", value="volt")])
                  .override_by_name("uptime_s", [dm.DynamicConfigValue(id_val="unit", value="s")])
                  .override_by_name("Time", [dm.DynamicConfigValue(id_val="custom.hidden", value=True)]))

    return (_dashboard("netmgr-speakers", "Speaker network", ["radio", "speaker"], time_from="now-6h",
                       refresh="1m", description="Smart-radio speaker nodes of a zone; pick it in $zone.")
            .with_variable(_variable("zone", "Zone", show_tag_values("speaker", ["district", "zone"]),
                                     multi=True, all_value=".*",
                                     description="A district or a commune: every zone path under it."))
            .with_row(db.Row("Now"))
            .with_panel(st("Online",
                           InfluxQL(Select(last).field(fn("sum", "online"), "online").in_time_range()),
                           thresholds=_thresholds((None, "green"))))
            .with_panel(st("Offline", InfluxQL(Select(last).field(fn("count", "online") - fn("sum", "online"),
                                                                  "offline").in_time_range()),
                           thresholds=_thresholds((None, "green"), (1, "orange"))))
            .with_panel(st("Playing", InfluxQL(Select(playing).field(fn("sum", "playing"), "playing")
                                               .in_time_range())))
            .with_panel(ts("Online and playing",
                           InfluxQL(_count_over_time("speaker", "online", "node", where)).alias("online"),
                           InfluxQL(_count_over_time("speaker", "playing", "node", where)).alias("playing"),
                           w=12, h=4, min_interval="2m"))
            .with_row(db.Row("Signal and health"))
            .with_panel(ts("Signal (RSSI), mean and worst", by_zone("mean", "rssi_dbm", "mean"),
                           by_zone("min", "rssi_dbm", "worst"), unit="dBm", min_interval="1m"))
            .with_panel(ts("Volume", by_zone("mean", "volume", "mean"), unit="percent", max_=100,
                           min_interval="1m"))
            .with_panel(ts("Temperature, hottest", by_zone("max", "temperature_c", "max"), unit="celsius",
                           min_interval="1m"))
            .with_panel(ts("Supply voltage, lowest", by_zone("min", "voltage_v", "min"), unit="volt",
                           min_interval="1m"))
            .with_row(db.Row("Nodes"))
            .with_panel(node_table))


def broadcast_audit() -> db.Dashboard:
    """Every broadcast occurrence: who was targeted, accepted, played; delivery ratio and latency."""
    where = (ZONE, PRIORITY)
    occurrences = (Select("broadcast").field("zone").field("priority").field("program_id")
                   .field("occurrence").field("title").field("targets").field("accepted").field("played")
                   .field("failed").field("offline").field("late")
                   .field(fn_ratio("accepted", "targets"), "delivery")
                   .field(fn_ratio("played", "targets"), "played_ratio").field("latency_ms")
                   .where(*where, '"targets" > 0').in_time_range())

    def totals(*fields: str) -> InfluxQL:
        q = Select("broadcast")
        for f in fields:
            q = q.field(fn("sum", f), f)
        return InfluxQL(q.where(*where).in_time_range())

    ratio = (Select("broadcast").field(fn("sum", "accepted") / fn("sum", "targets"), "delivery")
             .field(fn("sum", "played") / fn("sum", "targets"), "played")
             .where(*where, '"targets" > 0').in_time_range().by_time().fill("none"))
    ratio_total = (Select("broadcast").field(fn("sum", "accepted") / fn("sum", "targets"), "delivery")
                   .where(*where, '"targets" > 0').in_time_range())
    latency = (Select("broadcast").field(fn("median", "latency_ms"), "median")
               .field(fn("max", "latency_ms"), "max").where(*where).in_time_range()
               .by_time().by_tags("priority").fill("none"))
    misses = (Select("broadcast").field(fn("sum", "failed"), "failed").field(fn("sum", "offline"), "offline")
              .field(fn("sum", "late"), "late").where(*where).in_time_range().by_time().fill("none"))
    count = (Select(Select("broadcast").field(fn("count", fn("distinct", "occurrence")), "n")
                    .where(*where).in_time_range().by_tags("zone", "priority"))
             .field(fn("sum", "n"), "occurrences").in_time_range())

    good = [(None, "red"), (0.9, "orange"), (0.98, "green")]
    table_panel = (tbl("Occurrences", InfluxQL(occurrences), h=12, sort_by="occurrence",
                       description="One row per occurrence (latest outcome). delivery = accepted / targets.")
                   .transformations(_group_by(
                       ["occurrence", "program_id", "zone", "priority", "title"],
                       ["targets", "accepted", "played", "failed", "offline", "late", "delivery",
                        "played_ratio", "latency_ms"]))
                   .override_by_name("delivery", _color_cells("percentunit", good))
                   .override_by_name("played_ratio", _color_cells("percentunit", good))
                   .override_by_name("latency_ms", [dm.DynamicConfigValue(id_val="unit", value="ms")]))

    return (_dashboard("netmgr-broadcasts", "Broadcast audit", ["radio", "broadcast"], time_from="now-7d",
                       refresh="5m",
                       description="Outcome of every broadcast occurrence, per zone and priority.")
            .with_variable(_variable("zone", "Zone", show_tag_values("broadcast", ["district", "zone"]),
                                     multi=True, all_value=".*"))
            .with_variable(db.CustomVariable("priority").label("Priority").values("normal,priority,emergency")
                           .multi(True).include_all(True).all_value(".*"))
            .with_row(db.Row("Totals"))
            .with_panel(st("Occurrences", InfluxQL(count)))
            .with_panel(st("Delivery ratio", InfluxQL(ratio_total), unit="percentunit",
                           thresholds=_thresholds(*good),
                           description="accepted / targets over every occurrence in the range."))
            .with_panel(st("Targets", totals("targets")))
            .with_panel(st("Played", totals("played")))
            .with_panel(st("Failed", totals("failed"), thresholds=_thresholds((None, "green"), (1, "red"))))
            .with_panel(st("Offline / late", totals("offline", "late"),
                           thresholds=_thresholds((None, "green"), (1, "orange"))))
            .with_row(db.Row("Over time"))
            .with_panel(ts("Delivery ratio", InfluxQL(ratio).alias("$col"), unit="percentunit", max_=1,
                           w=8, bars=True, min_interval="1h"))
            .with_panel(ts("Latency publish → accepted", InfluxQL(latency).alias("$tag_priority $col"),
                           unit="ms", w=8, bars=True, min_interval="1h"))
            .with_panel(ts("Failed, offline, late", InfluxQL(misses).alias("$col"), w=8, bars=True,
                           min_interval="1h"))
            .with_row(db.Row("Occurrences"))
            .with_panel(table_panel))


def netmgr_health() -> db.Dashboard:
    """The daemon itself: poll durations and lateness, telemetry queue and spool, MQTT nodes."""
    def comp(name: str) -> str:
        return tag_is("component", name)

    def series(component: str, *fields: tuple[Any, str], agg_by_time: bool = True) -> InfluxQL:
        q = Select("netmgr")
        for expr, alias in fields:
            q = q.field(expr, alias)
        q = q.where(comp(component)).in_time_range()
        if agg_by_time:
            q = q.by_time().by_tags("host").fill("null")
        return InfluxQL(q).alias("$tag_host $col")

    def rate(fld: str, per: str = "1m") -> Any:
        return fn("non_negative_derivative", fn("max", fld), per)

    def now(component: str, fld: str) -> InfluxQL:
        return InfluxQL(Select(Select("netmgr").field(fn("last", fld), fld).where(comp(component))
                               .in_time_range().by_tags("host"))
                        .field(fn("sum", fld), fld).in_time_range())

    return (_dashboard("netmgr-health", "netmgr health", ["health"], time_from="now-3h", refresh="30s",
                       description="The netmgr daemon: poller, telemetry pipeline, MQTT side.")
            .with_row(db.Row("Now"))
            .with_panel(st("APs polled", now("poller", "aps")))
            .with_panel(st("Telemetry queue", now("telemetry", "queue_depth"),
                           thresholds=_thresholds((None, "green"), (10000, "orange"), (100000, "red"))))
            .with_panel(st("Spool", now("telemetry", "spool_bytes"), unit="bytes",
                           thresholds=_thresholds((None, "green"), (1, "orange"))))
            .with_panel(st("Nodes online", now("radio", "nodes_online")))
            .with_panel(st("Nodes known", now("radio", "nodes_total")))
            .with_panel(st("Commands in flight", now("radio", "commands_inflight")))
            .with_row(db.Row("Poller"))
            .with_panel(ts("Poll duration", series("poller", (fn("mean", "poll_ms_p50"), "p50"),
                                                   (fn("max", "poll_ms_p99"), "p99")),
                           unit="ms", w=8, min_interval="10s"))
            .with_panel(ts("Polls per minute", series("poller", (rate("polls"), "polls"),
                                                      (rate("polls_failed"), "failed")),
                           w=8, min_interval="1m"))
            .with_panel(ts("Late polls per minute", series("poller", (rate("late_polls"), "late")), w=8,
                           min_interval="1m",
                           description="Polls that started after their due time: the poller cannot keep up."))
            .with_row(db.Row("Telemetry"))
            .with_panel(ts("Queue depth", series("telemetry", (fn("max", "queue_depth"), "queue")), w=8,
                           min_interval="10s"))
            .with_panel(ts("Points per second", series("telemetry", (rate("points_written", "1s"), "written"),
                                                       (rate("points_dropped", "1s"), "dropped")),
                           w=8, min_interval="1m"))
            .with_panel(ts("Write errors per minute", series("telemetry", (rate("write_errors"), "errors")),
                           w=8, min_interval="1m"))
            .with_panel(ts("Spool size", series("telemetry", (fn("max", "spool_bytes"), "bytes")),
                           unit="bytes", min_interval="10s",
                           description="Points kept on disk while InfluxDB is unreachable."))
            .with_panel(ts("Spool points", series("telemetry", (fn("max", "spool_points"), "points")),
                           min_interval="10s"))
            .with_row(db.Row("MQTT (smart radio)"))
            .with_panel(ts("Nodes online", series("radio", (fn("last", "nodes_online"), "online"),
                                                  (fn("last", "nodes_total"), "total")),
                           w=8, min_interval="10s"))
            .with_panel(ts("Messages per second", series("radio", (rate("messages", "1s"), "messages")), w=8,
                           min_interval="1m"))
            .with_panel(ts("Bad messages per minute", series("radio", (rate("bad_messages"), "bad")), w=8,
                           min_interval="1m", description="Messages that failed to parse or validate.")))


@dataclass(frozen=True)
class DashboardSpec:
    """A dashboard and the file it is exported to (``dashboards/<name>.json``)."""

    name: str
    build: Callable[[], db.Dashboard]


DASHBOARDS: tuple[DashboardSpec, ...] = (
    DashboardSpec("province-overview", province_overview),
    DashboardSpec("ap-detail", ap_detail),
    DashboardSpec("speaker-network", speaker_network),
    DashboardSpec("broadcast-audit", broadcast_audit),
    DashboardSpec("netmgr-health", netmgr_health),
)
