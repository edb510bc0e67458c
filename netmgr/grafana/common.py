"""What every netmgr dashboard and alert rule shares: uids, the data source, the InfluxQL target.

grafana-foundation-sdk has no model for the InfluxDB data source's queries, so
:class:`InfluxQLQuery` is one (a ``Dataquery`` variant registered under the plugin
id ``influxdb``), with :class:`InfluxQL` its builder. Its JSON is the InfluxDB
plugin's query model for a raw InfluxQL query: ``refId``, ``query``,
``rawQuery: true``, ``resultFormat`` (``time_series`` or ``table``), ``alias``.
"""

from __future__ import annotations

import typing

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from netmgr.grafana.influxql import Select

DATASOURCE_UID = "netmgr-influxdb"
DATASOURCE_TYPE = "influxdb"
DATASOURCE_NAME = "netmgr InfluxDB"
FOLDER_UID = "netmgr"
FOLDER_TITLE = "netmgr"
RULE_GROUP = "netmgr"
TAGS = ["netmgr"]


def datasource_ref() -> DataSourceRef:
    """The InfluxDB data source every panel and variable queries (fixed uid, provisioned with it)."""
    return DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL query of Grafana's InfluxDB data source (the target of a panel or alert)."""

    def __init__(self, ref_id: str = "A", query: str = "", result_format: str = "time_series",
                 alias: str | None = None, hide: bool | None = None,
                 datasource: DataSourceRef | None = None, interval_ms: int | None = None,
                 max_data_points: int | None = None) -> None:
        self.ref_id = ref_id
        self.query = query
        self.result_format = result_format
        self.alias = alias
        self.hide = hide
        self.datasource = datasource
        self.interval_ms = interval_ms
        self.max_data_points = max_data_points

    def to_json(self) -> dict[str, object]:
        """The query model as Grafana stores it."""
        out: dict[str, object] = {"refId": self.ref_id, "query": self.query, "rawQuery": True,
                                  "resultFormat": self.result_format}
        if self.alias is not None:
            out["alias"] = self.alias
        if self.hide is not None:
            out["hide"] = self.hide
        if self.datasource is not None:
            out["datasource"] = self.datasource.to_json()
        if self.interval_ms is not None:
            out["intervalMs"] = self.interval_ms
        if self.max_data_points is not None:
            out["maxDataPoints"] = self.max_data_points
        return out

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> typing.Self:
        """Read the query model back (dashboards loaded with the SDK keep their InfluxQL)."""
        ds = data.get("datasource")
        return cls(ref_id=data.get("refId", "A"), query=data.get("query", ""),
                   result_format=data.get("resultFormat", "time_series"), alias=data.get("alias"),
                   hide=data.get("hide"), datasource=DataSourceRef.from_json(ds) if ds else None,
                   interval_ms=data.get("intervalMs"), max_data_points=data.get("maxDataPoints"))


cogruntime.register_dataquery_variant(
    cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE, from_json_hook=InfluxQLQuery.from_json))


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """Builder of an :class:`InfluxQLQuery` from a :class:`~netmgr.grafana.influxql.Select`."""

    def __init__(self, query: Select | str, ref_id: str = "A") -> None:
        text = query.render() if isinstance(query, Select) else query
        self._internal = InfluxQLQuery(ref_id=ref_id, query=text, datasource=datasource_ref())

    def build(self) -> InfluxQLQuery:
        """The query model."""
        return self._internal

    def ref_id(self, ref_id: str) -> typing.Self:
        """The query's letter in its panel (A, B, ...), the name alert expressions use."""
        self._internal.ref_id = ref_id
        return self

    def table(self) -> typing.Self:
        """Return rows (``resultFormat: table``) instead of time series."""
        self._internal.result_format = "table"
        return self

    def alias(self, alias: str) -> typing.Self:
        """Series name pattern, e.g. ``$tag_ifname rx`` ($tag_<tag>, $col, $m)."""
        self._internal.alias = alias
        return self

    def for_alerting(self, interval_ms: int = 60_000, max_data_points: int = 43_200) -> typing.Self:
        """Add what Grafana's alert rule editor stores with a query (interval, max data points)."""
        self._internal.interval_ms = interval_ms
        self._internal.max_data_points = max_data_points
        return self
