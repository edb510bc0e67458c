"""``netmgr demo``: the whole system on one laptop with zero external services.

An embedded MQTT broker (amqtt, in-process, MQTT 3.1.1), SQLite under a
temporary state dir, the daemon with its API, and the simulated devices the
other parts add (AP fleet, speaker nodes). Prints what runs and where to look;
with ``--duration`` it stops by itself and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from netmgr.config import Settings
from netmgr.paths import devices_dir

log = logging.getLogger(__name__)


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(host: str, preferred: int) -> int:
    if preferred and port_free(host, preferred):
        return preferred
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class DemoRun:
    """What the demo's parts share while it runs."""

    settings: Settings
    state_dir: Path
    console: Console
    api_url: str = ""
    admin_token: str = ""
    mqtt_port: int = 0
    lines: list[tuple[str, str]] = field(default_factory=list)  # (what, where) for the banner
    try_lines: list[str] = field(default_factory=list)  # commands worth trying, added by parts
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    reload: Callable[[], None] = lambda: None
    services: dict[str, Any] = field(default_factory=dict)  # the daemon's services by name


async def start_broker(run: DemoRun) -> None:
    """The embedded broker; the daemon's client ids are reserved to its user and per-run password."""
    from netmgr.sim.broker import DemoBroker

    mqtt = run.settings.mqtt
    broker = DemoBroker(run.mqtt_port, mqtt.client_id, mqtt.username, mqtt.password.get_secret_value())
    await broker.start()
    run.lines.append(("MQTT broker (amqtt, embedded, MQTT 3.1.1)", f"mqtt://127.0.0.1:{run.mqtt_port}"))
    run.cleanups.append(broker.stop)


async def seed(run: DemoRun) -> None:
    """Zones and an admin token, the way an engineer would set them up."""
    import httpx

    from netmgr.auth import create_user
    from netmgr.store import db

    store = await db.open_store(run.settings.database_url)
    try:
        async with store.sessions() as session:
            _, run.admin_token = await create_user(session, "demo-admin", "admin", [], actor="local:demo")
            await session.commit()
    finally:
        await store.engine.dispose()
    zones = (devices_dir() / "demo" / "zones.yaml").read_text(encoding="utf-8")
    async with httpx.AsyncClient(base_url=run.api_url, headers=auth(run)) as http:
        r = await http.post("/api/v1/zones/import", json={"format": "yaml", "text": zones})
        r.raise_for_status()


def auth(run: DemoRun) -> dict[str, str]:
    return {"Authorization": f"Bearer {run.admin_token}"}


async def ap_fleet(run: DemoRun) -> None:
    """Simulated APs, one per recording in devices/sim, added through the API and polled."""
    import httpx

    from netmgr.sim.aps import start_fleet

    fleet = await start_fleet()
    communes = ["binh-phuoc/dong-xoai/tan-phu", "binh-phuoc/dong-xoai/tien-thanh",
                "binh-phuoc/dong-phu/tan-tien", "binh-phuoc/dong-phu/thuan-loi"]
    names = sorted(n.decode() for n in fleet.agents)
    aps = [{"name": f"ap-{n}", "host": "127.0.0.1", "port": fleet.port, "zone": communes[i % len(communes)],
            "lat": 11.53 + i * 0.01, "lon": 106.88 + i * 0.01, "snmp": {"community": n}}
           for i, n in enumerate(names)]
    import yaml

    async with httpx.AsyncClient(base_url=run.api_url, headers=auth(run)) as http:
        r = await http.post("/api/v1/aps/import", json={"format": "yaml", "text": yaml.safe_dump(aps)})
        r.raise_for_status()
    # The poller picks the new inventory up on reload, as after `systemctl reload netmgr`.
    run.reload()

    async def stop() -> None:
        fleet.close()

    run.cleanups.append(stop)
    run.lines.append((f"simulated APs ({len(aps)}, one per vendor recording)", f"udp://127.0.0.1:{fleet.port}"))
    run.try_lines += ["netmgr ap list", f"netmgr ap show ap-{names[-1]}",
                      f"netmgr ap poll 127.0.0.1:{fleet.port} --community {names[-1]}"]


async def speaker_fleet(run: DemoRun) -> None:
    """Simulated speaker nodes (docs/protocol.md) on the embedded broker, in the inventory."""
    import httpx

    from netmgr.radio.mqtt import Broker
    from netmgr.sim.speakers import SimConfig, SpeakerSim

    communes = ["binh-phuoc/dong-xoai/tan-phu", "binh-phuoc/dong-xoai/tien-thanh",
                "binh-phuoc/dong-phu/tan-tien", "binh-phuoc/dong-phu/thuan-loi"]
    nodes = [(f"loa-{c.rsplit('/', 1)[1]}-{i:02d}", c) for c in communes for i in range(1, 12)]
    rows = "".join(f"{nid},{zone},Cụm loa {i % 11 + 1},{11.5 + i * 0.004:.4f},{106.85 + (i % 7) * 0.01:.4f}\n"
                   for i, (nid, zone) in enumerate(nodes))
    async with httpx.AsyncClient(base_url=run.api_url, headers=auth(run)) as http:
        r = await http.post("/api/v1/speakers/import",
                            json={"format": "csv", "text": "id,zone,name,lat,lon\n" + rows})
        r.raise_for_status()
    radio = run.services.get("radio")
    if radio is not None:  # the nodes publish at once: the daemon must know them first
        await radio.load_inventory()
    sim = SpeakerSim(Broker(port=run.mqtt_port, protocol="3.1.1"), nodes, SimConfig(telemetry_interval=10))
    await sim.__aenter__()

    async def stop() -> None:
        await sim.__aexit__(None, None, None)

    run.cleanups.append(stop)
    run.lines.append((f"simulated speaker nodes ({len(nodes)} in {len(communes)} communes)",
                      f"mqtt://127.0.0.1:{run.mqtt_port} netmgr/v1/node/+/..."))
    run.try_lines += ["netmgr speaker list --zone binh-phuoc/dong-xoai",
                      "netmgr speaker ping zone:binh-phuoc/dong-phu",
                      f"netmgr speaker volume {nodes[0][0]} 40",
                      f"netmgr speaker show {nodes[0][0]}"]


async def broadcasts(run: DemoRun) -> None:
    """A program a minute ahead for one commune and an emergency now for a district, as officials
    would schedule them; their per-node delivery shows in `broadcast show` and the report."""
    import shutil
    from datetime import UTC, datetime, timedelta

    import httpx

    spoken = shutil.which("espeak-ng") is not None  # the demo installs no Debian packages
    content = ({"kind": "text", "text": "Bản tin thử nghiệm của xã Tân Phú. Chúc bà con một ngày tốt lành."}
               if spoken else {"kind": "url", "url": f"{run.api_url}/media/demo-stream"})
    at = (datetime.now(UTC) + timedelta(seconds=60)).replace(microsecond=0)
    async with httpx.AsyncClient(base_url=run.api_url, headers=auth(run), timeout=60) as http:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the simulated nodes connect within a second or two
            items = (await http.get("/api/v1/speakers-status", params={"status": "online"})).json()["items"]
            if len(items) >= 44:
                break
            await asyncio.sleep(0.5)
        r = await http.post("/api/v1/programs", json={
            "title": "Bản tin thử", "content": content,
            "targets": {"zones": ["binh-phuoc/dong-xoai/tan-phu"]},
            "when": {"kind": "once", "start": at.isoformat()}, "duration": "20s", "volume": 70})
        r.raise_for_status()
        program = r.json()["id"]
        r = await http.post("/api/v1/broadcast/now", json={
            "zones": ["binh-phuoc/dong-phu"], "url": f"{run.api_url}/media/demo-alert", "emergency": True,
            "duration": "15s", "title": "Cảnh báo lũ (thử)"})
        r.raise_for_status()
        emergency = r.json()
    run.lines.append(("broadcasts", f"program {program} at {at:%H:%M:%S}Z (tan-phu); emergency "
                                    f"{emergency['occurrence']} now (dong-phu)"))
    run.try_lines += ["netmgr broadcast list", f"netmgr broadcast show {program}",
                      f"netmgr speaker command {emergency['occurrence']}",
                      "netmgr broadcast plan --zone binh-phuoc/dong-xoai/tan-phu",
                      "netmgr broadcast report --from today --to today"]


# Parts other features add to the demo: each gets the DemoRun once the daemon is up.
DEMO_PARTS: list[Callable[[DemoRun], Awaitable[None]]] = [ap_fleet, speaker_fleet, broadcasts]


def banner(run: DemoRun) -> None:
    c = run.console
    table = Table(title="netmgr demo: what runs and where to look", show_header=True,
                  header_style="bold")
    table.add_column("what")
    table.add_column("where")
    for what, where in run.lines:
        table.add_row(what, where)
    c.print(table)
    # Plain lines (no wrapping): people copy and paste them.
    print("Try, in another terminal:")
    print(f"  export NETMGR_SERVER={run.api_url} NETMGR_TOKEN={run.admin_token}")
    for line in run.try_lines or ["netmgr zone list", "netmgr audit list"]:
        print(f"  {line}")
    print(f"  curl -s {run.api_url}/healthz", flush=True)


async def health_table(run: DemoRun, data: dict[str, Any] | None = None) -> Table:
    """Every service's full counters (``netmgr demo --verbose``)."""
    import httpx

    table = Table(title=f"services at {time.strftime('%H:%M:%S')}", header_style="bold")
    for col in ("service", "state", "restarts", "detail"):
        table.add_column(col)
    if data is None:
        async with httpx.AsyncClient(base_url=run.api_url, timeout=5) as http:
            data = (await http.get("/healthz")).json()
    for name, s in data.get("services", {}).items():
        detail = ", ".join(f"{k}={v}" for k, v in s.items()
                           if k not in ("state", "restarts", "since", "ready"))
        table.add_row(name, s["state"], str(s["restarts"]), detail)
    return table


def _aps_line(poller: dict[str, Any]) -> str:
    if not poller:
        return "poller off"
    unpolled = poller.get("aps", 0) - poller.get("up", 0) - poller.get("down", 0)
    return (f"{poller.get('up', 0)} up, {poller.get('down', 0)} down"
            + (f", {unpolled} not polled yet" if unpolled > 0 else ""))


def _nodes_line(radio: dict[str, Any]) -> str:
    if not radio:
        return "radio off"
    nodes = radio.get("nodes") or {}
    others = ", ".join(f"{n} {k}" for k, n in nodes.items() if k != "online" and n)
    line = f"{nodes.get('online', 0)} online of {sum(nodes.values())}" + (f" ({others})" if others else "")
    return line if radio.get("connected", True) else line + "; broker link down"


def _broadcast_line(last: dict[str, Any] | None, tz: tzinfo) -> str:
    from netmgr.humanize import format_time

    if not last:
        return "none yet"
    timing = " (missed)" if last.get("missed") else " (late)" if last.get("late") else ""
    failed = last.get("failed", 0) + last.get("offline", 0) + last.get("expired", 0)
    return (f"{last.get('title', '')} at {format_time(last.get('start'), tz, date=False)}: "
            f"{last.get('played', 0)}/{last.get('targets', 0)} played"
            + (f", {failed} not" if failed else "") + timing)


def _telemetry_line(t: dict[str, Any]) -> str:
    from netmgr.humanize import format_bytes, format_count

    if not t:
        return "telemetry off"
    ring = f"{format_count(t.get('ring_points', 0))} points in the local ring"
    if str(t.get("influxdb", "")).startswith("off"):
        return f"{ring}; InfluxDB off"
    spooled = t.get("spool_points", 0)
    return (f"{format_count(t.get('points_written', 0))} points written, {format_count(spooled)} spooled"
            + (f" ({format_bytes(t.get('spool_bytes', 0))})" if spooled else "") + f"; {ring}")


def _errors_line(services: dict[str, Any]) -> str:
    poller, t = services.get("poller") or {}, services.get("telemetry") or {}
    radio = services.get("radio") or {}
    counts = {"failed polls": poller.get("failures", 0), "write errors": t.get("write_errors", 0),
              "points dropped": t.get("points_dropped", 0), "ring errors": t.get("ring_errors", 0),
              "bad messages": sum((radio.get("bad_messages") or {}).values()),
              "restarts": sum(s.get("restarts", 0) for s in services.values())}
    parts = [f"{n} {what}" for what, n in counts.items() if n]
    parts += [f"{name} {s['state']}" for name, s in services.items() if s.get("state") != "running"]
    if t.get("last_error"):
        parts.append(f"last: {t['last_error']}")
    return ", ".join(parts) or "none"


def status_lines(health: dict[str, Any], last: dict[str, Any] | None, tz: tzinfo) -> list[tuple[str, str]]:
    """The demo's status for a person: APs up/down, nodes online, the last broadcast and its
    delivery, telemetry points written/spooled, errors (``health``: /healthz; ``last``: the
    latest occurrence of the broadcast report)."""
    services = health.get("services") or {}
    return [("APs", _aps_line(services.get("poller") or {})),
            ("speakers", _nodes_line(services.get("radio") or {})),
            ("broadcast", _broadcast_line(last, tz)),
            ("telemetry", _telemetry_line(services.get("telemetry") or {})),
            ("errors", _errors_line(services))]


def status_view(lines: list[tuple[str, str]], tz: tzinfo) -> Any:
    """``status_lines`` as a compact block under a line with the time (data as plain text: a
    broadcast's title cannot restyle the terminal)."""
    from rich.console import Group
    from rich.text import Text

    from netmgr.humanize import format_time, zone_label
    from netmgr.text import safe_text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in lines:
        grid.add_row(f"  {label}", Text(safe_text(value, keep_newlines=False)))
    return Group(Text(f"status at {format_time(time.time(), tz)}, {zone_label(tz)}", style="bold"), grid)


async def last_broadcast(run: DemoRun) -> dict[str, Any] | None:
    """The latest occurrence that has started, from today's broadcast report."""
    from datetime import UTC, datetime

    import httpx

    async with httpx.AsyncClient(base_url=run.api_url, headers=auth(run), timeout=5) as http:
        r = await http.get("/api/v1/reports", params={"from": "today", "to": "today"})
    if r.status_code != 200:
        return None
    now = datetime.now(UTC).isoformat()
    started = [o for o in r.json()["items"] if o.get("start", "") <= now]
    return max(started, key=lambda o: o["start"], default=None)


async def demo_status(run: DemoRun, verbose: bool) -> Any:
    """What the demo prints every 10 s: the compact status, or every counter with ``verbose``."""
    import httpx

    async with httpx.AsyncClient(base_url=run.api_url, timeout=5) as http:
        health = (await http.get("/healthz")).json()
    if verbose:
        return await health_table(run, health)
    tz = run.settings.tz
    return status_view(status_lines(health, await last_broadcast(run), tz), tz)


async def run_demo(duration: float | None, state_dir: Path | None, api_port: int = 8470,
                   console: Console | None = None, *, influxdb_url: str | None = None,
                   verbose: bool = False) -> int:
    """Run the demo until ``duration`` (or a signal); every 10 s the status (``verbose``: every
    service's counters). The exit code: 0 on a requested or timed stop."""
    from netmgr.daemon import Daemon

    console = console or Console()
    own_dir = state_dir is None
    state = Path(tempfile.mkdtemp(prefix="netmgr-demo-")) if own_dir else state_dir
    assert state is not None
    mqtt_port = pick_port("127.0.0.1", 1883)
    port = pick_port("127.0.0.1", api_port)
    settings = Settings.model_validate({
        "daemon": {"state_dir": str(state), "drain_timeout": 5},
        "api": {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"},
        # A password made for this run: only the daemon may use its client ids (sim.broker).
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "protocol": "3.1.1", "client_id": "netmgr-demo",
                 "username": "netmgr-demo", "password": secrets.token_urlsafe(24)},
        "snmp": {"interval": 10, "timeout": 1, "retries": 1},
        "influxdb": {"url": influxdb_url or "", "flush_interval": 1.0},
    })
    run = DemoRun(settings, state, console, api_url=f"http://127.0.0.1:{port}", mqtt_port=mqtt_port)
    run.lines.append(("state store (SQLite, WAL)", str(state / "netmgr.db")))
    daemon_task: asyncio.Task[int] | None = None
    daemon = None
    try:
        await start_broker(run)
        daemon = Daemon(settings, None, load=lambda: settings)
        daemon_task = asyncio.create_task(daemon.run(), name="demo:daemon")
        ready = asyncio.create_task(daemon.started.wait())
        done, _ = await asyncio.wait({daemon_task, ready}, timeout=60,
                                     return_when=asyncio.FIRST_COMPLETED)
        if daemon_task in done:
            return daemon_task.result() or 1
        if not ready.done():
            ready.cancel()
            raise RuntimeError("the daemon did not become ready within 60 s")
        run.lines.append(("API (FastAPI)", run.api_url + "  (OpenAPI at /docs)"))
        run.reload = daemon.request_reload
        run.services = daemon.ctx.services if daemon.ctx is not None else {}
        await seed(run)
        for part in DEMO_PARTS:
            await part(run)
        banner(run)
        deadline = None if duration is None else time.monotonic() + duration
        while deadline is None or time.monotonic() < deadline:
            console.print(await demo_status(run, verbose))
            wait = 10.0 if deadline is None else min(10.0, max(0.0, deadline - time.monotonic()))
            done, _ = await asyncio.wait({daemon_task}, timeout=wait)
            if done:
                if daemon.stop_requested:  # SIGTERM or Ctrl-C: asked for, not unexpected
                    console.print("demo stopped on request")
                    return 0
                console.print("[red]the daemon stopped unexpectedly[/red]")
                return 1
        console.print(f"demo ran for {duration:g}s; stopping")
        return 0
    finally:
        if daemon is not None:
            daemon.request_stop()
        if daemon_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(daemon_task, 15)
        for cleanup in reversed(run.cleanups):
            await cleanup()
        if own_dir:
            shutil.rmtree(state, ignore_errors=True)
