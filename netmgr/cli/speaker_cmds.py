"""``netmgr speaker``: speaker node inventory (radio commands join later)."""

from __future__ import annotations

from pathlib import Path

import click

from netmgr.cli.context import CliContext, echo_json, json_option, pass_ctx, print_table
from netmgr.cli.inventory_cmds import file_argument, format_option, import_file, location_options, parse_tags


@click.group()
def speaker() -> None:
    """Smart-radio speaker nodes."""


@speaker.command("add")
@click.argument("node_id")
@click.option("--name", default="", help="Display name, e.g. 'Cụm loa ấp 2'.")
@click.option("--model", default="")
@location_options
@json_option
@pass_ctx
def add(obj: CliContext, node_id: str, name: str, model: str, zone: str, lat: float | None,
        lon: float | None, tags: tuple[str, ...], as_json: bool) -> None:
    """Add a speaker node; NODE_ID is its MQTT identity (lowercase, digits, '-')."""
    r = obj.client().post("/api/v1/speakers", {"id": node_id, "name": name, "model": model, "zone": zone,
                                               "lat": lat, "lon": lon, "tags": parse_tags(tags)})
    echo_json(r) if as_json else click.echo(f"added speaker {r['id']} in {r['zone']}")


@speaker.command("import")
@file_argument
@format_option
@pass_ctx
def import_(obj: CliContext, file: Path, fmt: str | None) -> None:
    """Import speakers from CSV or YAML (id,zone[,name,model,lat,lon,tags]). All or nothing."""
    import_file(obj, "speakers", file, fmt)


@speaker.command("list")
@click.option("--zone", help="Only this zone and below.")
@click.option("--tag", help="key or key=value")
@json_option
@pass_ctx
def list_(obj: CliContext, zone: str | None, tag: str | None, as_json: bool) -> None:
    """List speaker nodes."""
    items = obj.client().get("/api/v1/speakers", zone=zone, tag=tag)["items"]
    if as_json:
        echo_json(items)
        return
    print_table(items, [("id", "node"), ("name", "name"), ("zone", "zone"), ("model", "model")])


@speaker.command("show")
@click.argument("node_id")
@json_option
@pass_ctx
def show(obj: CliContext, node_id: str, as_json: bool) -> None:
    """Show one speaker node."""
    r = obj.client().get(f"/api/v1/speakers/{node_id}")
    if as_json:
        echo_json(r)
        return
    for k, v in r.items():
        click.echo(f"{k:6} {v if v is not None else ''}")


@speaker.command("remove")
@click.argument("node_id")
@pass_ctx
def remove(obj: CliContext, node_id: str) -> None:
    """Remove a speaker node from the inventory."""
    obj.client().delete(f"/api/v1/speakers/{node_id}")
    click.echo(f"removed speaker {node_id}")
