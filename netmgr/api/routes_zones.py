"""/api/v1/zones: the zone tree."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from netmgr import zones
from netmgr.api.deps import audited_write, page, principal, session
from netmgr.auth import Principal
from netmgr.errors import Conflict, ImportRefused, MissingReference, NotFound, UsageError
from netmgr.refs import Name, ZoneKind, ZonePath
from netmgr.store.models import Zone, ZoneName

router = APIRouter(tags=["zones"])
Caller = Annotated[Principal, Depends(principal)]
Session = Annotated[AsyncSession, Depends(session)]


class ZoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: ZonePath
    name: Name
    kind: ZoneKind | None = Field(None, description="devices/zones/kinds.yaml; default: by its place "
                                  "(a province at the top, a xã under a province, a thôn under a commune)")
    code: Annotated[str, Field(pattern=r"^[0-9]{2,5}$")] | None = Field(
        None, description="official unit code (mã đơn vị hành chính): 2 digits a province, 5 a commune")

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
    k = zones.kinds().by_id.get(z.kind)
    return {"path": z.path, "name": z.name, "level": z.level, "kind": z.kind,
            "kind_name": k.vi if k else z.kind, "code": z.code, "parent": z.parent}


def stored(z: Zone) -> zones.ZoneRow:
    return zones.ZoneRow(z.path, z.name, z.kind, z.code)


@router.get("/zones")
async def list_zones(_: Caller, s: Session, under: str | None = None,
                     q: Annotated[str | None, Query(max_length=100, description=(
                         "an official code, or words of the name with or without diacritics "
                         "(`tan phu` finds Tân Phú)"))] = None) -> dict[str, Any]:
    query = select(Zone).order_by(Zone.path)
    if under:
        query = query.where(or_(Zone.path == under, Zone.path.startswith(under + "/")))
    found = list(await s.scalars(query))
    if q is not None and q.strip():
        words = zones.fold(q).split()
        found = [z for z in found if z.code == q.strip()
                 or all(w in zones.fold(z.name) or w in z.path for w in words)]
    return page([zone_out(z) for z in found])


@router.get("/zones/{path:path}")
async def get_zone(path: str, _: Caller, s: Session) -> dict[str, Any]:
    """A zone, with the names it had before (each valid until a moment)."""
    z = await s.get(Zone, path)
    if z is None:
        raise NotFound(f"zone {path} not found")
    history = await s.scalars(select(ZoneName).where(ZoneName.path == path).order_by(ZoneName.valid_until))
    return zone_out(z) | {"history": [{"name": h.name, "kind": h.kind, "code": h.code,
                                       "valid_until": h.valid_until.isoformat(), "changed_by": h.changed_by}
                                      for h in history]}


class RenameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    kind: ZoneKind | None = Field(None, description="a new kind (a xã becoming a phường keeps its code)")
    code: Annotated[str, Field(pattern=r"^([0-9]{2,5})?$")] | None = Field(
        None, description="a new official code; an empty string removes it")
    effective: AwareDatetime | None = Field(
        None, description="when the new name took effect (default: now; e.g. 2025-07-01T00:00:00+07:00); "
        "reports of earlier times show the old name")
    dry_run: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return zones.normalize_name(v)


@router.patch("/zones/{path:path}")
async def rename_zone(path: ZonePath, body: RenameIn, request: Request, who: Caller) -> dict[str, Any]:
    """Rename a zone (and change its kind or code), keeping what it was called until when: reports
    of earlier days show the names then in force. The path, topics and scopes do not change."""
    from datetime import UTC, datetime

    parent = zones.parent_of(path)
    # Like zone.add: the zone is its parent's (an operator may rename villages of their commune).
    async with audited_write(request, who, "zone.rename", path, parent or path,
                             detail=f"name={body.name}") as s:
        z = await s.get(Zone, path)
        if z is None:
            raise NotFound(f"zone {path} not found")
        now = datetime.now(UTC)
        effective = (body.effective or now).astimezone(UTC)
        last = await s.scalar(select(func.max(ZoneName.valid_until)).where(ZoneName.path == path))
        if effective > now or effective.year < 2000 or (last is not None and effective <= last):
            raise UsageError(f"body.effective: {effective.isoformat()} must be in the past"
                             + (f" and after the last rename ({last.isoformat()})" if last else ""))
        parent_kind = (await s.get(Zone, parent)).kind if parent else None  # type: ignore[union-attr]
        children = list(await s.scalars(select(Zone.kind).where(Zone.parent == path)))
        holder = await s.scalar(select(Zone.path).where(Zone.code == body.code)) if body.code else None
        try:
            new = zones.check_rename(stored(z), parent_kind, children, body.name, body.kind, body.code,
                                     holder)
        except ValueError as e:
            if "already the code" in str(e):
                raise Conflict(f"body.code: {e}") from None
            raise UsageError(f"body: {e}") from None
        before = zone_out(z)
        if not body.dry_run:
            s.add(ZoneName(path=path, name=z.name, kind=z.kind, code=z.code, valid_until=effective,
                           changed_by=who.name))
            z.name, z.kind, z.code = new.name, new.kind, new.code
            z.level = zones.kinds().get(new.kind).tier
            await s.flush()
        after = zone_out(z) if not body.dry_run else {**before, **zone_out(_row(new))}
    return {"dry_run": body.dry_run, "before": before, "after": after, "effective": effective.isoformat()}


async def names_in_force(s: AsyncSession, paths: set[str]) -> Callable[[str, datetime], str | None]:
    """``name_at(path, when)``: the name each of ``paths`` had at a moment (reports of past days)."""
    current = {z.path: z.name for z in await s.scalars(select(Zone).where(Zone.path.in_(paths)))}
    history: dict[str, list[tuple[datetime, str]]] = {}
    for h in await s.scalars(select(ZoneName).where(ZoneName.path.in_(paths))):
        history.setdefault(h.path, []).append((h.valid_until, h.name))

    def name_at(path: str, when: datetime) -> str | None:
        if path not in current:
            return None
        return zones.name_in_force(history.get(path, []), current[path], when)
    return name_at


@router.post("/zones", status_code=201)
async def add_zone(body: ZoneIn, request: Request, who: Caller) -> dict[str, Any]:
    parent = zones.parent_of(body.path)
    # Creating a zone is a write in its parent (an operator may add villages to their commune).
    async with audited_write(request, who, "zone.add", body.path, parent or body.path) as s:
        if parent and await s.get(Zone, parent) is None:
            raise MissingReference(f"body.path: unknown parent zone {parent}; add it first")
        if await s.get(Zone, body.path) is not None:
            raise Conflict(f"zone {body.path} exists")
        # The import's rules: a kind for its place, a code of its kind and unique.
        try:
            row = zones.new_zone(body.path, body.name, body.kind, body.code,
                                 await _existing_near(s, body.path, body.code),
                                 request.app.state.settings.zones.max_depth)
        except ValueError as e:
            if body.code is not None and "already the code" in str(e):
                raise Conflict(f"body.code: {e}") from None
            raise UsageError(f"body: {e}") from None
        z = _row(row)
        s.add(z)
        await s.flush()
        out = zone_out(z)
    return out


async def _existing_near(s: AsyncSession, path: str, code: str | None) -> dict[str, zones.ZoneRow]:
    """The stored zones a new zone at ``path`` is checked against: its ancestors, and the zone
    that has its code."""
    near = Zone.path.in_(zones.ancestors(path))
    q = select(Zone).where(near if code is None else or_(near, Zone.code == code))
    return {z.path: stored(z) for z in await s.scalars(q)}


def _row(z: zones.ZoneRow) -> Zone:
    return Zone(path=z.path, name=z.name, kind=z.kind, level=zones.kinds().get(z.kind).tier, code=z.code,
                parent=zones.parent_of(z.path))


@router.post("/zones/import")
async def import_zones(body: ImportIn, request: Request, who: Caller) -> dict[str, Any]:
    async with audited_write(request, who, "zone.import", f"{body.format} file", None,
                             check="writer") as s:
        # Parsed off the event loop: a 5 MB file takes a second or two.
        records = await asyncio.to_thread(zones.parse_zone_file, body.text, body.format)
        existing = {z.path: stored(z) for z in await s.scalars(select(Zone))}
        new = await asyncio.to_thread(zones.check_import, records, existing,
                                      request.app.state.settings.zones.max_depth)
        for z in new:  # like zone.add: creating a zone is a write in its parent
            who.require_write(zones.parent_of(z.path) or z.path, "zone.import")
        for z in new:
            s.add(_row(z))
        await s.flush()
    return {"created": len(new), "unchanged": len(records) - len(new)}


class DirectoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["csv", "xlsx"]
    data: str = Field(min_length=1, max_length=8_000_000, json_schema_extra={"pattern": r"\S"},
                      description="the statistics office's export: the CSV's text, or the .xlsx in base64")
    province: Annotated[str, Field(pattern=r"^[0-9]{2}$")] | None = Field(
        None, description="only the units of this province (its 2-digit code)")
    dry_run: bool = Field(False, description="say what would change, change nothing")


def _file_bytes(body: DirectoryIn) -> bytes:
    if body.format == "csv":
        return body.data.encode("utf-8")
    import base64
    import binascii

    try:
        return base64.b64decode(body.data, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError("body.data: an .xlsx file is sent in base64; this is not base64") from None


@router.post("/zones/directory")
async def import_directory(body: DirectoryIn, request: Request, who: Caller) -> dict[str, Any]:
    """Codes, names and kinds from the official directory of administrative units (danh mục đơn vị
    hành chính): units found by code or by name get their code, missing ones are created under
    their province, differing ones are reported. All or nothing; ``dry_run`` changes nothing."""
    from netmgr import directory

    # The directory is the province's, so it is the admins' (least privilege: no operator has a
    # province in scope, and a commune's code comes with its province's).
    async with audited_write(request, who, "zone.directory", f"{body.format} file", None, check="admin",
                             detail="dry run" if body.dry_run else "") as s:
        data = _file_bytes(body)
        units = await asyncio.to_thread(directory.read_directory, data, body.format, body.province)
        existing = {z.path: stored(z) for z in await s.scalars(select(Zone))}
        plan = directory.plan(units, existing)
        rows = _directory_rows(plan, existing, request.app.state.settings.zones.max_depth)
        if not body.dry_run:
            for c in plan.of("set_code"):
                (await s.get(Zone, c.path)).code = c.code  # type: ignore[union-attr]
            await s.flush()  # codes first: a created zone may not take one that is being set
            for row in rows:
                s.add(_row(row))
            await s.flush()
    return {"dry_run": body.dry_run, **plan.to_dict()}


def _directory_rows(plan: Any, existing: dict[str, zones.ZoneRow], max_depth: int) -> list[zones.ZoneRow]:
    """The zones a directory import creates, each checked as `zone add` checks one (its kind under
    its parent's, its code unique, its depth); ImportRefused with the directory's lines."""
    known = dict(existing)
    for c in plan.of("set_code"):
        known[c.path] = zones.ZoneRow(c.path, known[c.path].name, known[c.path].kind, c.code)
    rows, problems = [], []
    for c in plan.of("create"):
        try:
            row = zones.new_zone(c.path, c.name, c.kind, c.code, known, max_depth)
        except ValueError as e:
            problems.append(f"line {c.line}: {c.path}: {e}")
            continue
        known[row.path] = row
        rows.append(row)
    if problems:
        raise ImportRefused("directory import", problems)
    return rows


__all__ = ["ImportRefused", "router"]
