"""Shared pieces of the inventory commands (``ap`` and ``speaker``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from netmgr.cli.context import CliContext, echo


def parse_tags(tags: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for t in tags:
        k, sep, v = t.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"{t!r}: use key=value", param_hint="--tag")
        out[k] = v
    return out


def import_file(obj: CliContext, kind: str, file: Path, fmt: str | None) -> None:
    from netmgr.records import detect_format

    text = file.read_text(encoding="utf-8")
    r = obj.client().post(f"/api/v1/{kind}/import", {"format": fmt or detect_format(file.name, text),
                                                     "text": text})
    echo(f"{file}: {r['created']} created, {r['updated']} updated")


def location_options(f: Any) -> Any:
    f = click.option("--tag", "tags", multiple=True, help="key=value (repeat).")(f)
    f = click.option("--lon", type=click.FloatRange(-180, 180))(f)
    f = click.option("--lat", type=click.FloatRange(-90, 90))(f)
    return click.option("--zone", required=True, help="Zone path, e.g. binh-phuoc/dong-xoai/tan-phu.")(f)


file_argument = click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
format_option = click.option("--format", "fmt", type=click.Choice(["csv", "yaml"]),
                             help="Default: from the file name.")


def import_command(kind: str, help_text: str) -> click.Command:
    """The ``import`` command of ``ap`` and ``speaker``: FILE (CSV or YAML) to ``/api/v1/<kind>/import``."""
    @click.command("import", help=help_text)
    @file_argument
    @format_option
    @click.pass_obj
    def command(obj: CliContext, file: Path, fmt: str | None) -> None:
        import_file(obj, kind, file, fmt)
    return command


def remove_command(kind: str, what: str, argument: str) -> click.Command:
    """The ``remove`` command of ``ap`` and ``speaker``: DELETE ``/api/v1/<kind>/<ARGUMENT>``."""
    @click.command("remove", help=f"Remove {what} from the inventory.")
    @click.argument(argument)
    @click.pass_obj
    def command(obj: CliContext, **ident: str) -> None:
        obj.client().delete(f"/api/v1/{kind}/{ident[argument]}")
        echo(f"removed {what.split(' ', 1)[1]} {ident[argument]}")
    return command
