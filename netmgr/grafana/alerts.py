"""Grafana-managed alert rules as code: one rule group ``netmgr`` in the folder ``netmgr``.

Every rule is the same chain: **A** an InfluxQL query (built with
:mod:`netmgr.grafana.influxql`, one series per AP/node/zone/host), **B** a
``reduce`` expression to one number per series, **C** a ``threshold`` expression
that is the rule's condition. ``for`` is the hysteresis: the condition must hold
at every evaluation for that long before the alert fires (until then it is
Pending), so a single missed poll pages nobody.

=======================  =================================  =====  ==========
uid                      fires when                         for    no data
=======================  =================================  =====  ==========
netmgr-ap-down           last ``ap.up`` of an AP is 0       5m     NoData
netmgr-speaker-offline   last ``speaker.online`` is 0       15m    OK
netmgr-broadcast-        accepted / targets of a zone's     10m    OK
delivery                 broadcasts in the last hour < 0.9
netmgr-spool-growing     telemetry spool grew on average    10m    OK
                         over the last 15 min
=======================  =================================  =====  ==========

The rules are exported twice: as the provisioning HTTP API's
``ProvisionedAlertRule`` (what ``push`` sends) and in Grafana's file
provisioning format (``dashboards/provisioning/alerting/netmgr.yaml``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import alerting, expr
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import alerting as am
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from netmgr.grafana.common import DATASOURCE_UID, FOLDER_UID, RULE_GROUP, InfluxQL
from netmgr.grafana.influxql import Select, fn, parse_interval, tag_is

GROUP_INTERVAL = "1m"
EXPR_UID = "__expr__"


@dataclass(frozen=True)
class RuleSpec:
    """What one alert rule watches and when it fires."""

    uid: str
    title: str
    query: Select
    range_s: int
    reducer: str
    op: str  # "gt" or "lt"
    threshold: float
    for_: str
    no_data: str
    severity: str
    summary: str
    description: str
    dashboard: str


RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        uid="netmgr-ap-down", title="AP down",
        query=Select("ap").field(fn("last", "up"), "up").in_time_range().by_tags("ap", "zone"),
        range_s=600, reducer="last", op="lt", threshold=1, for_="5m", no_data="NoData",
        severity="critical",
        summary="AP {{ $labels.ap }} is down",
        description="AP {{ $labels.ap }} in {{ $labels.zone }} has not answered SNMP for 5 minutes "
                    "(ap.up = 0). Check its power and uplink; netmgr ap show {{ $labels.ap }}.",
        dashboard="/d/netmgr-ap?var-ap={{ $labels.ap }}"),
    RuleSpec(
        uid="netmgr-speaker-offline", title="Speaker offline",
        query=Select("speaker").field(fn("last", "online"), "online").in_time_range().by_tags("node", "zone"),
        range_s=86400, reducer="last", op="lt", threshold=1, for_="15m", no_data="OK",
        severity="warning",
        summary="Speaker {{ $labels.node }} is offline",
        description="Speaker node {{ $labels.node }} in {{ $labels.zone }} has been offline for 15 minutes "
                    "(last will or missed telemetry). It will miss broadcasts until it is back.",
        dashboard="/d/netmgr-speakers?var-zone={{ $labels.zone }}"),
    RuleSpec(
        uid="netmgr-broadcast-delivery", title="Broadcast delivery under 90%",
        query=Select("broadcast").field(fn("sum", "accepted") / fn("sum", "targets"), "delivery")
        .where('"targets" > 0').in_time_range().by_tags("zone", "priority"),
        range_s=3600, reducer="last", op="lt", threshold=0.9, for_="10m", no_data="OK",
        severity="warning",
        summary="Broadcasts in {{ $labels.zone }} reached under 90% of their speakers",
        description="In the last hour, {{ $labels.priority }} broadcasts in {{ $labels.zone }} were accepted "
                    "by {{ humanizePercentage $values.B.Value }} of the targeted speakers.",
        dashboard="/d/netmgr-broadcasts?var-zone={{ $labels.zone }}"),
    RuleSpec(
        uid="netmgr-spool-growing", title="Telemetry spool growing",
        query=Select("netmgr").field(fn("derivative", fn("max", "spool_bytes"), "1m"), "growth")
        .where(tag_is("component", "telemetry")).in_time_range().by_time("1m").by_tags("host"),
        range_s=900, reducer="mean", op="gt", threshold=0, for_="10m", no_data="OK",
        severity="warning",
        summary="Telemetry spool of {{ $labels.host }} keeps growing",
        description="netmgr on {{ $labels.host }} has been spooling telemetry to disk for 10 minutes: "
                    "InfluxDB is unreachable or too slow. Points are kept up to the spool cap, then dropped.",
        dashboard="/d/netmgr-health"),
)


def _rule(spec: RuleSpec, folder_uid: str) -> alerting.Rule:
    expr_ds = DataSourceRef(type_val=EXPR_UID, uid=EXPR_UID)
    query = (alerting.Query("A").datasource_uid(DATASOURCE_UID)
             .relative_time_range(am.RelativeTimeRange(from_val=spec.range_s, to=0))
             .model(InfluxQL(spec.query, "A").for_alerting()))
    reduce_ = (alerting.Query("B").datasource_uid(EXPR_UID)
               .relative_time_range(am.RelativeTimeRange(from_val=0, to=0))
               .model(expr.TypeReduce().ref_id("B").datasource(expr_ds).expression("A")
                      .reducer(spec.reducer)  # type: ignore[arg-type]
                      .settings(expr.ExprTypeReduceSettings().mode("dropNN"))))
    threshold = (alerting.Query("C").datasource_uid(EXPR_UID)
                 .relative_time_range(am.RelativeTimeRange(from_val=0, to=0))
                 .model(expr.TypeThreshold().ref_id("C").datasource(expr_ds).expression("B")
                        .conditions([expr.ExprTypeThresholdConditions().evaluator(
                            expr.ExprTypeThresholdConditionsEvaluator().type(spec.op)  # type: ignore[arg-type]
                            .params([spec.threshold]))])))
    return (alerting.Rule(spec.title).uid(spec.uid).folder_uid(folder_uid).rule_group(RULE_GROUP)
            .org_id(1).condition("C").queries([query, reduce_, threshold]).for_val(spec.for_)
            .no_data_state(spec.no_data)  # type: ignore[arg-type]
            .exec_err_state("Error").is_paused(False)
            .labels({"severity": spec.severity, "team": "noc", "source": "netmgr"})
            .annotations({"summary": spec.summary, "description": spec.description,
                          "dashboard": spec.dashboard}))


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, cls=JSONEncoder))


def api_rules(folder_uid: str = FOLDER_UID) -> list[dict[str, Any]]:
    """The rules as the provisioning HTTP API takes them (``ProvisionedAlertRule``)."""
    return [_plain(_rule(spec, folder_uid).build()) for spec in RULES]


def file_groups(folder_title: str, org_id: int = 1) -> dict[str, Any]:
    """The rules in Grafana's file provisioning format (``apiVersion: 1``, ``groups: [...]``).

    The file format names the folder by its title (Grafana creates it if missing).
    """
    rules = [{k: r[k] for k in ("uid", "title", "condition", "data", "noDataState", "execErrState",
                                "for", "labels", "annotations", "isPaused")} for r in api_rules()]
    return {"apiVersion": 1, "groups": [{"orgId": org_id, "name": RULE_GROUP, "folder": folder_title,
                                         "interval": GROUP_INTERVAL, "rules": rules}]}


def group_interval_seconds() -> int:
    """The rule group's evaluation interval in seconds (what the rule-groups API stores)."""
    return parse_interval(GROUP_INTERVAL) // 1000
