"""/api/v1: speaker status, commands to speaker nodes, node credentials, mosquitto files.

Commands and live status need the daemon's radio service (same process); the
status of nodes also survives in the store (``speaker_state``) for when the
radio service is off or restarting.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from netmgr.api import schemas
from netmgr.api.deps import audited_write, page, principal, readable, session, zone_filter
from netmgr.api.services import Services, Svc
from netmgr.auth import Principal
from netmgr.errors import Conflict, Forbidden, MissingReference, NotFound, UsageError
from netmgr.refs import NodeId, ZonePath
from netmgr.store.models import Command, CommandDelivery, Speaker, SpeakerState
from netmgr.zones import common_zone

router = APIRouter()
Caller = Annotated[Principal, Depends(principal)]
Session = Annotated[AsyncSession, Depends(session)]


def _iso(dt: datetime | float | None) -> str | None:
    if dt is None:
        return None
    if isinstance(dt, int | float):
        dt = datetime.fromtimestamp(dt, UTC)
    return dt.isoformat()


def _inventory(sp: Speaker) -> dict[str, Any]:
    return {"id": sp.id, "name": sp.name, "zone": sp.zone, "model": sp.model,
            "credentials": sp.mqtt_hash is not None}


UNKNOWN = {"status": "unknown", "telemetry": None}


async def _statuses(svc: Services, s: AsyncSession, rows: list[Speaker]) -> list[dict[str, Any]]:
    """Each speaker with its live status from the radio service, else its last stored state."""
    if svc.radio is not None:
        out = []
        for sp in rows:
            d = svc.radio.node_status(sp.id) or UNKNOWN
            out.append({**_inventory(sp), **{k: v for k, v in d.items() if k not in ("id", "zone")},
                        "since": _iso(d.get("since")), "last_seen": _iso(d.get("last_seen"))})
        return out
    states = {st.node_id: st for st in await s.scalars(
        select(SpeakerState).where(SpeakerState.node_id.in_([r.id for r in rows])))}
    return [_stored_status(sp, states.get(sp.id)) for sp in rows]


def _stored_status(sp: Speaker, st: SpeakerState | None) -> dict[str, Any]:
    if st is None:
        return {**_inventory(sp), "status": "unknown", "session": None, "since": None, "last_seen": None,
                "fw": None, "telemetry": None, "note": "radio service not running: last stored state"}
    return {**_inventory(sp), "status": "online" if st.online else "offline", "session": st.session,
            "since": _iso(st.since), "last_seen": _iso(st.last_seen), "fw": st.fw, "telemetry": st.telemetry,
            "note": "radio service not running: last stored state"}


@router.get("/speakers-status", tags=["speakers"])
async def speakers_status(svc: Svc, who: Caller, s: Session, zone: ZonePath | None = None,
                          status: Literal["online", "offline", "stale", "unknown"] | None = None,
                          tag: str | None = None) -> dict[str, Any]:
    """Every speaker with its live status (online, stale, offline, unknown) and last telemetry."""
    from netmgr.api.routes_inventory import tag_filter

    q = (select(Speaker).where(zone_filter(Speaker.zone, zone), readable(who, Speaker.zone))
         .order_by(Speaker.id))
    items = await _statuses(svc, s, tag_filter(list(await s.scalars(q)), tag))
    if status:
        items = [i for i in items if i["status"] == status]
    return page(items)


@router.get("/speakers/{node_id}/status", tags=["speakers"])
async def speaker_status(node_id: str, svc: Svc, who: Caller, s: Session,
                         commands: Annotated[int, Query(ge=0, le=500)] = 20) -> dict[str, Any]:
    """One node: inventory, status, last telemetry and its recent commands with their states."""
    from netmgr.api.routes_inventory import find_speaker

    sp = await find_speaker(s, node_id, who)
    out = (await _statuses(svc, s, [sp]))[0]
    rows = (await s.execute(
        select(CommandDelivery, Command).join(Command, Command.id == CommandDelivery.command_id)
        .where(CommandDelivery.node_id == node_id).order_by(Command.issued.desc()).limit(commands))).all()
    recent = [{"id": c.id, "method": c.method, "priority": c.priority, "issued": _iso(c.issued),
               "state": d.state, "error": d.error, "times": d.times} for d, c in rows]
    if svc.radio is not None:  # not yet flushed to the store
        seen = {r["id"] for r in recent}
        recent += [{"id": tc.cmd.id, "method": tc.cmd.method, "priority": tc.cmd.priority,
                    "issued": _iso(tc.cmd.issued),
                    **{k: v for k, v in d.to_dict().items() if k in ("state", "error", "times")}}
                   for tc, d in svc.radio.pending_for(node_id) if tc.cmd.id not in seen]
        recent.sort(key=lambda r: r["issued"] or "", reverse=True)
    out["commands"] = recent[:commands]
    return out


class CommandIn(BaseModel):
    # params per method and at least one target, as published (netmgr.api.schemas)
    model_config = {"extra": "forbid", "json_schema_extra": schemas.COMMAND_SCHEMA}

    method: Literal["play", "stop", "volume", "sync", "reboot", "ping"]
    params: dict[str, Any] = Field(default_factory=dict)
    nodes: list[NodeId] = Field(default_factory=list, max_length=10000)
    zones: list[ZonePath] = Field(default_factory=list, max_length=200)
    priority: Literal["normal", "priority", "emergency"] = "normal"
    ttl_s: float | None = Field(None, ge=1, le=86400)
    wait_s: float = Field(0, ge=0, le=120, description="wait until every target answered or this passes")
    wait_for: Literal["accepted", "done"] = "done"


@router.post("/commands", tags=["speakers"], status_code=201)
async def send_command(body: CommandIn, request: Request, who: Caller, svc: Svc) -> dict[str, Any]:
    """Send a command to nodes and/or zones (zones: one publish each). Operators only inside their
    zones; emergency priority needs the emergency permission. Audited."""
    targets = ",".join(body.zones + body.nodes)[:200] or "(none)"
    async with audited_write(request, who, f"speaker.{body.method}", targets, common_zone(body.zones),
                             check=None, detail=f"priority={body.priority}") as s:
        if not body.nodes and not body.zones:
            raise UsageError("give nodes and/or zones to send the command to")
        if body.priority == "emergency":
            who.require_emergency()
        for z in body.zones:
            who.require_write(z, f"send {body.method} to speakers")
        if body.nodes:
            zones = dict((await s.execute(select(Speaker.id, Speaker.zone).where(
                Speaker.id.in_(body.nodes)))).all())
            missing = [n for n in body.nodes if n not in zones]
            if missing:
                raise MissingReference(f"nodes: speaker {missing[0]!r} not found; see `netmgr speaker list`")
            # The entry names the commune the command reached, so its operator sees it.
            s.info["audit_zone"] = common_zone([*body.zones, *(zones[n] for n in body.nodes)])
            for n in body.nodes:
                try:
                    who.require_write(zones[n], f"send {body.method} to speaker {n}")
                except Forbidden as e:
                    e.zone = zones[n]  # type: ignore[attr-defined]
                    raise
        radio = svc.require_radio()
        tc = await radio.issue(body.method, body.params, nodes=body.nodes, zones=body.zones,
                             priority=body.priority, ttl=body.ttl_s, issued_by=who.name)
    if body.wait_s:
        from netmgr.radio.commands import FINAL

        def answered(t: Any) -> bool:
            states = ("accepted", "playing", *FINAL) if body.wait_for == "accepted" else FINAL
            return all(d.state in states for d in t.deliveries.values())

        tc = await radio.wait(tc.cmd.id, answered, body.wait_s)
    return tc.to_dict()


@router.get("/commands/{command_id}", tags=["speakers"])
async def get_command(command_id: str, svc: Svc, who: Caller, s: Session) -> dict[str, Any]:
    """A command and every target node's state with the time each state was reached (an operator
    sees a command that reached their zones, and only their nodes' deliveries)."""
    tc = svc.radio.command(command_id) if svc.radio is not None else None
    if tc is not None and not tc.dropped:  # compacted ones: every delivery is in the store
        if not await command_visible(s, who, {"nodes": tc.nodes, "zones": tc.zones}):
            raise NotFound(f"command {command_id!r} not found")
        return await scoped_deliveries(s, who, tc.to_dict())
    c = await s.get(Command, command_id)
    if c is None or not await command_visible(s, who, c.targets):
        raise NotFound(f"command {command_id!r} not found")
    ds = list(await s.scalars(select(CommandDelivery).where(CommandDelivery.command_id == command_id)
                              .order_by(CommandDelivery.node_id)))
    summary: dict[str, int] = {}
    for d in ds:
        summary[d.state] = summary.get(d.state, 0) + 1
    return await scoped_deliveries(s, who, {
        "id": c.id, "method": c.method, "params": c.params, "priority": c.priority,
        "issued": _iso(c.issued), "expires": _iso(c.expires), "issued_by": c.issued_by,
        "targets": c.targets, "total": len(ds), "summary": summary,
        "complete": all(d.state in ("done", "error", "expired") for d in ds),
        "deliveries": [{"node": d.node_id, "state": d.state, "error": d.error, "data": d.data,
                        "times": d.times} for d in ds]})


async def _node_zones(s: AsyncSession, nodes: list[str]) -> dict[str, str]:
    if not nodes:
        return {}
    return dict((await s.execute(select(Speaker.id, Speaker.zone).where(Speaker.id.in_(nodes)))).all())


async def command_visible(s: AsyncSession, who: Principal, targets: dict[str, Any]) -> bool:
    """Whether ``who`` may read a command: it reached one of their zones (a zone target inside
    or covering them, or a node in them)."""
    if who.role != "operator":
        return True
    return _visible(who, targets, await _node_zones(s, list(targets.get("nodes") or ())))


def _visible(who: Principal, targets: dict[str, Any], node_zones: dict[str, str]) -> bool:
    if any(who.may_read_overlapping(z) for z in targets.get("zones") or ()):
        return True
    return any(who.may_read(node_zones.get(n)) for n in targets.get("nodes") or ())


async def scoped_deliveries(s: AsyncSession, who: Principal, out: dict[str, Any]) -> dict[str, Any]:
    """``out`` with only the deliveries of nodes ``who`` may read (operators)."""
    if who.role != "operator" or "deliveries" not in out:
        return out
    zones = await _node_zones(s, [d["node"] for d in out["deliveries"]])
    out["deliveries"] = [d for d in out["deliveries"] if who.may_read(zones.get(d["node"]))]
    return out


@router.post("/speakers/{node_id}/credentials", tags=["speakers"])
async def speaker_credentials(node_id: str, request: Request, who: Caller, s: Session) -> dict[str, Any]:
    """Create (or replace) the node's MQTT identity; the password is in this answer only."""
    from netmgr.radio.acl import daemon_users, mosquitto_hash, new_password

    sp = await s.get(Speaker, node_id)
    if sp is None:
        raise NotFound(f"speaker {node_id!r} not found")
    if node_id in daemon_users(request.app.state.settings.mqtt.username):
        raise Conflict(f"speaker {node_id!r} has the name of the daemon's own MQTT identity; "
                       "give the node another id")
    password = new_password()
    replaced = sp.mqtt_hash is not None
    async with audited_write(request, who, "speaker.credentials", node_id, sp.zone,
                             detail="replaced" if replaced else "created") as w:
        row = await w.get(Speaker, node_id)
        assert row is not None
        row.mqtt_hash = mosquitto_hash(password)
    mqtt = request.app.state.settings.mqtt
    return {"node": node_id, "username": node_id, "password": password, "replaced": replaced,
            "zone": sp.zone, "broker": f"{'mqtts' if mqtt.tls else 'mqtt'}://{mqtt.host}:{mqtt.port}",
            "note": "shown once; run `netmgr mqtt render` and reload mosquitto so the broker knows it"}


@router.post("/speakers/{node_id}/reset-session", tags=["speakers"])
async def reset_session(node_id: str, request: Request, who: Caller, s: Session,
                        svc: Svc) -> dict[str, Any]:
    """Forget a node's session counter (after a flash wipe restarted it from a lower value, or a
    bogus one was accepted before): the node's next status is taken as its current one. Audited."""
    sp = await s.get(Speaker, node_id)
    if sp is None:
        raise NotFound(f"speaker {node_id!r} not found")
    async with audited_write(request, who, "speaker.reset-session", node_id, sp.zone) as w:
        st = await w.get(SpeakerState, node_id)
        forgotten = st.session if st is not None and st.session >= 0 else None
        if st is not None:
            st.session = -1
        if svc.radio is not None:
            live = await svc.radio.reset_session(node_id)
            forgotten = live if live >= 0 else forgotten
    return {"node": node_id, "forgotten_session": forgotten,
            "note": "the node's next status sets its session; docs/protocol.md, Session counter"}


@router.get("/mqtt/render", tags=["speakers"])
async def mqtt_render(request: Request, who: Caller, s: Session) -> dict[str, Any]:
    """mosquitto's password and ACL files for every node with credentials (admins only)."""
    from netmgr.radio.acl import render_acl, render_passwd

    who.require_admin("render the broker's password and ACL files")
    rows = list(await s.scalars(select(Speaker).where(Speaker.mqtt_hash.is_not(None))))
    mqtt = request.app.state.settings.mqtt
    passwd = render_passwd(mqtt.username, mqtt.password.get_secret_value(),
                           {r.id: r.mqtt_hash for r in rows if r.mqtt_hash})
    acl = render_acl(mqtt.username, {r.id: r.zone for r in rows})
    without = (await s.execute(select(Speaker.id).where(Speaker.mqtt_hash.is_(None)))).scalars().all()
    return {"passwd": passwd, "acl": acl, "nodes": len(rows), "without_credentials": list(without)[:100],
            "daemon_user": mqtt.username or None}


@router.get("/commands", tags=["speakers"])
async def list_commands(who: Caller, s: Session, limit: Annotated[int, Query(ge=1, le=500)] = 50
                        ) -> dict[str, Any]:
    """Recent commands, newest first (an operator's: those that reached their zones)."""
    rows = list(await s.scalars(select(Command).order_by(Command.issued.desc())
                                .limit(limit if who.role != "operator" else 5000)))
    if who.role == "operator":
        zones = await _node_zones(s, sorted({n for c in rows for n in c.targets.get("nodes") or ()}))
        rows = [c for c in rows if _visible(who, c.targets, zones)][:limit]
    return page([{"id": c.id, "method": c.method, "priority": c.priority, "issued": _iso(c.issued),
                  "issued_by": c.issued_by, "targets": c.targets} for c in rows])
