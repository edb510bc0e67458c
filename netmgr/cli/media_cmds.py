"""``netmgr media``: audio for broadcasts — uploads, text-to-speech, list, remove."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from netmgr.cli.context import CliContext, echo, echo_json, json_option, pass_ctx
from netmgr.cli.output import emit, print_table, wide_option
from netmgr.errors import NotFound, UsageError
from netmgr.humanize import format_bytes, format_duration, format_time


@click.group()
def media() -> None:
    """Audio for broadcasts: uploaded files and text-to-speech, served to speaker nodes."""


def _summary(m: dict[str, Any]) -> str:
    return (f"{m['id'][:12]}  {m['title']}  ({m['format'].upper()}, {format_duration(m['duration_s'])}, "
            f"{format_bytes(m['size'])})")


def _print_stored(verb: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], None]:
    """The people view of a stored media (``add``, ``tts``): what was done, and its full id."""
    def show(r: dict[str, Any]) -> None:
        echo(f"{verb(r)} {_summary(r)}")
        echo(f"id {r['id']}")
    return show


@media.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--title", default="", help="Title shown in lists and on the nodes (default: the file name).")
@json_option
@pass_ctx
def add(obj: CliContext, file: Path, title: str, as_json: bool) -> None:
    """Upload an audio FILE (MP3, Ogg, Opus, FLAC, M4A or WAV). The same file twice is stored once."""
    with file.open("rb") as f:
        r = obj.client().post("/api/v1/media", content=f, params={"title": title, "filename": file.name},
                              headers={"Content-Type": "application/octet-stream"})
    emit(r, as_json, _print_stored(lambda m: "added" if m.get("new") else "already stored:"))


@media.command("tts")
@click.argument("text")
@click.option("--title", default="", help="Title (default: the start of the text).")
@click.option("--voice", help="espeak-ng voice: vi (northern), vi-vn-x-central, vi-vn-x-south "
              "(default: the daemon's [media] tts_voice).")
@json_option
@pass_ctx
def tts(obj: CliContext, text: str, title: str, voice: str | None, as_json: bool) -> None:
    """Speak TEXT in Vietnamese (espeak-ng, offline) into a media file; TEXT '-' reads stdin.

    At most 5,000 characters. The same text and voice give the same media, spoken once.
    """
    if text == "-":
        text = sys.stdin.read()
    emit(obj.client().post("/api/v1/media/tts", {"text": text, "title": title, "voice": voice}), as_json,
         _print_stored(lambda _: "spoken:"))


@media.command("list")
@wide_option
@json_option
@pass_ctx
def list_(obj: CliContext, wide: bool, as_json: bool) -> None:
    """List stored media, newest first."""
    items = obj.client().get("/api/v1/media")["items"]
    if as_json:
        echo_json(items)
        return
    tz = obj.tz()  # stored in UTC, shown in the daemon's zone
    rows = [{**m, "short": m["id"][:12], "dur": format_duration(m["duration_s"]),
             "bytes": format_bytes(m["size"]), "when": format_time(m["created"], tz), "fmt": m["format"]}
            for m in items]
    print_table(rows, [("short", "id", "essential"), ("title", "title", "essential"),
                       ("dur", "duration", "essential"),
                       ("bytes", "size"), ("when", "created"), ("kind", "kind"), ("created_by", "by"),
                       ("fmt", "format", "wide")], wide=wide, tz=tz)
    total = sum(m["duration_s"] for m in items)
    if items:
        echo(f"{len(items)} media, {format_duration(total)} of audio, "
             f"{format_bytes(sum(m['size'] for m in items))}")


def resolve(obj: CliContext, prefix: str) -> dict[str, Any]:
    """The one media whose id starts with ``prefix`` (8 or more hex digits)."""
    p = prefix.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{8,64}", p):
        raise UsageError(f"media id {prefix!r}: give the id or its first 8 or more hex digits "
                         "(netmgr media list)")
    matches = [m for m in obj.client().get("/api/v1/media")["items"] if m["id"].startswith(p)]
    if not matches:
        raise NotFound(f"media {prefix} not found (netmgr media list shows the ids)")
    if len(matches) > 1:
        raise UsageError(f"media id {prefix} is ambiguous: {len(matches)} ids start with it; "
                         "give more digits")
    return matches[0]


@media.command("rm")
@click.argument("media_id")
@pass_ctx
def rm(obj: CliContext, media_id: str) -> None:
    """Remove a media file by its id or a unique prefix of it (8 or more hex digits).

    Admins may remove any; operators the media they added. Refused while a broadcast uses it.
    """
    m = resolve(obj, media_id)
    obj.client().delete(f"/api/v1/media/{m['id']}")
    echo(f"removed {_summary(m)}")
