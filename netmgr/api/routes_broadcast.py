"""/api/v1/programs, /plan, /broadcast/now, /reports: broadcasts for commune officials.

Officials (operators) create and cancel programs only for targets inside their zones; an
emergency needs the emergency permission on the user; every change is audited. Times are
stored in UTC and shown in ``[daemon] timezone``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field, WithJsonSchema
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from netmgr.api import schemas
from netmgr.api.deps import audited_write, page, principal, session
from netmgr.api.routes_zones import names_in_force
from netmgr.api.services import Svc, services
from netmgr.auth import Principal
from netmgr.errors import Conflict, Forbidden, MissingReference, NotFound, UsageError
from netmgr.refs import Day, NodeId, ProgramTitle, Text, Title, ZonePath
from netmgr.store.models import CommandDelivery, OccurrenceRow, ProgramRow, Speaker, Zone
from netmgr.text import MAX_SPOKEN
from netmgr.zones import common_zone, overlaps

router = APIRouter()
Caller = Annotated[Principal, Depends(principal)]
Session = Annotated[AsyncSession, Depends(session)]
# Store ids are 64-bit: a larger number is refused at the edge (422), not by the database (500).
ProgramId = Annotated[int, Path(ge=1, le=2**63 - 1, description="a program id (netmgr broadcast list)")]


class ProgramIn(BaseModel):
    """What an official schedules (see netmgr.broadcast.model.Program for every rule)."""

    model_config = {"extra": "forbid"}

    title: ProgramTitle
    # parsed by netmgr.broadcast.model.Program (its refusals in words); published as they are
    content: Annotated[dict[str, Any], WithJsonSchema(schemas.CONTENT_SCHEMA)]
    targets: Annotated[dict[str, Any], WithJsonSchema(schemas.TARGETS_SCHEMA)]
    when: Annotated[dict[str, Any], WithJsonSchema(schemas.WHEN_SCHEMA)]
    duration: Annotated[str | int, WithJsonSchema(schemas.DURATION_SCHEMA)]
    volume: int = Field(80, ge=0, le=100)
    priority: Literal["normal", "priority", "emergency"] = "normal"
    force: bool = Field(False, description="schedule despite an overlap with an equal-priority program")


def tz_of(request: Request) -> str:
    return request.app.state.settings.daemon.timezone


async def load_programs(s: AsyncSession, *, include_cancelled: bool = False) -> list[Any]:
    from netmgr.broadcast.model import Program

    q = select(ProgramRow)
    if not include_cancelled:
        q = q.where(ProgramRow.cancelled_at.is_(None))
    out = []
    for r in await s.scalars(q.order_by(ProgramRow.id)):
        try:
            out.append(Program.model_validate({**r.data, "id": r.id}))
        except ValueError:
            continue  # the scheduler logs programs that no longer load
    return out


async def zone_index(s: AsyncSession) -> Any:
    from netmgr.broadcast.planner import ZoneIndex

    zones: dict[str, list[str]] = {z: [] for z in (await s.scalars(select(Zone.path)))}
    for nid, zone in (await s.execute(select(Speaker.id, Speaker.zone))).all():
        zones.setdefault(zone, []).append(nid)
    return ZoneIndex(zones)


async def authorize_targets(s: AsyncSession, who: Principal, targets: Any, priority: str, what: str) -> str:
    """Refuse unless ``who`` may write every target; returns the program's owning zone."""
    if priority == "emergency":
        who.require_emergency()
    known = set(await s.scalars(select(Zone.path).where(Zone.path.in_(list(targets.zones)))))
    for z in targets.zones:
        if z not in known:
            raise MissingReference(f"targets.zones: unknown zone {z}; see `netmgr zone list`")
        who.require_write(z, what)
    sp_zones = dict((await s.execute(select(Speaker.id, Speaker.zone).where(
        Speaker.id.in_(list(targets.speakers))))).all())
    for sp in targets.speakers:
        if sp not in sp_zones:
            raise MissingReference(f"targets.speakers: unknown speaker {sp}; see `netmgr speaker list`")
        try:
            who.require_write(sp_zones[sp], what)
        except Forbidden as e:
            e.zone = sp_zones[sp]  # type: ignore[attr-defined]
            raise
    zones = list(targets.zones) or [sp_zones[sp] for sp in targets.speakers]
    # the deepest zone containing every target; targets in several provinces: the first's
    return common_zone(zones) or zones[0].split("/", 1)[0]


async def synthesize_if_text(request: Request, data: dict[str, Any], who: Principal) -> None:
    """Text content is spoken by espeak-ng now, so nodes get a URL of real audio."""
    content = data.get("content") or {}
    if content.get("kind") != "text" or content.get("media_id"):
        return
    text = content.get("text")
    if not isinstance(text, str) or not text.strip():
        return  # the model reports it
    try:
        from netmgr.media.tts import synthesize
    except ImportError:
        raise UsageError("text-to-speech is not available in this build; upload audio with "
                         "`netmgr media add` and use --media") from None
    from netmgr.media.store import store_of

    media = await synthesize(store_of(request.app.state.settings), text, created_by=who.name)
    content["media_id"] = media.id


def program_out(row: ProgramRow, prog: Any, tz: str, *, now: datetime | None = None) -> dict[str, Any]:
    from netmgr.broadcast import timeparse as tp

    now = now or datetime.now(UTC)
    nxt = prog.next_occurrences(now, 1) if prog is not None and row.cancelled_at is None else []
    return {"id": row.id, "title": row.title, "zone": row.zone, "priority": row.priority,
            "when": prog.describe_when() if prog else None,
            "duration_s": prog.duration_s if prog else None, "volume": prog.volume if prog else None,
            "content": row.data.get("content"), "targets": row.data.get("targets"),
            "created_by": row.created_by, "created_at": row.created_at.isoformat(),
            "cancelled_at": row.cancelled_at.isoformat() if row.cancelled_at else None,
            "next": tp.format_local(nxt[0], tz) if nxt else None,
            "next_utc": nxt[0].isoformat() if nxt else None}


@router.post("/programs", tags=["broadcasts"], status_code=201)
async def create_program(body: ProgramIn, request: Request, who: Caller) -> dict[str, Any]:
    """Schedule a program. 409 names an overlapping equal-priority program unless ``force``."""
    return await schedule(body, request, who)


async def schedule(body: ProgramIn, request: Request, who: Principal, *,
                   duration_from_content: bool = False) -> dict[str, Any]:
    """Validate, authorize, then (and only then) do the work: speak text, check media, store.

    With ``duration_from_content`` the program lasts as long as its audio (``broadcast/now``
    without a duration), known only once the text is spoken.
    """
    from netmgr.broadcast.model import new_program
    from netmgr.broadcast.planner import check_conflicts

    tz = tz_of(request)
    data = body.model_dump(exclude={"force", "duration"})
    data["duration_s"] = body.duration
    data["created_by"] = who.name
    data["timezone"] = tz
    async with audited_write(request, who, "program.add", body.title[:200], None, check=None,
                             detail=f"priority={body.priority} force={body.force}") as s:
        prog = new_program(data, tz=tz)  # validates everything, refuses the past, bad rules, ...
        zone = await authorize_targets(s, who, prog.targets, prog.priority.value, "schedule broadcasts")
        s.info["audit_zone"] = zone
        if prog.content.kind == "media":
            require_media(request, prog.content.media_id, "content.media_id")
        if prog.content.kind == "text":
            await synthesize_if_text(request, data, who)
            prog = new_program(data, tz=tz)
        if duration_from_content:
            media_id = getattr(prog.content, "media_id", None)
            seconds = content_seconds(request, media_id) if media_id else None
            if seconds is not None:
                data["duration_s"] = seconds
                prog = new_program(data, tz=tz)
        index = await zone_index(s)
        index.resolve(prog.targets, strict=True)
        conflicts = check_conflicts(prog, await load_programs(s), index)
        if conflicts and not body.force:
            c = conflicts[0]
            raise Conflict(f"{prog.label()} {c.message(tz)}; choose another time, or --force to let "
                           "both play (the later-created one waits)")
        row = ProgramRow(title=prog.title, zone=zone, priority=prog.priority.value,
                         data=prog.model_dump(mode="json", exclude={"id"}), created_by=who.name)
        s.add(row)
        await s.flush()
        out = program_out(row, prog, tz)
        out["conflicts_forced"] = [c.to_dict(tz) for c in conflicts]
    services(request).programs_changed()
    return out


def require_media(request: Request, media_id: str, field: str) -> None:
    """MissingReference unless the media exists: nodes would fetch a 404 at play time."""
    from netmgr.media.store import store_of

    if store_of(request.app.state.settings).get(media_id) is None:
        raise MissingReference(f"{field}: media {media_id} does not exist; upload it first "
                         "(netmgr media add) or pick one from `netmgr media list`")


def content_seconds(request: Request, media_id: str) -> str | None:
    """How long a stored media plays, as a duration (whole seconds, rounded up)."""
    from netmgr.media.store import store_of

    m = store_of(request.app.state.settings).get(media_id)
    return None if m is None else f"{max(1, int(m.duration_s + 0.999))}s"


@router.get("/programs", tags=["broadcasts"])
async def list_programs(request: Request, who: Caller, s: Session, zone: ZonePath | None = None,
                        cancelled: bool = False) -> dict[str, Any]:
    from netmgr.broadcast.model import Program

    tz = tz_of(request)
    q = select(ProgramRow).order_by(ProgramRow.id)
    if not cancelled:
        q = q.where(ProgramRow.cancelled_at.is_(None))
    out = []
    for r in await s.scalars(q):
        if (zone and not overlaps(r.zone, zone)) or not who.may_read_overlapping(r.zone):
            continue
        try:
            prog = Program.model_validate({**r.data, "id": r.id})
        except ValueError:
            prog = None
        out.append(program_out(r, prog, tz))
    return page(out)


async def occurrence_summaries(s: AsyncSession, occ_ids: list[str]) -> dict[str, dict[str, int]]:
    rows = (await s.execute(select(CommandDelivery.command_id, CommandDelivery.state, func.count())
                            .where(CommandDelivery.command_id.in_(occ_ids))
                            .group_by(CommandDelivery.command_id, CommandDelivery.state))).all()
    out: dict[str, dict[str, int]] = {}
    for cid, state, n in rows:
        out.setdefault(cid, {})[state] = n
    return out


@router.get("/programs/{program_id}", tags=["broadcasts"])
async def get_program(program_id: ProgramId, request: Request, who: Caller, s: Session) -> dict[str, Any]:
    """A program, its next occurrences and the delivery of its recent ones."""
    from netmgr.broadcast import timeparse as tp
    from netmgr.broadcast.model import Program

    tz = tz_of(request)
    row = await s.get(ProgramRow, program_id)
    if row is None or not who.may_read_overlapping(row.zone):
        raise NotFound(f"program {program_id} not found; see `netmgr broadcast list`")
    prog = Program.model_validate({**row.data, "id": row.id})
    out = program_out(row, prog, tz)
    now = datetime.now(UTC)
    out["next_occurrences"] = ([tp.format_local(x, tz) for x in prog.next_occurrences(now, 5)]
                               if row.cancelled_at is None else [])
    occs = list(await s.scalars(select(OccurrenceRow).where(OccurrenceRow.program_id == program_id)
                                .order_by(OccurrenceRow.start.desc()).limit(20)))
    sums = await occurrence_summaries(s, [o.id for o in occs])
    out["occurrences"] = [occurrence_out(o, sums.get(o.id, {}), tz) for o in occs]
    return out


def occurrence_out(o: OccurrenceRow, summary: dict[str, int], tz: str) -> dict[str, Any]:
    from netmgr.broadcast import timeparse as tp

    return {"id": o.id, "start": o.start.isoformat(), "start_local": tp.format_local(o.start, tz),
            "state": o.state, "sent_at": o.sent_at.isoformat() if o.sent_at else None, "targets": o.targets,
            "played": summary.get("done", 0) + summary.get("playing", 0),
            "accepted": summary.get("accepted", 0), "failed": summary.get("error", 0),
            "offline": summary.get("offline", 0) + summary.get("timeout", 0),
            "expired": summary.get("expired", 0), "late": o.state == "late", "missed": o.state == "missed",
            "deliveries": summary, "detail": o.detail}


@router.delete("/programs/{program_id}", tags=["broadcasts"])
async def cancel_program(program_id: ProgramId, request: Request, who: Caller, s: Session,
                         svc: Svc) -> dict[str, Any]:
    """Cancel a program: no further occurrences; nodes get schedules without it."""
    from netmgr.broadcast.model import Program

    row = await s.get(ProgramRow, program_id)
    if row is None:
        raise NotFound(f"program {program_id} not found; see `netmgr broadcast list`")
    if row.cancelled_at is not None:
        raise Conflict(f"program {program_id} was cancelled at {row.cancelled_at.isoformat()}")
    prog = Program.model_validate({**row.data, "id": row.id})
    async with audited_write(request, who, "program.cancel", f"{program_id} {row.title}"[:200], row.zone,
                             check=None) as w:
        # Cancelling an emergency takes the same permission as sending one.
        await authorize_targets(w, who, prog.targets, prog.priority.value, "cancel broadcasts")
        r = await w.get(ProgramRow, program_id)
        assert r is not None
        r.cancelled_at, r.cancelled_by = datetime.now(UTC), who.name
    svc.programs_changed()
    return {"cancelled": program_id}


@router.get("/plan", tags=["broadcasts"])
async def plan(request: Request, who: Caller, s: Session, zone: ZonePath,
               day: Annotated[Day, Query()] = "today") -> dict[str, Any]:
    """The resolved timeline of every speaker in a zone for one local day (preemptions applied);
    an operator plans only inside their zones."""
    from netmgr.broadcast.planner import plan_zone

    if not who.may_read(zone):
        raise Forbidden(f"{who.role} '{who.name}' may not read the plan of zone {zone}: outside their "
                        f"zones {', '.join(who.zones)}")
    tz = tz_of(request)
    index = await zone_index(s)
    if not index.has_zone(zone):
        raise NotFound(f"zone {zone} not found; see `netmgr zone list`")
    try:
        p = plan_zone(await load_programs(s), index, zone, day, tz)
    except ValueError as e:
        raise UsageError(f"day {day!r}: {e}") from None
    return {"zone": zone, "day": day, **p.to_dict(tz)}


class NowIn(BaseModel):
    model_config = {"extra": "forbid", "json_schema_extra": {
        "allOf": [schemas.NOW_CONTENT, {"anyOf": schemas.AT_LEAST_ONE_TARGET}]}}

    zones: list[ZonePath] = Field(default_factory=list, max_length=200)
    speakers: list[NodeId] = Field(default_factory=list, max_length=10000)
    text: Annotated[Text | None, WithJsonSchema(schemas.TEXT_SCHEMA)] = Field(None, max_length=MAX_SPOKEN)
    media_id: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="a media id (media list)")
    url: Annotated[str | None, WithJsonSchema(schemas.URL_SCHEMA)] = Field(None, max_length=2048)
    title: Title = ""
    emergency: bool = False
    priority: Literal["normal", "priority", "emergency"] | None = None
    duration: Annotated[str | int | None, WithJsonSchema(schemas.DURATION_SCHEMA)] = None
    volume: int | None = Field(None, ge=0, le=100)


@router.post("/broadcast/now", tags=["broadcasts"], status_code=201)
async def broadcast_now(body: NowIn, request: Request, who: Caller) -> dict[str, Any]:
    """Play at once: a one-off program starting now (so it is planned, delivered and reported like
    any other); returns its occurrence id for following delivery (GET /commands/{id}). Without a
    duration it lasts as long as its audio (text is spoken only once the caller is authorized)."""
    given = [k for k in ("text", "media_id", "url") if getattr(body, k)]
    if len(given) != 1:
        raise UsageError("give exactly one of text, media or url")
    kind = {"text": "text", "media_id": "media", "url": "url"}[given[0]]
    content: dict[str, Any] = {"kind": kind, given[0]: getattr(body, given[0])}
    priority = "emergency" if body.emergency else (body.priority or "normal")
    now = datetime.now(UTC).replace(microsecond=0)  # the scheduler is woken and sends it at once
    prog_in = ProgramIn(
        title=body.title or " ".join((body.text or "").split())[:60].strip() or "Phát ngay", content=content,
        targets={"zones": body.zones, "speakers": body.speakers},
        when={"kind": "once", "start": now.isoformat()},
        duration=body.duration if body.duration is not None else 300,
        volume=body.volume if body.volume is not None else (100 if priority == "emergency" else 80),
        priority=priority, force=True)
    out = await schedule(prog_in, request, who, duration_from_content=body.duration is None)
    out["occurrence"] = f"p{out['id']}-{now.replace(microsecond=0):%Y%m%dT%H%M%SZ}"
    return out


@router.get("/reports", tags=["broadcasts"])
async def report(request: Request, who: Caller, s: Session,
                 from_: Annotated[Day, Query(alias="from")], to: Annotated[Day, Query()],
                 zone: ZonePath | None = None) -> dict[str, Any]:
    """Per program and occurrence in ``[from, to]`` (local days): targets, played, failed, offline,
    late, missed — the record a commune keeps."""
    from netmgr.broadcast import timeparse as tp

    tz = tz_of(request)
    try:
        start = tp.day_bounds(tp.parse_day(from_, tz=tz), tz)[0]
        end = tp.day_bounds(tp.parse_day(to, tz=tz), tz)[1]
    except ValueError as e:
        raise UsageError(f"--from/--to: {e}") from None
    if end <= start:
        raise UsageError("--to is before --from")
    q = (select(OccurrenceRow, ProgramRow).join(ProgramRow, ProgramRow.id == OccurrenceRow.program_id)
         .where(OccurrenceRow.start >= start, OccurrenceRow.start < end).order_by(OccurrenceRow.start))
    rows = [(o, p) for o, p in (await s.execute(q)).all()
            if (not zone or overlaps(p.zone, zone)) and who.may_read_overlapping(p.zone)]
    sums = await occurrence_summaries(s, [o.id for o, _ in rows])
    name_at = await names_in_force(s, {p.zone for _, p in rows})
    items = []
    for o, p in rows:
        item = occurrence_out(o, sums.get(o.id, {}), tz)
        # The commune's name on the day (a renamed or merged commune's report keeps its old name).
        item.update(program=p.id, title=p.title, zone=p.zone, zone_name=name_at(p.zone, o.start),
                    priority=p.priority)
        item.pop("detail", None)
        items.append(item)
    totals = {k: sum(i[k] for i in items) for k in ("targets", "played", "failed", "offline", "expired")}
    totals["late"] = sum(1 for i in items if i["late"])
    totals["missed"] = sum(1 for i in items if i["missed"])
    return {"from": start.isoformat(), "to": end.isoformat(), "zone": zone, "items": items,
            "totals": totals, "count": len(items)}


@router.get("/programs.ics", tags=["broadcasts"], response_class=PlainTextResponse, responses={
    200: {"content": {"text/calendar": {"schema": {"type": "string"}}}, "description": "an iCalendar file"}})
async def ics(request: Request, who: Caller, s: Session, zone: ZonePath | None = None) -> PlainTextResponse:
    """iCalendar (RFC 5545) of the programs, recurring ones with their RRULE."""
    from netmgr.broadcast.ics import to_ics

    progs = await load_programs(s)
    rows = {r.id: r for r in await s.scalars(select(ProgramRow).where(ProgramRow.cancelled_at.is_(None)))}
    progs = [p for p in progs if p.id in rows and (not zone or overlaps(rows[p.id].zone, zone))
             and who.may_read_overlapping(rows[p.id].zone)]
    return PlainTextResponse(to_ics(progs, tz_of(request)), media_type="text/calendar; charset=utf-8")
