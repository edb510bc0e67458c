"""Every query a dashboard or an alert rule sends, with what Grafana needs to expand it.

Used by the tests that run each query on a real InfluxDB engine, and useful to
anyone checking the dashboards against their own InfluxDB: walk
:func:`panel_queries` and :func:`variable_queries`, expand each with
:func:`netmgr.grafana.influxql.expand`, send it to ``/query``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel."""

    dashboard: str
    panel: str
    ref_id: str
    query: str
    result_format: str
    time_from: str | None  # the panel's relative time override (e.g. "now/d"), if any
    min_interval: str | None  # the panel's min interval (lower bound of $__interval)
    max_data_points: int | None

    @property
    def name(self) -> str:
        """``dashboard / panel / refId``: how a failing query is named."""
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


@dataclass(frozen=True)
class VariableQuery:
    """A template variable and where its options come from."""

    name: str
    type: str
    query: str
    multi: bool
    include_all: bool
    all_value: str | None


def _panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in items:
        if p.get("type") == "row":
            yield from _panels(p.get("panels") or [])
        else:
            yield p


def panel_queries(model: dict[str, Any]) -> list[PanelQuery]:
    """Every (not hidden) target of every panel of the dashboard JSON ``model``."""
    out = []
    for p in _panels(model.get("panels") or []):
        for t in p.get("targets") or []:
            if t.get("hide"):
                continue
            out.append(PanelQuery(
                dashboard=model.get("uid", "?"), panel=p.get("title", "?"), ref_id=t.get("refId", "?"),
                query=t.get("query", ""), result_format=t.get("resultFormat", "time_series"),
                time_from=p.get("timeFrom"), min_interval=p.get("interval"),
                max_data_points=p.get("maxDataPoints")))
    return out


def variable_queries(model: dict[str, Any]) -> list[VariableQuery]:
    """The dashboard's template variables, in order (later ones may use earlier ones)."""
    out = []
    for v in (model.get("templating") or {}).get("list") or []:
        q = v.get("query", "")
        if isinstance(q, dict):
            q = q.get("query", "")
        out.append(VariableQuery(name=v["name"], type=v.get("type", ""), query=q, multi=bool(v.get("multi")),
                                 include_all=bool(v.get("includeAll")), all_value=v.get("allValue")))
    return out
