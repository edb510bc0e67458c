"""SNMPv3 (USM: authNoPriv, authPriv with SHA/SHA-256 and AES) through pysnmp 7.

v3 is the minority of APs and needs the USM engine; pysnmp does it right, so
the lean codec does not try. Values are converted to our VarBind.
"""

from __future__ import annotations

from typing import Any

from netmgr.errors import SnmpBadResponse, SnmpTimeout
from netmgr.snmp import ber
from netmgr.snmp.types import OID, Tag, VarBind

_AUTH = {"SHA": "usmHMACSHAAuthProtocol", "SHA256": "usmHMAC192SHA256AuthProtocol",
         "MD5": "usmHMACMD5AuthProtocol", None: "usmNoAuthProtocol"}
_PRIV = {"AES": "usmAesCfb128Protocol", "AES256": "usmAesCfb256Protocol", "DES": "usmDESPrivProtocol",
         None: "usmNoPrivProtocol"}
_EXC = {"NoSuchObject": Tag.NO_SUCH_OBJECT, "NoSuchInstance": Tag.NO_SUCH_INSTANCE,
        "EndOfMibView": Tag.END_OF_MIB_VIEW}
_TAGS = {"Integer32": Tag.INTEGER, "Integer": Tag.INTEGER, "OctetString": Tag.OCTET_STRING,
         "ObjectIdentifier": Tag.OBJECT_IDENTIFIER, "IpAddress": Tag.IP_ADDRESS, "Counter32": Tag.COUNTER32,
         "Gauge32": Tag.GAUGE32, "Unsigned32": Tag.GAUGE32, "TimeTicks": Tag.TIMETICKS,
         "Opaque": Tag.OPAQUE, "Counter64": Tag.COUNTER64, "Null": Tag.NULL}


def to_varbind(name: Any, val: Any) -> VarBind:
    oid = tuple(name)
    cls = type(val).__name__
    if cls in _EXC:
        return VarBind(oid, _EXC[cls], None)
    tag = _TAGS.get(cls)
    if tag is None:
        for base in type(val).__mro__:
            if base.__name__ in _TAGS:
                tag = _TAGS[base.__name__]
                break
    if tag is None:
        raise SnmpBadResponse("v3", f"unsupported value type {cls}")
    if tag in (Tag.OCTET_STRING, Tag.IP_ADDRESS, Tag.OPAQUE):
        value: Any = bytes(val.asOctets())
    elif tag == Tag.OBJECT_IDENTIFIER:
        value = tuple(val)
    elif tag == Tag.NULL:
        value = None
    else:
        value = int(val)
    return VarBind(oid, tag, value)


class V3Engine:
    """One pysnmp engine for all v3 targets; transports cached per address."""

    def __init__(self) -> None:
        from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

        self.engine = SnmpEngine()
        self._targets: dict[tuple[str, int, float, int], Any] = {}

    def close(self) -> None:
        self.engine.close_dispatcher()

    async def _transport(self, t: Any) -> Any:
        from pysnmp.hlapi.v3arch.asyncio import UdpTransportTarget

        key = (t.host, t.port, t.timeout, t.retries)
        tr = self._targets.get(key)
        if tr is None:
            tr = await UdpTransportTarget.create((t.host, t.port), timeout=t.timeout, retries=t.retries)
            self._targets[key] = tr
        return tr

    def _user(self, t: Any) -> Any:
        from pysnmp.hlapi.v3arch import asyncio as hl

        return hl.UsmUserData(
            t.v3_user, authKey=t.auth_key, privKey=t.priv_key,
            authProtocol=getattr(hl, _AUTH[t.auth_proto if t.auth_key else None]),
            privProtocol=getattr(hl, _PRIV[t.priv_proto if t.priv_key else None]),
        )

    async def request(self, t: Any, pdu: int, oids: list[OID], nr: int, mr: int) -> list[VarBind]:
        from pysnmp.hlapi.v3arch import asyncio as hl

        objs = [hl.ObjectType(hl.ObjectIdentity(".".join(map(str, o)))) for o in oids]
        args = (self.engine, self._user(t), await self._transport(t), hl.ContextData())
        if pdu == ber.GET:
            res = await hl.get_cmd(*args, *objs, lookupMib=False)
        elif pdu == ber.GETNEXT:
            res = await hl.next_cmd(*args, *objs, lookupMib=False)
        else:
            res = await hl.bulk_cmd(*args, nr, mr, *objs, lookupMib=False)
        err_ind, err_status, err_index, vbs = res
        if err_ind:
            text = str(err_ind)
            if "timeout" in text.lower() or "No SNMP response" in text:
                raise SnmpTimeout(t.label, t.timeout, t.retries)
            raise SnmpBadResponse(t.label, f"SNMPv3: {text}")
        if err_status:
            status = err_status.prettyPrint()
            err = SnmpBadResponse(t.label, f"agent answered {status} (error-index {err_index})")
            err.error_status = int(err_status)  # type: ignore[attr-defined]
            raise err
        return [to_varbind(name, val) for name, val in vbs]
