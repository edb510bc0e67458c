"""``netmgr ap``: access point inventory (the poller's commands join later)."""

from __future__ import annotations

from pathlib import Path

import click

from netmgr.cli.context import CliContext, echo_json, json_option, pass_ctx, print_table
from netmgr.cli.inventory_cmds import file_argument, format_option, import_file, location_options, parse_tags


@click.group()
def ap() -> None:
    """Wi-Fi access points."""


@ap.command("add")
@click.argument("name")
@click.option("--host", required=True, help="IP address or host name of the AP's SNMP agent.")
@click.option("--port", type=click.IntRange(1, 65535), default=161, show_default=True)
@click.option("--community", help="SNMPv2c community (default: [snmp] default_community).")
@click.option("--v3-user", help="SNMPv3 user (then --auth-key, and --priv-key for authPriv).")
@click.option("--auth-key")
@click.option("--priv-key")
@click.option("--auth-proto", type=click.Choice(["SHA", "SHA256", "MD5"]))
@click.option("--priv-proto", type=click.Choice(["AES", "AES256", "DES"]))
@click.option("--profile", help="Force a vendor profile instead of matching sysObjectID.")
@location_options
@json_option
@pass_ctx
def add(obj: CliContext, name: str, host: str, port: int, community: str | None, v3_user: str | None,
        auth_key: str | None, priv_key: str | None, auth_proto: str | None, priv_proto: str | None,
        profile: str | None, zone: str, lat: float | None, lon: float | None, tags: tuple[str, ...],
        as_json: bool) -> None:
    """Add an AP to the inventory; the poller picks it up at its next reload."""
    if community and v3_user:
        raise click.UsageError("give either --community (v2c) or --v3-user (v3), not both")
    snmp = {"version": "3" if v3_user else "2c", "community": community, "v3_user": v3_user,
            "auth_key": auth_key, "priv_key": priv_key, "auth_proto": auth_proto, "priv_proto": priv_proto}
    body = {"name": name, "host": host, "port": port, "zone": zone, "lat": lat, "lon": lon,
            "tags": parse_tags(tags), "profile": profile,
            "snmp": {k: v for k, v in snmp.items() if v is not None}}
    r = obj.client().post("/api/v1/aps", body)
    echo_json(r) if as_json else click.echo(f"added AP {r['name']} ({r['host']}:{r['port']}) in {r['zone']}")


@ap.command("import")
@file_argument
@format_option
@pass_ctx
def import_(obj: CliContext, file: Path, fmt: str | None) -> None:
    """Import APs from CSV or YAML (name,host,zone[,port,community,v3_user,auth_key,priv_key,lat,lon,tags]).

    All or nothing: any bad line refuses the whole file, every problem listed with its line.
    Existing names are updated.
    """
    import_file(obj, "aps", file, fmt)


@ap.command("list")
@click.option("--zone", help="Only this zone and below.")
@click.option("--tag", help="key or key=value")
@json_option
@pass_ctx
def list_(obj: CliContext, zone: str | None, tag: str | None, as_json: bool) -> None:
    """List APs."""
    items = obj.client().get("/api/v1/aps", zone=zone, tag=tag)["items"]
    if as_json:
        echo_json(items)
        return
    print_table(items, [("name", "name"), ("zone", "zone"), ("host", "host"), ("profile", "profile")])


@ap.command("show")
@click.argument("name")
@json_option
@pass_ctx
def show(obj: CliContext, name: str, as_json: bool) -> None:
    """Show one AP (secrets masked)."""
    r = obj.client().get(f"/api/v1/aps/{name}")
    if as_json:
        echo_json(r)
        return
    for k, v in r.items():
        click.echo(f"{k:9} {v if v is not None else ''}")


@ap.command("remove")
@click.argument("name")
@pass_ctx
def remove(obj: CliContext, name: str) -> None:
    """Remove an AP from the inventory."""
    obj.client().delete(f"/api/v1/aps/{name}")
    click.echo(f"removed AP {name}")
