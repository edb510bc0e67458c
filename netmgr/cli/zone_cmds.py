"""``netmgr zone add|list|show|import``."""

from __future__ import annotations

from pathlib import Path

import click

from netmgr.cli.context import CliContext, echo, echo_json, json_option, pass_ctx
from netmgr.cli.output import console, emit, print_fields


@click.group()
def zone() -> None:
    """The zone tree: provinces, communes (xã, phường, đặc khu), villages; kinds in
    devices/zones/kinds.yaml."""


@zone.command("add")
@click.argument("path")
@click.option("--name", required=True, help='Display name, with diacritics (e.g. "Tân Phú").')
@click.option("--kind", help="tinh, thanh-pho, xa, phuong, dac-khu, thon, ap, ban, to-dan-pho, khu-pho, cum "
              "or huyen-cu (default: by its place: a xã under a province, a thôn under a commune).")
@click.option("--code", help="Official unit code (mã đơn vị hành chính): 2 digits a province, 5 a commune.")
@json_option
@pass_ctx
def add(obj: CliContext, path: str, name: str, kind: str | None, code: str | None, as_json: bool) -> None:
    """Add the zone PATH (e.g. dong-nai/binh-phuoc); its parent must exist."""
    body = {"path": path, "name": name} | {k: v for k, v in (("kind", kind), ("code", code)) if v}
    z = obj.client().post("/api/v1/zones", body)
    echo_json(z) if as_json else echo(f"added {z['kind_name']} {z['name']} ({z['path']})"
                                      + (f", code {z['code']}" if z["code"] else ""))


@zone.command("list")
@click.option("--under", help="Only this zone and what is below it.")
@click.option("--search", "q", help='An official code, or words of the name with or without diacritics '
              '("tan phu" finds Tân Phú).')
@json_option
@pass_ctx
def list_(obj: CliContext, under: str | None, q: str | None, as_json: bool) -> None:
    """List zones (a tree for people, --json for scripts)."""
    items = obj.client().get("/api/v1/zones", under=under, q=q)["items"]
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
        name = escape(safe_text(z["name"], keep_newlines=False))
        label = (f"{escape(safe_text(z['kind_name']))} [bold]{name}[/bold]  {escape(safe_text(z['path']))}"
                 + (f"  [dim]{z['code']}[/dim]" if z["code"] else ""))
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
        [("path", z["path"]), ("name", z["name"]), ("kind", f"{z['kind_name']} ({z['kind']})"),
         ("code", z["code"]), ("before", _earlier_names(obj, z.get("history") or [])),
         ("parent", z["parent"] and f"{obj.zone_name(z['parent'])} ({z['parent']})")], width=7))


def _earlier_names(obj: CliContext, history: list[dict[str, str]]) -> str:
    """``Tân Phú (until 2025-07-01 00:00:00)``, the latest first."""
    from netmgr.humanize import format_time

    tz = obj.tz() if history else None
    return "; ".join(f"{h['name']} (until {format_time(h['valid_until'], tz)})" for h in reversed(history))


@zone.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "yaml"]), help="Default: from the file name.")
@pass_ctx
def import_(obj: CliContext, file: Path, fmt: str | None) -> None:
    """Import zones from YAML (a list of {path, name[, kind, code]}, or nested with children) or CSV
    (path,name[,parent,kind,code]). All or nothing."""
    from netmgr.records import detect_format

    text = file.read_text(encoding="utf-8")
    r = obj.client().post("/api/v1/zones/import", {"format": fmt or detect_format(file.name, text),
                                                   "text": text})
    echo(f"{file}: {r['created']} zones created, {r['unchanged']} unchanged")


@zone.command("directory")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--province", help="Only this province's units (its 2-digit code, e.g. 75 for Đồng Nai).")
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@json_option
@pass_ctx
def directory_(obj: CliContext, file: Path, province: str | None, dry_run: bool, as_json: bool) -> None:
    """Codes, names and kinds from the official directory of administrative units (the statistics
    office's export, .xlsx or CSV: Tỉnh Thành Phố, Mã TP, Phường Xã, Mã PX, Cấp). Units found by
    code, or by name under their province, get their code; missing ones are created; ones whose
    name or kind differs are listed, not changed. All or nothing."""
    import base64

    raw = file.read_bytes()
    xlsx = file.suffix.lower() == ".xlsx"
    body = {"format": "xlsx" if xlsx else "csv", "dry_run": dry_run,
            "data": base64.b64encode(raw).decode() if xlsx else raw.decode("utf-8-sig", errors="replace")}
    if province:
        body["province"] = province
    r = obj.client().post("/api/v1/zones/directory", body)
    if as_json:
        echo_json(r)
        return
    n = r["counts"]
    verb = "would be" if r["dry_run"] else "were"
    echo(f"{file}: {n['create']} zones {verb} created, {n['set_code']} {verb} given their code, "
         f"{n['unchanged']} unchanged, {n['differs']} differ")
    for c in r["changes"]:
        what = {"create": "create", "set_code": "code", "differs": "differs"}[c["action"]]
        echo(f"  line {c['line']:>5}  {what:8} {c['code']:>5}  {c['name']} ({c['path']})"
             + (f": {c['detail']}" if c["detail"] and c["action"] == "differs" else ""))
    if r["dry_run"]:
        echo("(dry run: nothing changed; run it again without --dry-run to apply)")


@zone.command("rename")
@click.argument("path")
@click.option("--name", required=True, help='The new display name, with diacritics (e.g. "Bình Phước").')
@click.option("--kind", help="A new kind (e.g. phuong: a xã that became a phường keeps its code).")
@click.option("--code", help='A new official code ("" removes it).')
@click.option("--effective", help="When the new name took effect: a day (2025-07-01, from midnight in the "
              "daemon's time zone) or a time with its offset; default now. Reports of earlier days keep "
              "the old name.")
@click.option("--dry-run", is_flag=True, help="Show the zone before and after; change nothing.")
@json_option
@pass_ctx
def rename(obj: CliContext, path: str, name: str, kind: str | None, code: str | None, effective: str | None,
           dry_run: bool, as_json: bool) -> None:
    """Rename the zone PATH (its path, topics and scopes stay); its earlier name is kept with the
    time it ended."""
    from datetime import datetime

    body: dict[str, object] = {"name": name, "dry_run": dry_run}
    if kind:
        body["kind"] = kind
    if code is not None:
        body["code"] = code
    if effective:
        try:
            when = datetime.fromisoformat(effective)
        except ValueError:
            raise click.BadParameter(f"{effective!r}: give a day (2025-07-01) or a time with its offset "
                                     "(2025-07-01T00:00:00+07:00)", param_hint="--effective") from None
        body["effective"] = (when if when.tzinfo else when.replace(tzinfo=obj.tz())).isoformat()
    r = obj.client().request("PATCH", f"/api/v1/zones/{path}", json=body)
    if as_json:
        echo_json(r)
        return
    b, a = r["before"], r["after"]
    verb = "would become" if r["dry_run"] else "is now"
    echo(f"{b['kind_name']} {b['name']} ({path}) {verb} {a['kind_name']} {a['name']}"
         + (f", code {a['code']}" if a["code"] else "") + f", from {r['effective']}")
