"""``netmgr media``: audio for broadcasts — uploads, text-to-speech, list, remove."""

from __future__ import annotations

import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from netmgr.cli.context import CliContext, echo, echo_json, json_option, pass_ctx, print_table
from netmgr.errors import NotFound, UsageError


@click.group()
def media() -> None:
    """Audio for broadcasts: uploaded files and text-to-speech, served to speaker nodes."""


def duration(seconds: float | None) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on)."""
    if seconds is None:
        return ""
    s = round(seconds)
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def size(n: int | None) -> str:
    """Bytes for people (kB and MB of 1024)."""
    if n is None:
        return ""
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.0f} kB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


def _summary(m: dict[str, Any]) -> str:
    return (f"{m['id'][:12]}  {m['title']}  ({m['format'].upper()}, {duration(m['duration_s'])}, "
            f"{size(m['size'])})")


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
    if as_json:
        echo_json(r)
        return
    echo(f"{'added' if r.get('new') else 'already stored:'} {_summary(r)}")
    echo(f"id {r['id']}")


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
    r = obj.client().post("/api/v1/media/tts", {"text": text, "title": title, "voice": voice})
    if as_json:
        echo_json(r)
        return
    echo(f"spoken: {_summary(r)}")
    echo(f"id {r['id']}")


@media.command("list")
@json_option
@pass_ctx
def list_(obj: CliContext, as_json: bool) -> None:
    """List stored media, newest first."""
    items = obj.client().get("/api/v1/media")["items"]
    if as_json:
        echo_json(items)
        return
    tz = obj.settings().tz  # stored in UTC, shown in the configured zone
    rows = [{**m, "short": m["id"][:12], "dur": duration(m["duration_s"]), "bytes": size(m["size"]),
             "when": datetime.fromisoformat(m["created"]).astimezone(tz).strftime("%Y-%m-%d %H:%M"),
             "fmt": m["format"]} for m in items]
    print_table(rows, [("short", "id"), ("title", "title"), ("kind", "kind"), ("fmt", "format"),
                       ("dur", "duration"), ("bytes", "size"), ("when", "created"),
                       ("created_by", "by")])
    total = sum(m["duration_s"] for m in items)
    if items:
        echo(f"{len(items)} media, {duration(total)} of audio, {size(sum(m['size'] for m in items))}")


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
