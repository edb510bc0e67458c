"""Grafana as code: the NOC's dashboards and alert rules, and how they reach Grafana.

- :mod:`netmgr.grafana.influxql`: the InfluxQL query builder, and Grafana's expansion
  of ``$timeFilter``, ``$__interval`` and template variables (for the tests);
- :mod:`netmgr.grafana.dashboards`: the five dashboards (grafana-foundation-sdk builders);
- :mod:`netmgr.grafana.alerts`: the alert rules (query, reduce, threshold, ``for``);
- :mod:`netmgr.grafana.provisioning`: ``netmgr grafana export`` / ``check`` (files);
- :mod:`netmgr.grafana.push`: ``netmgr grafana push`` (Grafana's HTTP API).

See docs/grafana.md.
"""
