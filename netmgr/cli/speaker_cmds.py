"""``netmgr speaker``: speaker node inventory, live status, commands and MQTT identities."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path
from typing import Any

import click

from netmgr.cli.context import CliContext, echo, echo_json, json_option, pass_ctx
from netmgr.cli.inventory_cmds import import_command, location_options, parse_tags, remove_command
from netmgr.cli.output import emit, filtered_list, print_fields, print_table, print_times_in, with_history
from netmgr.humanize import format_duration, format_time, format_value, yes_no


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
    echo_json(r) if as_json else echo(f"added speaker {r['id']} in {r['zone']}")


speaker.add_command(import_command(
    "speakers", "Import speakers from CSV or YAML (id,zone[,name,model,lat,lon,tags]). All or nothing."))


@speaker.command("list")
@filtered_list("/api/v1/speakers-status", ["online", "offline", "stale", "unknown"],
               "Only nodes in this state (stale: online but silent for too many telemetry intervals).")
def list_(obj: CliContext, items: list[dict[str, Any]], wide: bool) -> None:
    """List speaker nodes with their live status and last telemetry."""
    tz = obj.tz()
    rows = []
    for i in items:
        t = i.get("telemetry") or {}
        rows.append({**i, "rssi": t.get("rssi_dbm"), "volume": t.get("volume"), "playing": t.get("playing"),
                     "zone_name": obj.zone_name(i["zone"]), "since": format_time(i.get("since"), tz),
                     "seen": format_time(i.get("last_seen"), tz)})
    print_table(rows, [("id", "node", "essential"), ("zone_name", "zone", "essential"),
                       ("status", "status", "essential"), ("since", "since"), ("name", "name"),
                       ("rssi", "rssi dBm"), ("volume", "vol"), ("playing", "playing"),
                       ("seen", "last seen", "wide"), ("fw", "fw", "wide"), ("zone", "zone path", "wide")],
                wide=wide, tz=tz)
    counts: dict[str, int] = {}
    for i in items:
        counts[i["status"]] = counts.get(i["status"], 0) + 1
    echo(", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no speakers")


@speaker.command("show")
@with_history("speakers", "node_id", "/status", "telemetry rows, from the local ring,")
def show(obj: CliContext, r: dict[str, Any]) -> None:
    """One node: status, last telemetry, recent telemetry history and its recent commands."""
    tz = obj.tz()
    _echo_speaker(r, tz, obj.zone_name(r.get("zone")))
    if r["history"]:
        print_table([_telemetry_row(h, tz) for h in r["history"]],
                    [("time", "time", "essential"), ("online", "online", "essential"),
                     ("rssi_dbm", "rssi dBm"), ("volume", "vol"), ("playing", "playing"),
                     ("temperature_c", "°C"), ("voltage_v", "V")],
                    title="recent telemetry")
    cmds = r.get("commands") or []
    if cmds:
        print_table([{**c, "issued": format_time(c.get("issued"), tz)} for c in cmds],
                    [("issued", "issued", "essential"), ("id", "command", "essential"), ("method", "method"),
                     ("state", "state", "essential"), ("error", "error", "essential"),
                     ("priority", "priority")], title="recent commands")
    print_times_in(tz)


def _counter(value: Any, tz: tzinfo) -> str:
    """A session counter or schedule version; with its time when it reads as Unix milliseconds
    (what docs/protocol.md suggests), e.g. ``1796409129773 (2026-12-05 01:32:09)``."""
    plausible = isinstance(value, int) and not isinstance(value, bool)
    if plausible and 1e12 <= value <= (time.time() + 86400) * 1000:
        return f"{value} ({format_time(value, tz)})"
    return format_value(value)


def _echo_speaker(r: dict[str, Any], tz: tzinfo, zone_name: str) -> None:
    """The text lines of ``speaker show``: identity, zone, status, session, telemetry."""
    echo(f"{r['id']}  {r.get('name') or ''}".rstrip())
    status = r.get("status", "")
    if r.get("since"):
        status += f" since {format_time(r['since'], tz)}"
    if r.get("last_seen"):
        status += f", last seen {format_time(r['last_seen'], tz)}"
    skew, version = r.get("skew_s"), r.get("schedule_version")
    print_fields([("zone", f"{zone_name} ({r['zone']})" if zone_name != r.get("zone") else r.get("zone")),
                  ("model", ", ".join(x for x in (r.get("model"), r.get("fw") and f"fw {r['fw']}") if x)),
                  ("status", status), ("session", _counter(r.get("session"), tz)),
                  ("schedule", None if version is None else f"version {_counter(version, tz)}"),
                  ("clock skew", None if skew is None else f"{skew:+g} s"),
                  ("credentials", yes_no(r.get("credentials")))])
    t = r.get("telemetry") or {}
    if t:
        echo("telemetry" + (f"   at {format_time(t['ts'], tz)}" if t.get("ts") is not None else ""))
        print_fields([(f"  {label}", value) for label, value in _telemetry_fields(t)], width=14)


# How a node's telemetry fields read (docs/protocol.md): label and unit or formatter.
_TELEMETRY: dict[str, tuple[str, Callable[[Any], str]]] = {
    "rssi_dbm": ("rssi", lambda v: f"{v:g} dBm"),
    "temperature_c": ("temperature", lambda v: f"{v:g} °C"),
    "voltage_v": ("voltage", lambda v: f"{v:g} V"),
    "uptime_s": ("uptime", format_duration),
}


def _telemetry_fields(t: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for k, v in t.items():
        if k == "ts" or v is None:
            continue
        label, fmt = _TELEMETRY.get(k, (k.replace("_", " "), format_value))
        try:
            out.append((label, fmt(v)))
        except (TypeError, ValueError):  # a node sent another type: shown as it came
            out.append((label, format_value(v)))
    return out


def _telemetry_row(h: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    def flag(v: Any) -> str:
        return "" if v is None else yes_no(bool(v))

    return {**h, "time": format_time(h["ts"], tz, date=False), "online": flag(h.get("online")),
            "playing": flag(h.get("playing"))}


def _targets(target: str) -> dict[str, list[str]]:
    """TARGET: a node id, ids separated by commas, or a zone (``zone:PATH``, or any path with '/')."""
    if target.startswith("zone:"):
        return {"zones": [target[5:]], "nodes": []}
    if "/" in target:
        return {"zones": [target], "nodes": []}
    return {"zones": [], "nodes": [t for t in target.split(",") if t]}


def _send(obj: CliContext, target: str, method: str, params: dict[str, Any], *, priority: str = "normal",
          wait: float = 10.0, wait_for: str = "done") -> dict[str, Any]:
    body = {"method": method, "params": params, "priority": priority, "wait_s": wait, "wait_for": wait_for,
            **_targets(target)}
    return obj.client().post("/api/v1/commands", body)


def _report(r: dict[str, Any], as_json: bool, extra: Any = None) -> None:
    if as_json:
        echo_json(r)
        return
    rows = []
    for d in r.get("deliveries", []):
        row = {"node": d["node"], "state": d["state"], "error": d.get("error") or ""}
        if extra:
            row.update(extra(d, r))
        rows.append(row)
    cols = [("node", "node"), ("state", "state")]
    if extra and rows:
        cols += [(k, k) for k in rows[0] if k not in ("node", "state", "error")]
    cols.append(("error", "error"))
    print_table(rows, cols, title=f"{r['method']} {r['id']}")
    summary = ", ".join(f"{v} {k}" for k, v in sorted(r["summary"].items()))
    echo(f"{r['total']} nodes: {summary}")
    if not r.get("complete"):
        echo("(not every node has answered yet: `netmgr speaker command "
                   f"{r['id']}` shows later states)")


@speaker.command("volume")
@click.argument("target")
@click.argument("level", type=click.IntRange(0, 100))
@click.option("--wait", type=click.FloatRange(0, 120), default=10.0, show_default=True,
              help="Seconds to wait for the nodes' answers.")
@json_option
@pass_ctx
def volume(obj: CliContext, target: str, level: int, wait: float, as_json: bool) -> None:
    """Set the volume (0-100) of a node, nodes (a,b,c) or a zone (zone:PATH or a/b)."""
    r = _send(obj, target, "volume", {"level": level}, wait=wait)
    _report(r, as_json)
    if not as_json and any(d["state"] != "done" for d in r["deliveries"]):
        raise SystemExit(1)


@speaker.command("ping")
@click.argument("target")
@click.option("--wait", type=click.FloatRange(0, 120), default=5.0, show_default=True)
@json_option
@pass_ctx
def ping(obj: CliContext, target: str, wait: float, as_json: bool) -> None:
    """Round trip to a node, nodes or a zone: time from publish to the node's answer, and its clock skew."""
    from datetime import datetime

    def rtt(d: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
        t = d.get("times") or {}
        if "done" not in t or not r.get("published"):
            return {"rtt ms": "", "skew s": ""}
        sent = datetime.fromisoformat(r["published"].replace("Z", "+00:00"))
        done = datetime.fromisoformat(t["done"].replace("Z", "+00:00"))
        node_ts = (d.get("data") or {}).get("ts")
        skew = "" if node_ts is None else f"{node_ts - done.timestamp():+.2f}"
        return {"rtt ms": f"{(done - sent).total_seconds() * 1000:.1f}", "skew s": skew}

    r = _send(obj, target, "ping", {}, wait=wait)
    _report(r, as_json, rtt)
    if any(d["state"] != "done" for d in r["deliveries"]):
        raise SystemExit(1)


@speaker.command("play")
@click.argument("target")
@click.option("--url", required=True, help="http(s) URL of an audio file or an Icecast stream.")
@click.option("--duration", type=click.FloatRange(0.1, 86400), help="Seconds to play (default: the file, "
              "or 30 s for a stream).")
@click.option("--volume", type=click.IntRange(0, 100),
              help="Volume for this play (emergency: 100 unless given).")
@click.option("--priority", type=click.Choice(["normal", "priority", "emergency"]), default="normal",
              show_default=True,
              help="A higher priority preempts what plays; emergency needs the permission.")
@click.option("--wait", type=click.FloatRange(0, 120), default=10.0, show_default=True,
              help="Seconds to wait for the nodes to accept.")
@json_option
@pass_ctx
def play(obj: CliContext, target: str, url: str, duration: float | None, volume: int | None, priority: str,
         wait: float, as_json: bool) -> None:
    """Play a URL now on a node, nodes or a zone (scheduled programs: `netmgr broadcast`)."""
    params: dict[str, Any] = {"url": url}
    if duration is not None:
        params["duration_s"] = duration
    if volume is not None:
        params["volume"] = volume
    _report(_send(obj, target, "play", params, priority=priority, wait=wait, wait_for="accepted"), as_json)


@speaker.command("stop")
@click.argument("target")
@click.option("--priority", type=click.Choice(["normal", "priority", "emergency"]), default="normal",
              show_default=True, help="Stops what plays at this priority or lower.")
@json_option
@pass_ctx
def stop(obj: CliContext, target: str, priority: str, as_json: bool) -> None:
    """Stop what a node, nodes or a zone is playing."""
    _report(_send(obj, target, "stop", {}, priority=priority), as_json)


@speaker.command("reboot")
@click.argument("target")
@json_option
@pass_ctx
def reboot(obj: CliContext, target: str, as_json: bool) -> None:
    """Reboot a node, nodes or a zone (they answer accepted, then reconnect)."""
    _report(_send(obj, target, "reboot", {}, wait_for="accepted"), as_json)


@speaker.command("command")
@click.argument("command_id")
@json_option
@pass_ctx
def command(obj: CliContext, command_id: str, as_json: bool) -> None:
    """Show a command's state on every target node, with the time of each state."""
    _report(obj.client().get(f"/api/v1/commands/{command_id}"), as_json)


@speaker.command("credentials")
@click.argument("node_id", required=False)
@click.option("--missing", is_flag=True,
              help="Every speaker without credentials yet (bulk onboarding); needs --out.")
@click.option("--zone", default=None, help="With --missing: only this zone and below.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --missing: CSV file (node,username,password) to create, mode 0600.")
@json_option
@pass_ctx
def credentials(obj: CliContext, node_id: str | None, missing: bool, zone: str | None, out: Path | None,
                as_json: bool) -> None:
    """Create (or replace) the node's MQTT identity. The password is shown once: put it on the node.

    With --missing, creates them for every speaker that has none and writes the passwords to a
    new CSV file (never to the terminal), one line as each is created: if the run stops half
    way, the file holds every password made so far and a second run does the rest.
    """
    if missing:
        if node_id or not out:
            raise click.UsageError("--missing takes no NODE_ID and needs --out FILE")
        _bulk_credentials(obj, zone, out)
        return
    if not node_id:
        raise click.UsageError("give NODE_ID, or --missing --out FILE for every speaker without credentials")
    r = obj.client().post(f"/api/v1/speakers/{node_id}/credentials")
    if as_json:
        echo_json(r)
        return
    echo(f"node      {r['node']}\nusername  {r['username']}\npassword  {r['password']}\n"
               f"broker    {r['broker']}\nzone      {r['zone']}")
    if r.get("replaced"):
        echo("(the node's previous password no longer works once the broker reloads)")
    echo(r["note"])


def _bulk_credentials(obj: CliContext, zone: str | None, out: Path) -> None:

    client = obj.client()
    items = client.get("/api/v1/speakers-status", zone=zone)["items"]
    todo = [i["id"] for i in items if not i["credentials"]]
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.UsageError(f"{out} exists: it may hold passwords not yet put on nodes; "
                               "move it away or choose another --out") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("node,username,password\n")
        for nid in todo:
            r = client.post(f"/api/v1/speakers/{nid}/credentials")
            f.write(f"{r['node']},{r['username']},{r['password']}\n")
            f.flush()
    echo(f"created credentials for {len(todo)} speakers in {out} (mode 0600); "
               "run `netmgr mqtt render` and reload mosquitto")


@speaker.command("reset-session")
@click.argument("node_id")
@json_option
@pass_ctx
def reset_session(obj: CliContext, node_id: str, as_json: bool) -> None:
    """Forget a node's session counter (after a flash wipe; see docs/protocol.md). Audited."""
    emit(obj.client().post(f"/api/v1/speakers/{node_id}/reset-session"), as_json,
         lambda r: echo(f"speaker {node_id}: session {r['forgotten_session']} forgotten; {r['note']}"))


speaker.add_command(remove_command("speakers", "a speaker", "node_id"))
