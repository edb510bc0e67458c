"""Request plumbing shared by the routes: sessions, the caller, audited writes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import false, or_, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from netmgr.auth import Principal, authenticate, principal_of
from netmgr.errors import Conflict, Forbidden, NetmgrError, Unauthorized
from netmgr.store.models import AuditEntry

log = logging.getLogger(__name__)


def sessions_of(request: Request) -> async_sessionmaker[AsyncSession]:
    return request.app.state.sessions


def remote_of(request: Request) -> str:
    return request.client.host if request.client else ""


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's one session: FastAPI caches this dependency per request, so the
    token check, the reads and the write (audited_write) all share it."""
    async with sessions_of(request)() as s:
        request.state.db = s
        try:
            yield s
        finally:
            request.state.db = None


async def _rollback(s: AsyncSession) -> None:
    try:
        await s.rollback()
    except Exception:
        log.warning("rollback failed", exc_info=True)


async def record_audit(request: Request, who: Principal | None, action: str, target: str,
                       zone: str | None, outcome: str, detail: str = "") -> None:
    """Write one audit entry in its own transaction (it must outlive a rolled-back write).

    On the request's session, whatever it holds uncommitted is rolled back first,
    so a refused write can never be committed along with its audit entry.
    """
    entry = AuditEntry(actor=who.name if who else "(anonymous)", role=who.role if who else "",
                       action=action, target=target[:255], zone=zone, outcome=outcome,
                       detail=detail[:2000], remote=remote_of(request))
    try:
        shared = getattr(request.state, "db", None)
        if shared is not None:
            await _rollback(shared)
            shared.add(entry)
            await shared.commit()
        else:
            async with sessions_of(request)() as s:
                s.add(entry)
                await s.commit()
    except Exception:
        log.exception("audit write failed action=%s target=%s outcome=%s", action, target, outcome)


async def principal(request: Request, s: Annotated[AsyncSession, Depends(session)]) -> Principal:
    """The caller, from ``Authorization: Bearer <token>``; 401 otherwise (audited on writes)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    writing = request.method not in ("GET", "HEAD", "OPTIONS")
    if scheme.lower() != "bearer" or not token.strip():
        if writing:  # every refused write is in the audit log, with or without a token
            await record_audit(request, None, f"{request.method} {request.url.path}", "", None,
                               "denied", "missing bearer token")
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>' "
                           "(netmgr login, or NETMGR_TOKEN)")
    user = await authenticate(s, token.strip())
    if user is None:
        if writing:
            await record_audit(request, None, f"{request.method} {request.url.path}", "", None,
                               "denied", "invalid or disabled token")
        raise Unauthorized("invalid or disabled token")
    return principal_of(user, remote_of(request))


@contextlib.asynccontextmanager
async def audited_write(request: Request, who: Principal, action: str, target: str,
                        zone: str | None, *, check: str | None = "zone",
                        detail: str = "") -> AsyncIterator[AsyncSession]:
    """One write: authorize, run it in one transaction, audit it either way.

    ``check="zone"`` requires write permission in ``zone``; ``"admin"`` requires an
    admin; ``"writer"`` an admin or an operator (the zones are checked inside); None
    leaves authorization to the caller (inside the block). A refusal is audited
    in its own transaction as ``denied``; a failed write as ``error``; a
    successful one as ``ok`` in the write's own transaction, so the log and the
    data cannot disagree. The block gets the request's session (or a new one when
    called outside a request's dependencies); a block that learns the zone the write
    affects only once it has read the store sets ``session.info["audit_zone"]``, so
    the entry carries it and the commune's operator sees it in their audit view.
    """
    try:
        if check == "zone":
            who.require_write(zone, action)
        elif check == "admin":
            who.require_admin(action)
        elif check == "writer":
            who.require_writer(action)
    except Forbidden as e:
        await record_audit(request, who, action, target, getattr(e, "zone", None) or zone, "denied", str(e))
        raise
    shared = getattr(request.state, "db", None)
    async with contextlib.AsyncExitStack() as stack:
        s = shared if shared is not None else await stack.enter_async_context(sessions_of(request)())
        s.info.pop("audit_zone", None)
        try:
            yield s
            zone = s.info.pop("audit_zone", zone)
            s.add(AuditEntry(actor=who.name, role=who.role, action=action, target=target[:255],
                             zone=zone, outcome="ok", detail=detail[:2000], remote=remote_of(request)))
            await s.commit()
        except Forbidden as e:
            zone = getattr(e, "zone", None) or s.info.pop("audit_zone", zone)
            await _rollback(s)
            await record_audit(request, who, action, target, zone, "denied", str(e))
            raise
        except IntegrityError as e:
            zone = s.info.pop("audit_zone", zone)
            await _rollback(s)
            msg = f"{action} {target}: conflicts with what is stored (duplicate or in use)"
            await record_audit(request, who, action, target, zone, "error", msg)
            raise Conflict(msg) from e
        except NetmgrError as e:
            zone = s.info.pop("audit_zone", zone)
            await _rollback(s)
            await record_audit(request, who, action, target, zone, "error", str(e))
            raise
        except Exception as e:
            # Unexpected (a store outage, a bug): still audited, then a 500 from the app's handler.
            zone = s.info.pop("audit_zone", zone)
            await _rollback(s)
            await record_audit(request, who, action, target, zone, "error", f"{type(e).__name__}: {e}")
            raise


def zone_filter(column: Any, zone: str | None) -> Any:
    """The SQL condition "``column`` is ``zone`` or below it" (no condition without a zone)."""
    return or_(column == zone, column.startswith(zone + "/")) if zone else true()


def readable(who: Principal, column: Any) -> Any:
    """The SQL condition restricting ``column`` (a zone path) to what ``who`` may read: every
    list query of a zoned table goes through it before anything reaches the caller (as
    NetBox's ``.restrict(user, 'view')``). True for admins and viewers."""
    if who.role != "operator":
        return true()
    return or_(false(), *[zone_filter(column, z) for z in who.zones])


def page(items: list[Any]) -> dict[str, Any]:
    return {"items": items, "count": len(items)}
