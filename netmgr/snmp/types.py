"""Plain SNMP value types shared by the codec, the pysnmp path and the profile evaluator.

OIDs are tuples of ints (they sort the way SNMP orders them). A varbind keeps
the BER tag of its value so counters, gauges and exceptions stay distinct.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

OID = tuple[int, ...]


class Tag(IntEnum):
    """BER tags of SNMPv2 values (RFC 3416, SNMPv2-SMI)."""

    INTEGER = 0x02
    OCTET_STRING = 0x04
    NULL = 0x05
    OBJECT_IDENTIFIER = 0x06
    IP_ADDRESS = 0x40
    COUNTER32 = 0x41
    GAUGE32 = 0x42
    TIMETICKS = 0x43
    OPAQUE = 0x44
    COUNTER64 = 0x46
    NO_SUCH_OBJECT = 0x80
    NO_SUCH_INSTANCE = 0x81
    END_OF_MIB_VIEW = 0x82


EXCEPTION_TAGS = frozenset({Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE, Tag.END_OF_MIB_VIEW})


@dataclass(slots=True, frozen=True)
class VarBind:
    """One OID and its value: int for numbers, bytes for strings and IpAddress,
    an OID tuple for OBJECT IDENTIFIER, None for NULL and the exception values."""

    oid: OID
    tag: int
    value: int | bytes | OID | None

    @property
    def is_exception(self) -> bool:
        return self.tag in EXCEPTION_TAGS


def parse_oid(text: str) -> OID:
    """``"1.3.6.1.2.1.1.3.0"`` (a leading dot allowed) to a tuple; ValueError on bad input."""
    s = text.strip().lstrip(".")
    if not s:
        raise ValueError("empty OID")
    try:
        parts = tuple(int(p) for p in s.split("."))
    except ValueError:
        raise ValueError(f"not a numeric OID: {text!r}") from None
    if any(p < 0 for p in parts):
        raise ValueError(f"negative arc in OID {text!r}")
    return parts


def oid_str(oid: OID) -> str:
    return ".".join(map(str, oid))
