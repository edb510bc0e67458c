"""``netmgr zone add|list|show|import``."""

from __future__ import annotations

from pathlib import Path

import click

from netmgr.cli.context import CliContext, echo, echo_json, json_option, pass_ctx
from netmgr.cli.output import console, emit, print_fields


@click.group()
def zone() -> None:
    """The zone tree: province > district > commune > village."""


@zone.command("add")
@click.argument("path")
@click.option("--name", required=True, help='Display name, with diacritics (e.g. "Tân Phú").')
@json_option
@pass_ctx
def add(obj: CliContext, path: str, name: str, as_json: bool) -> None:
    """Add the zone PATH (e.g. binh-phuoc/dong-xoai/tan-phu); its parent must exist."""
    z = obj.client().post("/api/v1/zones", {"path": path, "name": name})
    echo_json(z) if as_json else echo(f"added {z['level']} {z['path']} ({z['name']})")


@zone.command("list")
@click.option("--under", help="Only this zone and what is below it.")
@json_option
@pass_ctx
def list_(obj: CliContext, under: str | None, as_json: bool) -> None:
    """List zones (a tree for people, --json for scripts)."""
    items = obj.client().get("/api/v1/zones", under=under)["items"]
    if as_json:
        echo_json(items)
        return
    from rich.markup import escape
    from rich.tree import Tree

    from netmgr.text import safe_text

    if not items:
        echo("(no zones)")
        return
    nodes: dict[str, Tree] = {}
    roots: list[Tree] = []
    for z in items:  # sorted by path: parents come first
        # Names are data: escaped for the terminal and for rich's markup ("[red]" prints as typed).
        label = (f"[bold]{escape(safe_text(z['name'], keep_newlines=False))}[/bold]  "
                 f"{escape(safe_text(z['path']))}  [dim]{z['level']}[/dim]")
        parent = nodes.get(z["parent"] or "")
        node = parent.add(label) if parent else Tree(label)
        if not parent:
            roots.append(node)
        nodes[z["path"]] = node
    out = console()
    for r in roots:
        out.print(r)


@zone.command("show")
@click.argument("path")
@json_option
@pass_ctx
def show(obj: CliContext, path: str, as_json: bool) -> None:
    """Show one zone."""
    emit(obj.client().get(f"/api/v1/zones/{path}"), as_json, lambda z: print_fields(
        [("path", z["path"]), ("name", z["name"]), ("level", z["level"]),
         ("parent", z["parent"] and f"{obj.zone_name(z['parent'])} ({z['parent']})")], width=7))


@zone.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "yaml"]), help="Default: from the file name.")
@pass_ctx
def import_(obj: CliContext, file: Path, fmt: str | None) -> None:
    """Import zones from YAML (a list of {path, name}) or CSV (path,name). All or nothing."""
    from netmgr.records import detect_format

    text = file.read_text(encoding="utf-8")
    r = obj.client().post("/api/v1/zones/import", {"format": fmt or detect_format(file.name, text),
                                                   "text": text})
    echo(f"{file}: {r['created']} zones created, {r['unchanged']} unchanged")
