"""/api/v1/zones: the zone tree."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from netmgr import zones
from netmgr.api.deps import audited_write, page, principal, session
from netmgr.auth import Principal
from netmgr.errors import Conflict, ImportRefused, MissingReference, NotFound
from netmgr.refs import Name, ZonePath
from netmgr.store.models import Zone

router = APIRouter(tags=["zones"])
Caller = Annotated[Principal, Depends(principal)]
Session = Annotated[AsyncSession, Depends(session)]


class ZoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: ZonePath
    name: Name

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return zones.normalize_name(v)


class ImportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["csv", "yaml"]
    text: str = Field(min_length=1, max_length=5_000_000, json_schema_extra={"pattern": r"\S"},
                      description="the file's text: CSV with a header line, or YAML")


def zone_out(z: Zone) -> dict[str, Any]:
    return {"path": z.path, "name": z.name, "level": z.level, "parent": z.parent}


@router.get("/zones")
async def list_zones(_: Caller, s: Session, under: str | None = None) -> dict[str, Any]:
    q = select(Zone).order_by(Zone.path)
    if under:
        q = q.where(or_(Zone.path == under, Zone.path.startswith(under + "/")))
    return page([zone_out(z) for z in await s.scalars(q)])


@router.get("/zones/{path:path}")
async def get_zone(path: str, _: Caller, s: Session) -> dict[str, Any]:
    z = await s.get(Zone, path)
    if z is None:
        raise NotFound(f"zone {path} not found")
    return zone_out(z)


@router.post("/zones", status_code=201)
async def add_zone(body: ZoneIn, request: Request, who: Caller) -> dict[str, Any]:
    parent = zones.parent_of(body.path)
    # Creating a zone is a write in its parent (an operator may add villages to their commune).
    async with audited_write(request, who, "zone.add", body.path, parent or body.path) as s:
        if parent and await s.get(Zone, parent) is None:
            raise MissingReference(f"body.path: unknown parent zone {parent}; add it first")
        if await s.get(Zone, body.path) is not None:
            raise Conflict(f"zone {body.path} exists")
        z = Zone(path=body.path, name=body.name, level=zones.level_of(body.path), parent=parent)
        s.add(z)
        await s.flush()
        out = zone_out(z)
    return out


@router.post("/zones/import")
async def import_zones(body: ImportIn, request: Request, who: Caller) -> dict[str, Any]:
    async with audited_write(request, who, "zone.import", f"{body.format} file", None,
                             check="writer") as s:
        # Parsed off the event loop: a 5 MB file takes a second or two.
        records = await asyncio.to_thread(zones.parse_zone_file, body.text, body.format)
        existing = {z.path: z.name for z in await s.scalars(select(Zone))}
        new = await asyncio.to_thread(zones.check_import, records, existing)
        for path, _ in new:  # like zone.add: creating a zone is a write in its parent
            who.require_write(zones.parent_of(path) or path, "zone.import")
        for path, name in new:
            s.add(Zone(path=path, name=name, level=zones.level_of(path), parent=zones.parent_of(path)))
        await s.flush()
    return {"created": len(new), "unchanged": len(records) - len(new)}


__all__ = ["ImportRefused", "router"]
