"""Media: ``GET /media/<id>[.<ext>]`` for speaker nodes, ``/api/v1/media`` for people.

Nodes fetch without a token: a media id is the sha256 of the file, so only
someone who has the file (or a command naming it) knows it. Files are immutable:
the id is the ETag, caching is forever, and HTTP Range requests let players seek.
Uploads are the raw audio as the request body (no multipart); operators and
admins add media, admins and the media's creator remove it; every write and
every refusal is audited (``media.add``, ``media.tts``, ``media.remove``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import ClientDisconnect

from netmgr.api import schemas
from netmgr.api.deps import audited_write, page, principal, record_audit, session
from netmgr.api.services import Svc
from netmgr.auth import Principal
from netmgr.errors import Forbidden, NotFound, TooLarge, UsageError
from netmgr.media.probe import FORMATS
from netmgr.media.store import CHUNK, Media, MediaStore, store_of, valid_id
from netmgr.refs import Text, Title
from netmgr.store.models import ProgramRow

log = logging.getLogger(__name__)
router = APIRouter()
Caller = Annotated[Principal, Depends(principal)]
Session = Annotated[AsyncSession, Depends(session)]
# Past the limit the rest of an upload is read and dropped (so the client sees the 413
# instead of a reset connection), up to this much; then the connection is closed.
DRAIN_MAX = 64 * 1024 * 1024
IMMUTABLE = "public, max-age=31536000, immutable"


def media_store(request: Request) -> MediaStore:
    """The daemon's media store (``{daemon.state_dir}/media``)."""
    return store_of(request.app.state.settings)


def media_out(request: Request, m: Media) -> dict[str, Any]:
    """The API's view of a media: its sidecar plus the URL nodes fetch it from."""
    api = request.app.state.settings.api
    base = api.public_url.rstrip("/") or str(request.base_url).rstrip("/")
    return m.to_dict() | {"url": f"{base}/media/{m.file_name}"}


async def _require_writer(request: Request, who: Principal, action: str, target: str, what: str) -> None:
    """Principal.require_writer, audited: media is not zoned, so audited_write's checks do not fit
    an upload that must be refused before its body is read."""
    try:
        who.require_writer(what)
    except Forbidden as e:
        await record_audit(request, who, action, target, None, "denied", str(e))
        raise


async def programs_using(s: AsyncSession, media_id: str) -> str:
    """The programs (not cancelled) that play ``media_id``, named with who scheduled them; ''
    when none does."""
    rows = await s.scalars(select(ProgramRow).where(ProgramRow.cancelled_at.is_(None)))
    users = [f"program {r.id} '{r.title}' (by {r.created_by})" for r in rows
             if (r.data.get("content") or {}).get("media_id") == media_id]
    if not users:
        return ""
    more = f" and {len(users) - 3} more" if len(users) > 3 else ""
    return ", ".join(users[:3]) + more


# ---------------------------------------------------------------------------- nodes


@router.get("/media/{name}", tags=["media"])
@router.head("/media/{name}", tags=["media"], include_in_schema=False)
async def fetch_media(name: str, request: Request) -> Response:
    """The audio of ``<id>`` or ``<id>.<ext>``: public, cacheable forever, with Range support."""
    media_id, _, ext = name.partition(".")
    m = media_store(request).get(media_id) if valid_id(media_id) and (not ext or ext in FORMATS) else None
    if m is None or (ext and ext != m.format):
        raise NotFound(f"media {name} not found")
    etag = f'"{m.id}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if etag in [t.strip().removeprefix("W/") for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    path = media_store(request).path(m)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"media {name} not found") from None
    return FileResponse(path, media_type=m.content_type, headers=headers, stat_result=st)


# ---------------------------------------------------------------------------- people


@router.get("/api/v1/media", tags=["media"])
async def list_media(request: Request, _: Caller) -> dict[str, Any]:
    """Every stored media, newest first."""
    items = await asyncio.to_thread(media_store(request).list)
    return page([media_out(request, m) for m in items])


@router.get("/api/v1/media/{media_id}", tags=["media"])
async def get_media(media_id: str, request: Request, _: Caller) -> dict[str, Any]:
    """One media by its full id."""
    m = media_store(request).get(media_id)
    if m is None:
        raise NotFound(f"media {media_id} not found (netmgr media list shows the ids)")
    return media_out(request, m)


@router.post("/api/v1/media", tags=["media"], status_code=201)
async def upload_media(request: Request, who: Caller, s: Session,
                       title: Annotated[str, Query(max_length=200)] = "",
                       filename: Annotated[str, Query(max_length=255)] = "") -> JSONResponse:
    """Add audio sent as the raw request body; 201 when new, 200 when those bytes were stored already.

    413 past ``[media] max_mb`` (nothing stored); 422 when it is not audio.
    """
    store = media_store(request)
    filename = os.path.basename(filename.replace("\\", "/"))
    name = filename or title or "upload"
    await _require_writer(request, who, "media.add", name, "add media")
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith(("multipart/", "application/x-www-form-urlencoded")):
        raise UsageError("send the audio as the raw request body (Content-Type: application/octet-stream), "
                         "not as a form")
    await s.rollback()  # hold no database connection while the body arrives
    try:
        tmp, digest, size = await _receive(request, store, name)
    except TooLarge as e:
        await record_audit(request, who, "media.add", name, None, "error", str(e))
        return JSONResponse({"error": str(e), "detail": None}, status_code=413)
    try:
        async with audited_write(request, who, "media.add", digest, None, check=None,
                                 detail=f"title={title!r} file={name!r} bytes={size}"):
            media, new = await asyncio.to_thread(store.put, tmp, title, who.name, filename=filename,
                                                 move=True, name=name)
    finally:
        tmp.unlink(missing_ok=True)
    return JSONResponse(media_out(request, media) | {"new": new}, status_code=201 if new else 200)


async def _receive(request: Request, store: MediaStore, name: str) -> tuple[Path, str, int]:
    """The body into a temporary file of the store: (path, sha256, size); TooLarge past the limit."""
    declared = request.headers.get("content-length", "")
    over = declared.isdigit() and int(declared) > store.max_bytes
    path, f = await asyncio.to_thread(store.temp_file)
    h = hashlib.sha256()
    size, buf, cut = 0, bytearray(), False
    try:
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if over or size > store.max_bytes:
                    over = True
                    if size > store.max_bytes + DRAIN_MAX:
                        cut = True  # not read to its end: its size is unknown
                        break
                    continue
                buf += chunk
                if len(buf) >= CHUNK:
                    await asyncio.to_thread(_write, f, h, bytes(buf))
                    buf.clear()
        except ClientDisconnect:
            raise UsageError(f"{name}: the upload was cut off after {size} bytes; nothing stored") from None
        if over:
            if declared.isdigit():
                store.check_size(max(size, int(declared)), name)
            store.check_size(size, name, at_least=cut)
        await asyncio.to_thread(_write, f, h, bytes(buf), True)
    except BaseException:
        f.close()
        path.unlink(missing_ok=True)
        raise
    return path, h.hexdigest(), size


def _write(f: BinaryIO, h: Any, data: bytes, last: bool = False) -> None:
    f.write(data)
    h.update(data)
    if last:
        f.flush()
        os.fsync(f.fileno())
        f.close()


class TtsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # the 5,000-character limit is checked after NFC normalisation, by netmgr.media.tts
    text: Annotated[Text, WithJsonSchema(schemas.TEXT_SCHEMA)] = Field(min_length=1)
    title: Title = ""
    voice: Literal["vi", "vi-vn-x-central", "vi-vn-x-south"] | None = None  # config.VOICES


@router.post("/api/v1/media/tts", tags=["media"], status_code=201)
async def speak(body: TtsIn, request: Request, who: Caller, s: Session) -> dict[str, Any]:
    """Speak ``text`` with espeak-ng into the store (the same text and voice: the same media)."""
    from netmgr.media.tts import synthesize

    target = body.title or " ".join(body.text.split())[:60] or "(empty text)"
    await _require_writer(request, who, "media.tts", target, "add media")
    await s.rollback()  # hold no database connection while espeak-ng speaks
    store = media_store(request)
    async with audited_write(request, who, "media.tts", target, None, check=None,
                             detail=f"chars={len(body.text)} voice={body.voice or store.tts_voice}"):
        media = await synthesize(store, body.text, body.voice, created_by=who.name, title=body.title)
    return media_out(request, media)


@router.delete("/api/v1/media/{media_id}", tags=["media"])
async def remove_media(media_id: str, request: Request, who: Caller, svc: Svc) -> dict[str, Any]:
    """Remove a media: admins, or the operator who added it; 409 while a broadcast still uses it."""
    store = media_store(request)
    async with audited_write(request, who, "media.remove", media_id, None, check=None) as w:
        m = store.get(media_id)
        if m is None:
            raise NotFound(f"media {media_id} not found (netmgr media list shows the ids)")
        if not (who.role == "admin" or (who.role == "operator" and m.created_by == who.name)):
            raise Forbidden(f"{who.role} '{who.name}' may not remove media {m.id[:12]} ({m.title}): only "
                            f"admins and the operator who added it ({m.created_by or 'unknown'}) may")
        used = await programs_using(w, m.id) or svc.media_in_use(m.id)
        await asyncio.to_thread(store.remove, m.id, lambda _: used)
    return {"removed": m.id, "title": m.title}
