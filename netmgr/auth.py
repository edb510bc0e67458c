"""Users, tokens, roles and zone scopes.

Roles: ``admin`` (everything), ``operator`` (writes only inside their zones'
subtrees), ``viewer`` (read only). Emergency broadcasts also need the user's
``can_emergency`` flag. Tokens are ``nmt_`` + 256 random bits, shown once and
stored only as their SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from netmgr.errors import Conflict, Forbidden, MissingReference, UsageError
from netmgr.store.models import AuditEntry, User, UserZone, Zone
from netmgr.zones import is_within, overlaps

ROLES = ("admin", "operator", "viewer")
WRITERS = ("admin", "operator")  # the roles that may write somewhere
TOKEN_PREFIX = "nmt_"  # noqa: S105 - a prefix, not a secret
USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def new_token() -> str:
    """A fresh bearer token: ``nmt_`` + 256 random bits (URL-safe base64)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The SHA-256 hex digest of ``token``: all the store ever keeps of it."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the API user behind a token (or a local CLI user)."""

    name: str
    role: str
    zones: tuple[str, ...] = ()
    can_emergency: bool = False
    user_id: int | None = None
    remote: str = field(default="", compare=False)

    def may_write(self, zone: str | None) -> bool:
        """Admins everywhere; operators only in their zones' subtrees; viewers nowhere."""
        if self.role == "admin":
            return True
        if self.role != "operator" or zone is None:
            return False
        return any(is_within(zone, z) for z in self.zones)

    def may_read(self, zone: str | None) -> bool:
        """Admins and viewers (the NOC) read everything; operators what is in their zones'
        subtrees (docs/architecture.md, "Who may read what")."""
        if self.role != "operator":
            return True
        return zone is not None and any(is_within(zone, z) for z in self.zones)

    def may_read_overlapping(self, zone: str | None) -> bool:
        """For what reaches a whole subtree (a program, a zone command): an operator reads it when
        it is inside their zones or covers them (a province-wide program plays in their commune)."""
        if self.role != "operator":
            return True
        return zone is not None and any(overlaps(zone, z) for z in self.zones)

    def require_write(self, zone: str | None, what: str = "write") -> None:
        """Raise Forbidden naming the zone unless this principal may write there."""
        if self.may_write(zone):
            return
        if self.role == "viewer":
            e = Forbidden(f"{self.role} '{self.name}' may not {what}: viewers have read-only access")
        elif zone is None:
            e = Forbidden(f"{self.role} '{self.name}' may not {what}: only admins may")
        else:
            scope = ", ".join(self.zones) or "(none)"
            e = Forbidden(f"{self.role} '{self.name}' may not {what} in zone {zone}: "
                          f"outside their zones {scope}")
        e.zone = zone  # type: ignore[attr-defined] - lets the audit log record where it was refused
        raise e

    def require_writer(self, what: str) -> None:
        """Raise Forbidden unless this principal may write somewhere (an admin or an operator):
        checked before a request's body is parsed, so a viewer's import costs nothing."""
        if self.role not in WRITERS:
            e = Forbidden(f"{self.role} '{self.name}' may not {what}: only operators and admins may")
            e.zone = None  # type: ignore[attr-defined]
            raise e

    def require_admin(self, what: str) -> None:
        """Raise Forbidden unless this principal is an admin."""
        if self.role != "admin":
            raise Forbidden(f"{self.role} '{self.name}' may not {what}: only admins may")

    def require_emergency(self) -> None:
        """Raise Forbidden unless this principal may send emergency broadcasts."""
        if not (self.role == "admin" or self.can_emergency):
            raise Forbidden(f"{self.role} '{self.name}' may not send emergency broadcasts: "
                            "ask an admin for the emergency permission (netmgr user add --emergency)")


def principal_of(user: User, remote: str = "") -> Principal:
    """The Principal of a stored user."""
    return Principal(user.name, user.role, tuple(user.zones), user.can_emergency, user.id, remote)


async def create_user(session: AsyncSession, name: str, role: str, zones: list[str],
                      can_emergency: bool = False, actor: str = "local",
                      audit: bool = True) -> tuple[User, str]:
    """Create a user and return it with its token (the only time the token exists in clear).

    The caller commits. With ``audit`` (local CLI use) the creation is audited as
    ``user.add`` by ``actor`` in the same transaction; the API passes False because
    its audited_write records the write itself.
    """
    if not USER_NAME.match(name):
        raise UsageError(f"user name {name!r}: use 1-64 lowercase letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise UsageError(f"role {role!r}: use one of {', '.join(ROLES)}")
    if role == "operator" and not zones:
        raise UsageError(f"operator {name!r} needs at least one --zone: operators write only in their zones")
    if role != "operator" and zones:
        raise UsageError(f"--zone applies to operators only; {role}s are not scoped")
    if await session.scalar(select(User).where(User.name == name)) is not None:
        raise Conflict(f"user {name!r} exists; pick another name or disable the old user")
    for z in zones:
        if await session.get(Zone, z) is None:
            raise MissingReference(f"zone {z} does not exist; create it first (netmgr zone add)")
    token = new_token()
    user = User(name=name, role=role, token_hash=hash_token(token), can_emergency=can_emergency,
                scopes=[UserZone(zone=z) for z in zones])
    session.add(user)
    if audit:
        # A local actor is whoever owns the state store: in effect an admin.
        session.add(AuditEntry(actor=actor, role="admin", action="user.add", target=name, zone=None,
                               outcome="ok", detail=user_detail(role, zones, can_emergency)))
    await session.flush()
    return user, token


def user_detail(role: str, zones: list[str], can_emergency: bool) -> str:
    """The audit detail of a user creation."""
    return f"role={role} zones={','.join(zones)} emergency={can_emergency}"


async def authenticate(session: AsyncSession, token: str) -> User | None:
    """The enabled user holding ``token``, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    user = await session.scalar(select(User).where(User.token_hash == digest))
    if user is None or user.disabled or not hmac.compare_digest(user.token_hash, digest):
        return None
    return user
