"""``netmgr broadcast``: programs for commune officials — schedule, plan, send now, report.

Times are entered and shown in the daemon's zone (``[daemon] timezone``, default
Asia/Ho_Chi_Minh): ``06:00`` (the next such time), ``2026-12-01 06:00`` or ISO 8601.
"""

from __future__ import annotations

import csv
import io
import sys
import time
from pathlib import Path
from typing import Any

import click

from netmgr.cli.context import CliContext, echo, echo_json, json_option, pass_ctx
from netmgr.cli.output import emit, print_fields, print_table, print_times_in, wide_option
from netmgr.humanize import format_duration, format_time


@click.group()
def broadcast() -> None:
    """Broadcast programs: schedule, list, plan, send now, report."""


def _content(text: str | None, media: str | None, url: str | None) -> dict[str, Any]:
    given = [x for x in (text, media, url) if x]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --text, --media or --url")
    if text:
        return {"kind": "text", "text": text}
    if media:
        return {"kind": "media", "media_id": media}
    return {"kind": "url", "url": url}


@broadcast.command("schedule")
@click.argument("title")
@click.option("--zone", "zones", multiple=True, help="Target zone (repeat); every speaker in it and below.")
@click.option("--speaker", "speakers", multiple=True, help="Target speaker id (repeat).")
@click.option("--text", help="Text spoken in Vietnamese (espeak-ng), at most 5,000 characters.")
@click.option("--media", help="Media id from `netmgr media list`.")
@click.option("--url", help="HTTP(S) file or Icecast stream URL.")
@click.option("--at", "at", help="Once: 06:00, 2026-12-01 06:00 or ISO 8601.")
@click.option("--daily", help="Every day at HH:MM.")
@click.option("--weekdays", help="Monday to Friday at HH:MM.")
@click.option("--rrule", help="RFC 5545 rule, e.g. FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=17;BYMINUTE=30.")
@click.option("--start", help="Recurring: not before (date or time).")
@click.option("--until", help="Recurring: last day (or time).")
@click.option("--count", type=click.IntRange(1, 100000), help="Recurring: number of occurrences.")
@click.option("--duration", required=True, help="How long: 45s, 30m, 1h or 1h30m.")
@click.option("--volume", type=click.IntRange(0, 100), default=80, show_default=True)
@click.option("--priority", type=click.Choice(["normal", "priority", "emergency"]), default="normal",
              show_default=True)
@click.option("--force", is_flag=True, help="Schedule despite an overlap with an equal-priority program.")
@json_option
@pass_ctx
def schedule(obj: CliContext, title: str, zones: tuple[str, ...], speakers: tuple[str, ...], text: str | None,
             media: str | None, url: str | None, at: str | None, daily: str | None, weekdays: str | None,
             rrule: str | None, start: str | None, until: str | None, count: int | None, duration: str,
             volume: int, priority: str, force: bool, as_json: bool) -> None:
    """Schedule a program (once, daily, weekdays or an RRULE) for zones and/or speakers."""
    kinds = [k for k, v in (("once", at), ("daily", daily), ("weekdays", weekdays), ("rrule", rrule)) if v]
    if len(kinds) != 1:
        raise click.UsageError("give exactly one of --at, --daily, --weekdays or --rrule")
    kind = kinds[0]
    when: dict[str, Any] = {"kind": kind}
    if kind == "once":
        when["start"] = at
    elif kind in ("daily", "weekdays"):
        when["at"] = daily or weekdays
    else:
        when["rrule"] = rrule
    if kind != "once":
        for k, v in (("start", start), ("until", until), ("count", count)):
            if v is not None:
                when[k] = v
    elif start or until or count:
        raise click.UsageError("--start/--until/--count apply to recurring programs only")
    body = {"title": title, "content": _content(text, media, url),
            "targets": {"zones": list(zones), "speakers": list(speakers)}, "when": when,
            "duration": duration, "volume": volume, "priority": priority, "force": force}
    r = obj.client().post("/api/v1/programs", body)
    if as_json:
        echo_json(r)
        return
    echo(f"scheduled program {r['id']} {r['title']!r}: {r['when']}, next {r['next']}")
    for c in r.get("conflicts_forced") or []:
        echo(f"  (forced) {c['message']}")


@broadcast.command("list")
@click.option("--zone", help="Programs of this zone (above or below it too).")
@click.option("--cancelled", is_flag=True, help="Include cancelled programs.")
@wide_option
@json_option
@pass_ctx
def list_(obj: CliContext, zone: str | None, cancelled: bool, wide: bool, as_json: bool) -> None:
    """List programs with their next occurrence."""
    items = obj.client().get("/api/v1/programs", zone=zone, cancelled=cancelled or None)["items"]
    if as_json:
        echo_json(items)
        return
    tz = obj.tz()
    rows = [{**p, "zone_name": obj.zone_name(p["zone"]), "next": format_time(p.get("next_utc"), tz),
             "cancelled": format_time(p.get("cancelled_at"), tz)} for p in items]
    print_table(rows, [("id", "id", "essential"), ("title", "title", "essential"),
                       ("next", "next", "essential"), ("when", "when"), ("zone_name", "zone"),
                       ("priority", "priority"),
                       ("created_by", "by", "wide"), ("cancelled", "cancelled", "wide"),
                       ("zone", "zone path", "wide")],
                wide=wide, tz=tz)


@broadcast.command("show")
@click.argument("program_id", type=int)
@json_option
@pass_ctx
def show(obj: CliContext, program_id: int, as_json: bool) -> None:
    """A program: next occurrences and the delivery of recent ones."""
    emit(obj.client().get(f"/api/v1/programs/{program_id}"), as_json, lambda r: _print_program(obj, r))


def _print_program(obj: CliContext, r: dict[str, Any]) -> None:
    """The people view of ``broadcast show``."""
    tz = obj.tz()
    content = r.get("content") or {}
    print_fields([("id", r["id"]), ("title", r["title"]),
                  ("zone", f"{obj.zone_name(r['zone'])} ({r['zone']})"), ("priority", r.get("priority")),
                  ("when", r.get("when")), ("duration", format_duration(r.get("duration_s"))),
                  ("volume", r.get("volume")), ("content", _content_line(content)),
                  ("created", f"{format_time(r.get('created_at'), tz)} by {r.get('created_by')}"),
                  ("cancelled", format_time(r.get("cancelled_at"), tz))])
    for t in r.get("next_occurrences") or []:
        echo(f"{'next':12} {format_time(t, tz)}")
    if r.get("occurrences"):
        print_table([occurrence_row(o, tz) for o in r["occurrences"]],
                    OCCURRENCE_COLUMNS, title="occurrences", tz=tz)
    else:
        print_times_in(tz)


def _content_line(c: dict[str, Any]) -> str:
    if c.get("kind") == "text":
        return f"text ({len(c.get('text') or '')} characters, voice {c.get('voice') or '-'})"
    if c.get("kind") == "media":
        return f"media {(c.get('media_id') or '')[:12]}"
    return f"{c.get('kind', '')} {c.get('url') or ''}".strip()


def occurrence_row(o: dict[str, Any], tz: Any) -> dict[str, Any]:
    """An occurrence (of ``broadcast show`` or the report) for people: its start in the zone,
    delivery as ``played/targets``, and in words whether it went on time."""
    timing = "missed" if o.get("missed") else "late" if o.get("late") else "on time"
    return {**o, "start_at": format_time(o.get("start"), tz), "timing": timing,
            "delivery": f"{o.get('played', 0)}/{o.get('targets', 0)}"}


OCCURRENCE_COLUMNS = [("start_at", "start", "essential"), ("delivery", "played", "essential"),
                      ("failed", "failed"), ("offline", "offline"), ("timing", "timing"), ("state", "state"),
                      ("expired", "expired", "wide"), ("id", "occurrence", "wide")]


@broadcast.command("cancel")
@click.argument("program_id", type=int)
@pass_ctx
def cancel(obj: CliContext, program_id: int) -> None:
    """Cancel a program; nodes get schedules without it."""
    obj.client().delete(f"/api/v1/programs/{program_id}")
    echo(f"cancelled program {program_id}")


@broadcast.command("plan")
@click.option("--zone", required=True)
@click.option("--day", default="today", show_default=True, help="today, tomorrow or YYYY-MM-DD.")
@json_option
@pass_ctx
def plan(obj: CliContext, zone: str, day: str, as_json: bool) -> None:
    """The resolved timeline of a zone's speakers for a day: who plays what, preemptions applied."""
    r = obj.client().get("/api/v1/plan", zone=zone, day=day)
    if as_json:
        echo_json(r)
        return
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(r["timezone"]) if r.get("timezone") else obj.tz()  # the plan names its zone
    for g in r["groups"]:
        spk = g["speakers"]
        head = ", ".join(spk[:4]) + (f" and {len(spk) - 4} more" if len(spk) > 4 else "")
        rows = [{**it, "start": format_time(it["start"], tz, date=False, seconds=False),
                 "end": format_time(it["end"], tz, date=False, seconds=False),
                 "cut": "cut" if it["cut"] else ""} for it in g["items"]]
        print_table(rows, [("start", "start", "essential"), ("end", "end", "essential"),
                           ("title", "program", "essential"), ("priority", "priority"), ("cut", "cut")],
                    title=f"{r['day']} — {head}")
        print_fields([("", lost.get("message", lost)) for lost in g.get("lost") or []], width=1)
    print_times_in(tz)


@broadcast.command("now")
@click.option("--zone", "zones", multiple=True, required=True, help="Target zone (repeat).")
@click.option("--text")
@click.option("--media")
@click.option("--url")
@click.option("--title", default="")
@click.option("--emergency", is_flag=True, help="Emergency priority: preempts everything, volume 100.")
@click.option("--duration", help="How long (default: the audio's length; streams 5 min).")
@click.option("--wait", is_flag=True, help="Show live progress until every node answered or --timeout.")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=60.0, show_default=True)
@json_option
@pass_ctx
def now(obj: CliContext, zones: tuple[str, ...], text: str | None, media: str | None, url: str | None,
        title: str, emergency: bool, duration: str | None, wait: bool, timeout: float, as_json: bool) -> None:
    """Broadcast at once to zones (an announcement, or --emergency)."""
    content = _content(text, media, url)
    body: dict[str, Any] = {"zones": list(zones), "title": title, "emergency": emergency,
                            "text": content.get("text"), "media_id": content.get("media_id"),
                            "url": content.get("url")}
    if duration:
        body["duration"] = duration
    client = obj.client()
    r = client.post("/api/v1/broadcast/now", body)
    occ = r["occurrence"]
    if not wait:
        echo_json(r) if as_json else echo(f"sent program {r['id']}; follow it with "
                                                f"`netmgr speaker command {occ}`")
        return
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            state = client.get(f"/api/v1/commands/{occ}")
        except Exception:  # noqa: BLE001 - not issued yet (the scheduler sends it within a second)
            time.sleep(0.5)
            continue
        s = state["summary"]
        n = state["total"]
        accepted = sum(s.get(k, 0) for k in ("accepted", "playing", "done"))
        line = (f"\r{n} nodes: {accepted} accepted, {s.get('playing', 0)} playing, {s.get('done', 0)} done, "
                f"{s.get('offline', 0) + s.get('timeout', 0)} offline, {s.get('error', 0)} failed")
        if not as_json:
            sys.stderr.write(line)
            sys.stderr.flush()
        # Done when every node answered for good, or is offline (it plays from its schedule if it
        # had one, and the report shows it offline).
        if all(d["state"] in ("done", "error", "expired", "offline") for d in state.get("deliveries", [])):
            break
        time.sleep(0.5)
    if not as_json:
        sys.stderr.write("\n")
    if as_json:
        echo_json(state)
    if time.monotonic() >= deadline:
        echo(f"not every node answered within {timeout:g}s; `netmgr speaker command {occ}` "
                   "shows later states", err=True)
        raise SystemExit(1)


@broadcast.command("report")
@click.option("--from", "from_", required=True, help="First local day (YYYY-MM-DD, today, yesterday).")
@click.option("--to", required=True, help="Last local day.")
@click.option("--zone")
@click.option("--csv", "as_csv", is_flag=True, help="CSV for a spreadsheet.")
@wide_option
@json_option
@pass_ctx
def report(obj: CliContext, from_: str, to: str, zone: str | None, as_csv: bool, wide: bool,
           as_json: bool) -> None:
    """Per program and occurrence: targets, played, failed, offline, late, missed."""
    r = obj.client().get("/api/v1/reports", **{"from": from_, "to": to, "zone": zone})
    cols = ["start_local", "program", "title", "zone", "priority", "state", "targets", "played", "failed",
            "offline", "expired", "late", "missed"]
    if as_json:
        echo_json(r)
        return
    if as_csv:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(r["items"])
        sys.stdout.write(buf.getvalue())
        return
    tz = obj.tz()
    # The name in force on the day (the API's), else today's.
    rows = [{**occurrence_row(o, tz), "zone_name": o.get("zone_name") or obj.zone_name(o.get("zone"))}
            for o in r["items"]]
    print_table(rows, [*OCCURRENCE_COLUMNS[:1], ("title", "title", "essential"), *OCCURRENCE_COLUMNS[1:6],
                       ("zone_name", "zone"), ("priority", "priority"), ("program", "program", "wide"),
                       *OCCURRENCE_COLUMNS[6:]], title=f"broadcasts {from_} to {to}", wide=wide, tz=tz)
    t = r["totals"]
    echo(f"{r['count']} occurrences: {t['played']} plays of {t['targets']} targets, "
         f"{t['failed']} failed, {t['offline']} offline, {t['late']} late, {t['missed']} missed")


@broadcast.command("ics")
@click.option("--zone")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="File (default stdout).")
@pass_ctx
def ics(obj: CliContext, zone: str | None, output: Path | None) -> None:
    """Export programs as iCalendar for people's calendars."""
    text = obj.client().request("GET", "/api/v1/programs.ics", params={"zone": zone} if zone else {},
                                raw=True)
    if output:
        output.write_text(text, encoding="utf-8")
        echo(f"wrote {output}")
    else:
        sys.stdout.write(text)
