"""``netmgr grafana export|check|push``: dashboards and alert rules as code (docs/grafana.md)."""

from __future__ import annotations

from pathlib import Path

import click

from netmgr.cli.context import CliContext, echo, echo_json, json_option, pass_ctx

DIR_HELP = "Folder of the dashboards JSON and provisioning/ YAML (default: dashboards)."
DIR_TYPE = click.Path(file_okay=False, path_type=Path)


@click.group()
def grafana() -> None:
    """Grafana dashboards and alert rules, built in code: files for provisioning, or pushed by API."""


@grafana.command("export")
@click.option("--dir", "directory", type=DIR_TYPE, default=Path("dashboards"), show_default=True,
              help=DIR_HELP)
@click.option("--influx-url", help="Bake this InfluxDB URL into the data source "
                                   "(default: ${NETMGR_INFLUXDB_URL}, read by Grafana at start).")
@click.option("--database", help="Bake this database (InfluxDB 2/3: the bucket's DBRP name) into the "
                                 "data source (default: ${NETMGR_INFLUXDB_DATABASE}).")
@click.option("--folder", "folder_title", default="netmgr", show_default=True,
              help="Grafana folder of the dashboards and alert rules.")
def export(directory: Path, influx_url: str | None, database: str | None, folder_title: str) -> None:
    """Write <dir>/*.json and <dir>/provisioning/{datasources,dashboards,alerting}/netmgr.yaml.

    The committed dashboards/ folder is this command's output with the defaults:
    `netmgr grafana check` tells when it is stale.
    """
    from netmgr.grafana import provisioning
    from netmgr.grafana.provisioning import DatasourceOptions, generated_files

    defaults = DatasourceOptions()
    ds = DatasourceOptions(url=influx_url or defaults.url, database=database or defaults.database,
                           token=defaults.token)
    result = provisioning.export(directory, generated_files(ds, folder_title=folder_title))
    for rel, action in result.items():
        if action == "written":
            echo(f"wrote {directory / rel}")
    unchanged = sum(1 for a in result.values() if a == "unchanged")
    echo(f"{directory}: {len(result) - unchanged} written, {unchanged} unchanged")


@grafana.command("check")
@click.option("--dir", "directory", type=DIR_TYPE, default=Path("dashboards"), show_default=True,
              help=DIR_HELP)
def check(directory: Path) -> None:
    """Exit 1 when <dir> differs from what `netmgr grafana export` would write (stale files)."""
    from netmgr.errors import NetmgrError
    from netmgr.grafana.provisioning import stale_files

    problems = stale_files(directory)
    if problems:
        for p in problems:
            echo(p, err=True)
        raise NetmgrError(f"{directory} is stale ({len(problems)} file(s)): "
                          f"run `netmgr grafana export --dir {directory}` and commit the result")
    echo(f"{directory}: up to date")


@grafana.command("push")
@click.option("--url", help="Grafana base URL, e.g. https://grafana.example.org (default: [grafana] url).")
@click.option("--token", help="Grafana service account token (default: [grafana] token). Never printed.")
@click.option("--folder", "folder_title", default="netmgr", show_default=True,
              help="Folder for the dashboards and alert rules (created if missing; uid from the title).")
@click.option("--influx-url", help="URL Grafana uses to reach InfluxDB (default: [influxdb] url).")
@click.option("--database",
              help="InfluxQL database (default: [influxdb] bucket; with InfluxDB 2/3 its DBRP name).")
@json_option
@pass_ctx
def push(obj: CliContext, url: str | None, token: str | None, folder_title: str, influx_url: str | None,
         database: str | None, as_json: bool) -> None:
    """Create or update the folder, the InfluxDB data source, the dashboards and the alert rules.

    Idempotent by uid: a second push reports every object unchanged. The data
    source's token is [influxdb] token, sent as `Authorization: Token ...`.
    """
    from netmgr.grafana import push as grafana_push
    from netmgr.grafana.provisioning import DatasourceOptions
    from netmgr.grafana.push import Grafana, Outcome, PushOptions

    url, token, influx_url, database, influx_token = _push_settings(obj, url, token, influx_url, database)

    def show(o: Outcome) -> None:
        if not as_json:
            echo(f"{o.action:9} {o.kind:10} {o.uid}  ({o.title})")

    ds = DatasourceOptions(url=influx_url, database=database, token=influx_token or None)
    opts = PushOptions(datasource=ds, folder_title=folder_title)
    with Grafana(url, token) as client:
        outcomes = grafana_push.push(client, opts, on_outcome=show)
    if as_json:
        echo_json([o.as_dict() for o in outcomes])
    else:
        counts = {a: sum(1 for o in outcomes if o.action == a) for a in ("created", "updated", "unchanged")}
        echo(f"{url}: " + ", ".join(f"{n} {a}" for a, n in counts.items()))


def _push_settings(obj: CliContext, url: str | None, token: str | None, influx_url: str | None,
                   database: str | None) -> tuple[str, str, str, str, str]:
    """``push``'s Grafana URL and token, InfluxDB URL, database and InfluxDB token: options, then config.

    The config is read only when an option is missing (all four given: no config file needed,
    and the data source gets no InfluxDB token).
    """
    from netmgr.errors import UsageError

    settings = None
    if not (url and token and influx_url and database):
        settings = obj.settings()
    url = url or (settings.grafana.url if settings else "")
    if not url:
        raise UsageError("no Grafana URL: pass --url or set [grafana] url")
    token = token or (settings.grafana.token.get_secret_value() if settings else "")
    influx_url = influx_url or (settings.influxdb.url if settings else "")
    if not influx_url:
        raise UsageError("no InfluxDB URL for the Grafana data source: "
                         "pass --influx-url or set [influxdb] url")
    database = database or (settings.influxdb.bucket if settings else "netmgr")
    influx_token = settings.influxdb.token.get_secret_value() if settings else ""
    return url, token, influx_url, database, influx_token
