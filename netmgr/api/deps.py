"""Request plumbing shared by the routes: sessions, the caller, audited writes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from netmgr.auth import Principal, authenticate, principal_of
from netmgr.errors import Conflict, Forbidden, NetmgrError
from netmgr.store.models import AuditEntry

log = logging.getLogger("netmgr.api")


class Unauthorized(NetmgrError):
    """No token, or a token that is unknown or disabled (HTTP 401)."""


def sessions_of(request: Request) -> async_sessionmaker[AsyncSession]:
    return request.app.state.sessions


def remote_of(request: Request) -> str:
    return request.client.host if request.client else ""


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    async with sessions_of(request)() as s:
        yield s


async def record_audit(request: Request, who: Principal | None, action: str, target: str,
                       zone: str | None, outcome: str, detail: str = "") -> None:
    """Write one audit entry in its own transaction (it must outlive a rolled-back write)."""
    try:
        async with sessions_of(request)() as s:
            s.add(AuditEntry(actor=who.name if who else "(anonymous)", role=who.role if who else "",
                             action=action, target=target[:255], zone=zone, outcome=outcome,
                             detail=detail[:2000], remote=remote_of(request)))
            await s.commit()
    except Exception:
        log.exception("audit write failed action=%s target=%s outcome=%s", action, target, outcome)


async def principal(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer <token>``; 401 otherwise (audited on writes)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>' "
                           "(netmgr login, or NETMGR_TOKEN)")
    async with sessions_of(request)() as s:
        user = await authenticate(s, token.strip())
    if user is None:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
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
    admin; None leaves authorization to the caller (inside the block). A refusal is
    audited in its own transaction as ``denied``; a failed write as ``error``; a
    successful one as ``ok`` in the write's own transaction, so the log and the
    data cannot disagree.
    """
    try:
        if check == "zone":
            who.require_write(zone, action)
        elif check == "admin":
            who.require_admin(action)
    except Forbidden as e:
        await record_audit(request, who, action, target, zone, "denied", str(e))
        raise
    async with sessions_of(request)() as s:
        try:
            yield s
            s.add(AuditEntry(actor=who.name, role=who.role, action=action, target=target[:255],
                             zone=zone, outcome="ok", detail=detail[:2000], remote=remote_of(request)))
            await s.commit()
        except Forbidden as e:
            await s.rollback()
            await record_audit(request, who, action, target, zone, "denied", str(e))
            raise
        except IntegrityError as e:
            await s.rollback()
            msg = f"{action} {target}: conflicts with what is stored (duplicate or in use)"
            await record_audit(request, who, action, target, zone, "error", msg)
            raise Conflict(msg) from e
        except NetmgrError as e:
            await s.rollback()
            await record_audit(request, who, action, target, zone, "error", str(e))
            raise


def page(items: list[Any]) -> dict[str, Any]:
    return {"items": items, "count": len(items)}
