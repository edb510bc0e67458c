"""``netmgr audit list``."""

from __future__ import annotations

import click

from netmgr.cli.context import CliContext, echo_json, json_option, pass_ctx
from netmgr.cli.output import print_table, wide_option
from netmgr.humanize import format_time


@click.group()
def audit() -> None:
    """The audit log: every write and every refused write."""


@audit.command("list")
@click.option("--since", help="ISO time, e.g. 2026-12-01T06:00+07:00.")
@click.option("--actor")
@click.option("--outcome", type=click.Choice(["ok", "denied", "error"]))
@click.option("--zone", help="Only this zone and below.")
@click.option("--action", help="Action prefix, e.g. ap. or zone.add")
@click.option("--limit", type=click.IntRange(1, 10000), default=200, show_default=True)
@wide_option
@json_option
@pass_ctx
def list_(obj: CliContext, since: str | None, actor: str | None, outcome: str | None, zone: str | None,
          action: str | None, limit: int, wide: bool, as_json: bool) -> None:
    """Newest first."""
    items = obj.client().get("/api/v1/audit", since=since, actor=actor, outcome=outcome, zone=zone,
                             action=action, limit=limit)["items"]
    if as_json:
        echo_json(items)
        return
    tz = obj.tz()  # stored in UTC, shown in the daemon's zone
    rows = [{**it, "when": format_time(it["ts"], tz), "zone_name": obj.zone_name(it.get("zone"))}
            for it in items]
    print_table(rows, [("when", "when", "essential"), ("actor", "who", "essential"),
                       ("action", "action", "essential"), ("outcome", "outcome", "essential"),
                       ("target", "target"), ("zone_name", "zone"),
                       ("detail", "detail"), ("remote", "from", "wide"), ("zone", "zone path", "wide")],
                wide=wide, tz=tz)
