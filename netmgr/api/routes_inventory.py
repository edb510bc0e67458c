"""/api/v1/aps and /api/v1/speakers: the inventory, written only inside the caller's zones."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from netmgr.api.deps import audited_write, page, principal, readable, session, zone_filter
from netmgr.api.routes_zones import ImportIn
from netmgr.api.services import Services, Svc
from netmgr.auth import Principal
from netmgr.errors import Conflict, ImportRefused, MissingReference, NotFound
from netmgr.inventory import ApIn, SpeakerIn, validate_records
from netmgr.records import parse_records
from netmgr.refs import ZonePath
from netmgr.store.models import AccessPoint, ApEvent, ApState, Speaker, Zone

router = APIRouter()
Caller = Annotated[Principal, Depends(principal)]
Session = Annotated[AsyncSession, Depends(session)]
MASK = "********"


def ap_out(ap: AccessPoint) -> dict[str, Any]:
    snmp: dict[str, Any] = {"version": ap.snmp_version}
    if ap.snmp_version == "3":
        snmp |= {"v3_user": ap.v3_user, "auth_proto": ap.v3_auth_proto, "priv_proto": ap.v3_priv_proto,
                 "auth_key": MASK if ap.v3_auth_key else None, "priv_key": MASK if ap.v3_priv_key else None}
    else:
        snmp["community"] = MASK if ap.community else "(default)"
    return {"name": ap.name, "host": ap.host, "port": ap.port, "zone": ap.zone, "lat": ap.lat,
            "lon": ap.lon, "tags": ap.tags, "snmp": snmp, "profile": ap.profile, "enabled": ap.enabled}


def iso(dt: Any) -> str | None:
    return dt.isoformat() if dt is not None else None


def state_out(st: ApState | None, detail: bool = False) -> dict[str, Any]:
    if st is None:
        return {"status": "unknown", "clients": None, "last_poll": None, "vendor": None, "model": None}
    out = {"status": st.status, "status_since": iso(st.status_since), "flaps": st.flaps,
           "clients": st.clients, "last_poll": iso(st.last_poll), "last_ok": iso(st.last_ok),
           "response_ms": None if st.response_ms is None else round(st.response_ms, 1),
           "uptime_s": st.uptime_s, "vendor": st.vendor, "model": st.model, "matched_profile": st.profile,
           "sys_name": st.sys_name, "cpu_pct": st.cpu_pct, "mem_used": st.mem_used, "mem_total": st.mem_total,
           "last_error": st.last_error}
    if detail:
        out |= st.detail or {}
    return out


def speaker_out(sp: Speaker) -> dict[str, Any]:
    return {"id": sp.id, "name": sp.name, "zone": sp.zone, "lat": sp.lat, "lon": sp.lon,
            "tags": sp.tags, "model": sp.model}


def _secret(v: Any) -> str | None:
    return v.get_secret_value() if v is not None else None


def apply_ap(ap: AccessPoint, body: ApIn) -> AccessPoint:
    ap.name, ap.host, ap.port, ap.zone = body.name, body.host, body.port, body.zone
    ap.lat, ap.lon, ap.tags, ap.profile = body.lat, body.lon, body.tags, body.profile
    sn = body.snmp
    ap.snmp_version, ap.community = sn.version, _secret(sn.community)
    ap.v3_user, ap.v3_auth_proto, ap.v3_auth_key = sn.v3_user, sn.auth_proto, _secret(sn.auth_key)
    ap.v3_priv_proto, ap.v3_priv_key = sn.priv_proto, _secret(sn.priv_key)
    return ap


def apply_speaker(sp: Speaker, body: SpeakerIn, only: set[str] | None = None) -> Speaker:
    """Copy ``body`` onto the row (only the fields in ``only`` when given)."""
    for f in ("id", "name", "zone", "model", "lat", "lon", "tags"):
        if only is None or f in only:
            setattr(sp, f, getattr(body, f))
    return sp


@dataclass(frozen=True, slots=True)
class _Kind:
    """What differs between the AP and the speaker inventory for add, remove and import."""

    noun: Literal["ap", "speaker"]  # audit actions ("ap.import"), the parser, inventory_changed()
    label: str  # for people: "AP", "speaker"
    model: Any  # the store row class
    key: str  # the row's unique key: the AP's name, the speaker's id
    apply: Callable[[Any, Any, set[str] | None], Any]  # copy a body onto a row (only some fields)

    def key_of(self, item: Any) -> str:
        return getattr(item, self.key)


# An AP row is replaced whole by an import (its SNMP settings go together); a speaker row keeps
# the columns the file does not have (a file without lat,lon keeps the stored ones).
AP_KIND = _Kind("ap", "AP", AccessPoint, "name", lambda row, body, only: apply_ap(row, body))
SPEAKER_KIND = _Kind("speaker", "speaker", Speaker, "id",
                     lambda row, body, only: apply_speaker(row, body, only=only))


async def _add(kind: _Kind, body: Any, request: Request, who: Principal, svc: Services,
               out: Callable[[Any], Any], detail: str = "") -> dict[str, Any]:
    """Add one item inside the caller's zones; Conflict if its key exists."""
    key = kind.key_of(body)
    async with audited_write(request, who, f"{kind.noun}.add", key, body.zone, detail=detail) as s:
        await require_zone(s, body.zone)
        col = getattr(kind.model, kind.key)
        if await s.scalar(select(col).where(col == key)) is not None:
            raise Conflict(f"{kind.label} {key!r} exists; remove it first or import to update it")
        row = kind.apply(kind.model(), body, None)
        s.add(row)
        await s.flush()
        result = out(row)
    svc.inventory_changed(f"{kind.noun}s")
    return result


async def _remove(kind: _Kind, row: Any, request: Request, who: Principal, svc: Services) -> dict[str, Any]:
    key = kind.key_of(row)
    async with audited_write(request, who, f"{kind.noun}.remove", key, row.zone) as w:
        await w.delete(await w.merge(row))
    svc.inventory_changed(f"{kind.noun}s")
    return {"removed": key}


async def _import(kind: _Kind, body: ImportIn, request: Request, who: Principal,
                  svc: Services) -> dict[str, Any]:
    """Create or update every row of the file, all or nothing, after checking each row's current
    and new zone; parsed in a thread once the caller is known to be a writer."""
    what = f"{kind.noun} import"
    async with audited_write(request, who, f"{kind.noun}.import", f"{body.format} file", None,
                             check="writer") as s:
        rows = await asyncio.to_thread(_parse, body, kind.noun)
        col = getattr(kind.model, kind.key)
        existing = {kind.key_of(x): x for x in await s.scalars(
            select(kind.model).where(col.in_([kind.key_of(i) for _, i in rows])))}
        await _check_import_zones(s, who, rows, {k: x.zone for k, x in existing.items()}, what, kind.key)
        for _, item in rows:
            row = existing.get(kind.key_of(item))
            if row is None:
                s.add(kind.apply(kind.model(), item, None))
            else:
                kind.apply(row, item, item.model_fields_set)
        await s.flush()
    svc.inventory_changed(f"{kind.noun}s")
    return {"created": len(rows) - len(existing), "updated": len(existing)}


def _parse(body: ImportIn, kind: Literal["ap", "speaker"]) -> list[tuple[int, Any]]:
    """Parse and validate an import (in a thread: big files take seconds)."""
    return validate_records(parse_records(body.text, body.format, f"{kind} import"), kind)


async def require_zone(s: AsyncSession, zone: str, field: str = "body.zone") -> None:
    if await s.get(Zone, zone) is None:
        raise MissingReference(f"{field}: unknown zone {zone}; create it first (netmgr zone add)")


def tag_filter(items: list[Any], tag: str | None) -> list[Any]:
    if not tag:
        return items
    k, _, v = tag.partition("=")
    return [i for i in items if k in i.tags and (not v or i.tags[k] == v)]


# ---------------------------------------------------------------------------- APs


@router.get("/aps", tags=["aps"])
async def list_aps(who: Caller, s: Session, zone: ZonePath | None = None, tag: str | None = None,
                   status: str | None = None) -> dict[str, Any]:
    q = (select(AccessPoint, ApState).outerjoin(ApState, ApState.ap_id == AccessPoint.id)
         .where(zone_filter(AccessPoint.zone, zone), readable(who, AccessPoint.zone))
         .order_by(AccessPoint.name))
    rows = (await s.execute(q)).all()
    items = [ap_out(a) | state_out(st) for a, st in rows if not tag or tag_filter([a], tag)]
    if status:
        items = [i for i in items if i["status"] == status]
    return page(items)


async def find_ap(s: AsyncSession, name: str, who: Principal | None = None) -> AccessPoint:
    """The AP by name; NotFound also when ``who`` may not read it (its existence is not told)."""
    ap = await s.scalar(select(AccessPoint).where(AccessPoint.name == name))
    if ap is None or (who is not None and not who.may_read(ap.zone)):
        raise NotFound(f"AP {name!r} not found")
    return ap


@router.get("/aps/{name}", tags=["aps"])
async def get_ap(name: str, who: Caller, s: Session) -> dict[str, Any]:
    ap = await find_ap(s, name, who)
    events = await s.scalars(select(ApEvent).where(ApEvent.ap_id == ap.id)
                             .order_by(ApEvent.id.desc()).limit(20))
    return ap_out(ap) | state_out(await s.get(ApState, ap.id), detail=True) | {
        "events": [{"ts": iso(e.ts), "status": e.status, "detail": e.detail} for e in events]}


@router.post("/aps", tags=["aps"], status_code=201)
async def add_ap(body: ApIn, request: Request, who: Caller, svc: Svc) -> dict[str, Any]:
    return await _add(AP_KIND, body, request, who, svc, ap_out, detail=f"host={body.host}:{body.port}")


@router.delete("/aps/{name}", tags=["aps"])
async def remove_ap(name: str, request: Request, who: Caller, svc: Svc, s: Session) -> dict[str, Any]:
    return await _remove(AP_KIND, await find_ap(s, name), request, who, svc)


async def _check_import_zones(s: AsyncSession, who: Principal, rows: list[tuple[int, Any]],
                              existing_zone: dict[str, str], what: str, key: str) -> None:
    """Every row's new zone must exist, and the caller must be allowed to write both where the
    row puts the item and where the stored item (found by ``key``: the AP's name, the speaker's
    id) is now: an import must not move another commune's item into the caller's."""
    known = set(await s.scalars(select(Zone.path)))
    problems = [f"line {line}: zone: unknown zone {item.zone}"
                for line, item in rows if item.zone not in known]
    if problems:
        raise ImportRefused(what, problems)
    for line, item in rows:
        current = existing_zone.get(getattr(item, key))
        for z in (current, item.zone) if current is not None else (item.zone,):
            if not who.may_write(z):
                who.require_write(z, f"{what} (line {line}: {getattr(item, key)})")


@router.post("/aps/import", tags=["aps"])
async def import_aps(body: ImportIn, request: Request, who: Caller, svc: Svc) -> dict[str, Any]:
    return await _import(AP_KIND, body, request, who, svc)


# ---------------------------------------------------------------------------- speakers


@router.get("/speakers", tags=["speakers"])
async def list_speakers(who: Caller, s: Session, zone: ZonePath | None = None,
                        tag: str | None = None) -> dict[str, Any]:
    rows = list(await s.scalars(select(Speaker).where(zone_filter(Speaker.zone, zone),
                                                      readable(who, Speaker.zone)).order_by(Speaker.id)))
    return page([speaker_out(x) for x in tag_filter(rows, tag)])


async def find_speaker(s: AsyncSession, node_id: str, who: Principal | None = None) -> Speaker:
    """The speaker by id; NotFound also when ``who`` may not read it."""
    sp = await s.get(Speaker, node_id)
    if sp is None or (who is not None and not who.may_read(sp.zone)):
        raise NotFound(f"speaker {node_id!r} not found")
    return sp


@router.get("/speakers/{node_id}", tags=["speakers"])
async def get_speaker(node_id: str, who: Caller, s: Session) -> dict[str, Any]:
    return speaker_out(await find_speaker(s, node_id, who))


@router.post("/speakers", tags=["speakers"], status_code=201)
async def add_speaker(body: SpeakerIn, request: Request, who: Caller, svc: Svc) -> dict[str, Any]:
    return await _add(SPEAKER_KIND, body, request, who, svc, speaker_out)


@router.delete("/speakers/{node_id}", tags=["speakers"])
async def remove_speaker(node_id: str, request: Request, who: Caller, svc: Svc, s: Session) -> dict[str, Any]:
    return await _remove(SPEAKER_KIND, await find_speaker(s, node_id), request, who, svc)


@router.post("/speakers/import", tags=["speakers"])
async def import_speakers(body: ImportIn, request: Request, who: Caller, svc: Svc) -> dict[str, Any]:
    return await _import(SPEAKER_KIND, body, request, who, svc)
