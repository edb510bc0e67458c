"""/api/v1/users and /api/v1/audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from netmgr.api import schemas
from netmgr.api.deps import audited_write, page, principal, readable, session, zone_filter
from netmgr.auth import USER_NAME, Principal, create_user, user_detail
from netmgr.errors import NotFound, UsageError
from netmgr.refs import ZonePath
from netmgr.store.models import AuditEntry, User

router = APIRouter()
# What ``since`` may be: an ISO 8601 date or time, with an optional offset (not a bare number).
ISO_TIME = (r"^[12]\d{3}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
            r"|02-(?:0[1-9]|1\d|2[0-8]))"  # (29 February is accepted too, but not promised here)
            r"(?:[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?"
            r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?)?$")
Caller = Annotated[Principal, Depends(principal)]
Session = Annotated[AsyncSession, Depends(session)]


class UserIn(BaseModel):
    # operators with zones, admins and viewers without (netmgr.api.schemas)
    model_config = ConfigDict(extra="forbid", json_schema_extra=schemas.USER_SCHEMA)
    name: str = Field(min_length=1, max_length=64, pattern=USER_NAME.pattern)
    role: Literal["admin", "operator", "viewer"]
    zones: list[ZonePath] = Field(default_factory=list, max_length=100)
    can_emergency: bool = False


def user_out(u: User) -> dict[str, Any]:
    return {"name": u.name, "role": u.role, "zones": u.zones, "can_emergency": u.can_emergency,
            "disabled": u.disabled, "created_at": u.created_at.isoformat()}


@router.get("/users", tags=["users"])
async def list_users(who: Caller, s: Session) -> dict[str, Any]:
    who.require_admin("list users")
    return page([user_out(u) for u in await s.scalars(select(User).order_by(User.name))])


@router.get("/info", tags=["health"])
async def info(_: Caller, request: Request) -> dict[str, Any]:
    """What a client needs to show this daemon's data to a person: its version and its time zone
    (``[daemon] timezone``): the CLI shows times there, whatever the zone of the machine it runs on."""
    from netmgr import __version__

    return {"version": __version__, "timezone": request.app.state.settings.daemon.timezone}


@router.get("/whoami", tags=["users"])
async def whoami(who: Caller) -> dict[str, Any]:
    return {"name": who.name, "role": who.role, "zones": list(who.zones), "can_emergency": who.can_emergency}


@router.post("/users", tags=["users"], status_code=201)
async def add_user(body: UserIn, request: Request, who: Caller) -> dict[str, Any]:
    detail = user_detail(body.role, body.zones, body.can_emergency)
    async with audited_write(request, who, "user.add", body.name, None, check="admin", detail=detail) as s:
        user, token = await create_user(s, body.name, body.role, body.zones, body.can_emergency,
                                        actor=who.name, audit=False)
        out = user_out(user) | {"token": token}
    return out


@router.post("/users/{name}/disable", tags=["users"])
async def disable_user(name: str, request: Request, who: Caller) -> dict[str, Any]:
    async with audited_write(request, who, "user.disable", name, None, check="admin") as s:
        user = await s.scalar(select(User).where(User.name == name))
        if user is None:
            raise NotFound(f"user {name!r} not found")
        user.disabled = True
        out = user_out(user)
    return out


def audit_out(a: AuditEntry) -> dict[str, Any]:
    return {"id": a.id, "ts": a.ts.isoformat(), "actor": a.actor, "role": a.role, "action": a.action,
            "target": a.target, "zone": a.zone, "outcome": a.outcome, "detail": a.detail,
            "remote": a.remote}


@router.get("/audit", tags=["audit"])
async def list_audit(
    who: Caller, s: Session,
    since: Annotated[str | None, Query(max_length=40, pattern=ISO_TIME,
                                       description="ISO 8601 time, e.g. 2026-12-01T06:00:00+07:00")] = None,
    actor: str | None = None,
    outcome: Literal["ok", "denied", "error"] | None = None,
    zone: str | None = None,
    action: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 200,
) -> dict[str, Any]:
    """Newest first. Operators see their own actions and those in their zones; viewers all
    but the administration of users; admins all."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if since:
        try:
            when = datetime.fromisoformat(since)
        except ValueError as e:
            raise UsageError(f"query.since: {since!r} is not a time ({e}); use e.g. "
                             "2026-12-01T06:00:00Z") from None
        q = q.where(AuditEntry.ts >= (when if when.tzinfo else when.replace(tzinfo=UTC)))
    if actor:
        q = q.where(AuditEntry.actor == actor)
    if outcome:
        q = q.where(AuditEntry.outcome == outcome)
    if action:
        q = q.where(AuditEntry.action.startswith(action))
    if zone:
        q = q.where(zone_filter(AuditEntry.zone, zone))
    # Who reads what (docs/architecture.md, "Who may read what"): admins everything; viewers
    # (the NOC) everything but the administration of people (user.*: who was given which
    # rights); operators their own actions and what happened in their zones.
    if who.role == "operator":
        q = q.where(or_(AuditEntry.actor == who.name, readable(who, AuditEntry.zone)))
    elif who.role != "admin":
        q = q.where(~AuditEntry.action.startswith("user."))
    return page([audit_out(a) for a in await s.scalars(q)])
