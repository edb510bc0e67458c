"""Identify an agent: read its system group, run the candidate profiles' probes, pick a profile."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from netmgr.snmp.profiles import Profile, Profiles
from netmgr.snmp.types import OID, Tag, VarBind, parse_oid

SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_OBJECT_ID = (1, 3, 6, 1, 2, 1, 1, 2, 0)

Getter = Callable[[list[OID]], Awaitable[list[VarBind]]]


def text(vb: VarBind | None) -> str:
    if vb is None or vb.is_exception:
        return ""
    if vb.tag == Tag.OBJECT_IDENTIFIER and isinstance(vb.value, tuple):
        return ".".join(map(str, vb.value))
    if isinstance(vb.value, bytes):
        return vb.value.decode("utf-8", "replace")
    return "" if vb.value is None else str(vb.value)


async def identify(get: Getter, profiles: Profiles) -> tuple[Profile, str, str]:
    """(profile, sysObjectID, sysDescr) of the agent behind ``get`` (at most two GETs)."""
    descr_vb, oid_vb = await get([SYS_DESCR, SYS_OBJECT_ID])
    sys_oid, sys_descr = text(oid_vb), text(descr_vb)
    probes = profiles.probes(sys_oid, sys_descr)
    values: dict[str, str] = {}
    if probes:
        vbs = await get([parse_oid(p) for p in probes])
        values = {p: text(vb) for p, vb in zip(probes, vbs, strict=True)}
    return profiles.match(sys_oid, sys_descr, values), sys_oid, sys_descr
