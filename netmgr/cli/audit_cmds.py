"""``netmgr audit list``."""

from __future__ import annotations

import click

from netmgr.cli.context import CliContext, echo_json, json_option, pass_ctx, print_table


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
@json_option
@pass_ctx
def list_(obj: CliContext, since: str | None, actor: str | None, outcome: str | None, zone: str | None,
          action: str | None, limit: int, as_json: bool) -> None:
    """Newest first."""
    items = obj.client().get("/api/v1/audit", since=since, actor=actor, outcome=outcome, zone=zone,
                             action=action, limit=limit)["items"]
    if as_json:
        echo_json(items)
        return
    from datetime import datetime

    tz = obj.settings().tz  # stored in UTC, shown in the configured zone
    for it in items:
        it["when"] = datetime.fromisoformat(it["ts"]).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    print_table(items, [("when", "when"), ("actor", "who"), ("action", "action"), ("target", "target"),
                        ("zone", "zone"), ("outcome", "outcome"), ("remote", "from"), ("detail", "detail")])
