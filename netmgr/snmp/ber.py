"""A lean BER codec for the SNMPv2c hot path: GET/GETNEXT/GETBULK requests, Response PDUs.

pysnmp stays the reference (tests compare byte for byte) and does SNMPv3. This
module exists because the poller must decode ~10,000 AP responses a minute on
one core: it works on bytes with integer offsets, caches encoded and decoded
OIDs, and builds no objects besides the VarBinds it returns.

Every malformed input raises :class:`DecodeError` (a ValueError) with a short
reason; decoding is bounded (no recursion, lengths checked against the buffer).
"""

from __future__ import annotations

from dataclasses import dataclass

from netmgr.errors import DecodeError
from netmgr.snmp.types import OID, Tag, VarBind

SEQUENCE = 0x30
GET, GETNEXT, RESPONSE, SET, GETBULK, INFORM, TRAP2, REPORT = 0xA0, 0xA1, 0xA2, 0xA3, 0xA5, 0xA6, 0xA7, 0xA8
V1, V2C = 0, 1

MAX_OID_ARCS = 128
_UNSIGNED32 = (Tag.COUNTER32, Tag.GAUGE32, Tag.TIMETICKS)
_NULL_VB = b"\x05\x00"


# ------------------------------------------------------------------ encoding


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(b),)) + b


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _len(len(body)) + body


def _int(v: int) -> bytes:
    n = (v + (v < 0)).bit_length() // 8 + 1
    return _tlv(0x02, v.to_bytes(n, "big", signed=True))


def _arc(a: int) -> bytes:
    if a < 0x80:
        return bytes((a,))
    out = [a & 0x7F]
    a >>= 7
    while a:
        out.append(0x80 | (a & 0x7F))
        a >>= 7
    return bytes(reversed(out))


_oid_cache: dict[OID, bytes] = {}


def encode_oid(oid: OID) -> bytes:
    """The OID's full TLV (cached: the poller asks for the same OIDs again and again)."""
    enc = _oid_cache.get(oid)
    if enc is None:
        if len(oid) < 2 or oid[0] > 2 or (oid[0] < 2 and oid[1] >= 40):
            raise ValueError(f"cannot encode OID {'.'.join(map(str, oid))}")
        body = _arc(oid[0] * 40 + oid[1]) + b"".join(_arc(a) for a in oid[2:])
        enc = _tlv(0x06, body)
        if len(_oid_cache) < 100_000:
            _oid_cache[oid] = enc
    return enc


def encode_request(pdu_type: int, request_id: int, community: bytes, oids: list[OID] | tuple[OID, ...],
                   non_repeaters: int = 0, max_repetitions: int = 0, version: int = V2C) -> bytes:
    """A GET/GETNEXT/GETBULK message. For GETBULK the two ints are non-repeaters and max-repetitions."""
    vbs = b"".join(_tlv(SEQUENCE, encode_oid(o) + _NULL_VB) for o in oids)
    pdu = _int(request_id) + _int(non_repeaters) + _int(max_repetitions) + _tlv(SEQUENCE, vbs)
    return _tlv(SEQUENCE, _int(version) + _tlv(0x04, community) + _tlv(pdu_type, pdu))


def encode_response(request_id: int, community: bytes, varbinds: list[VarBind], error_status: int = 0,
                    error_index: int = 0, version: int = V2C) -> bytes:
    """A Response PDU (used by the simulated agents and the tests)."""
    out = []
    for vb in varbinds:
        out.append(_tlv(SEQUENCE, encode_oid(vb.oid) + encode_value(vb.tag, vb.value)))
    pdu = _int(request_id) + _int(error_status) + _int(error_index) + _tlv(SEQUENCE, b"".join(out))
    return _tlv(SEQUENCE, _int(version) + _tlv(0x04, community) + _tlv(RESPONSE, pdu))


def encode_value(tag: int, value: int | bytes | OID | None) -> bytes:
    if tag == Tag.INTEGER:
        return _int(int(value))  # type: ignore[arg-type]
    if tag in (Tag.COUNTER32, Tag.GAUGE32, Tag.TIMETICKS, Tag.COUNTER64):
        v = int(value)  # type: ignore[arg-type]
        return _tlv(tag, v.to_bytes(v.bit_length() // 8 + 1, "big"))
    if tag in (Tag.OCTET_STRING, Tag.IP_ADDRESS, Tag.OPAQUE):
        return _tlv(tag, bytes(value))  # type: ignore[arg-type]
    if tag == Tag.OBJECT_IDENTIFIER:
        return encode_oid(value)  # type: ignore[arg-type]
    if tag in (Tag.NULL, Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE, Tag.END_OF_MIB_VIEW):
        return bytes((tag, 0))
    raise ValueError(f"cannot encode tag 0x{tag:02x}")


# ------------------------------------------------------------------ decoding


def _read_len(buf: bytes, i: int, end: int) -> tuple[int, int]:
    """(length, offset of the content) of the TLV whose length octets start at ``i``."""
    if i >= end:
        raise DecodeError("truncated length")
    b = buf[i]
    if b < 0x80:
        n, i = b, i + 1
    elif b == 0x80:
        raise DecodeError("indefinite length is not allowed in SNMP")
    else:
        k = b & 0x7F
        if k > 4 or i + 1 + k > end:
            raise DecodeError("bad long-form length")
        n = int.from_bytes(buf[i + 1 : i + 1 + k], "big")
        i += 1 + k
    if i + n > end:
        raise DecodeError("length runs past the end of the message")
    return n, i


def _expect(buf: bytes, i: int, end: int, tag: int, what: str) -> tuple[int, int]:
    if i >= end:
        raise DecodeError(f"truncated before {what}")
    if buf[i] != tag:
        raise DecodeError(f"expected {what} (tag 0x{tag:02x}), got tag 0x{buf[i]:02x}")
    n, j = _read_len(buf, i + 1, end)
    return j, j + n


def _read_int(buf: bytes, i: int, end: int, what: str) -> tuple[int, int]:
    s, e = _expect(buf, i, end, 0x02, what)
    if s == e or e - s > 9:
        raise DecodeError(f"bad INTEGER length for {what}")
    return int.from_bytes(buf[s:e], "big", signed=True), e


_oid_decode_cache: dict[bytes, OID] = {}


def decode_oid_body(body: bytes) -> OID:
    oid = _oid_decode_cache.get(body)
    if oid is not None:
        return oid
    if not body:
        raise DecodeError("empty OID")
    if body[-1] & 0x80:
        raise DecodeError("OID ends inside an arc")
    arcs: list[int] = []
    a = 0
    start = True
    for b in body:
        if start and b == 0x80:
            raise DecodeError("OID arc with a leading 0x80 (not minimal)")
        a = (a << 7) | (b & 0x7F)
        start = not (b & 0x80)
        if start:
            arcs.append(a)
            a = 0
    first = arcs[0]
    if first < 80:
        arcs[0:1] = [first // 40, first % 40]
    else:
        arcs[0:1] = [2, first - 80]
    if len(arcs) > MAX_OID_ARCS:
        raise DecodeError(f"OID longer than {MAX_OID_ARCS} arcs")
    oid = tuple(arcs)
    if len(_oid_decode_cache) < 200_000:
        _oid_decode_cache[bytes(body)] = oid
    return oid


@dataclass(slots=True)
class Response:
    """A decoded Response PDU."""

    version: int
    community: bytes
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[VarBind]


def peek_request_id(buf: bytes) -> int:
    """The request-id of a v1/v2c message, without decoding the rest."""
    end = len(buf)
    s, e = _expect(buf, 0, end, SEQUENCE, "message")
    _, i = _read_int(buf, s, e, "version")
    _, i = _expect(buf, i, e, 0x04, "community")
    if i >= e:
        raise DecodeError("truncated before PDU")
    _, j = _read_len(buf, i + 1, e)
    rid, _ = _read_int(buf, j, e, "request-id")
    return rid


def decode_response(buf: bytes) -> Response:
    """Decode a v1/v2c Response; any other PDU or malformed byte raises DecodeError."""
    end = len(buf)
    s, e = _expect(buf, 0, end, SEQUENCE, "message")
    if e != end:
        raise DecodeError("trailing bytes after the message")
    version, i = _read_int(buf, s, e, "version")
    if version not in (V1, V2C):
        raise DecodeError(f"unsupported SNMP version {version}")
    cs, ce = _expect(buf, i, e, 0x04, "community")
    community = bytes(buf[cs:ce])
    if ce >= e:
        raise DecodeError("truncated before PDU")
    pdu_tag = buf[ce]
    if pdu_tag != RESPONSE:
        names = {REPORT: "Report", TRAP2: "Trap", GET: "GetRequest", INFORM: "Inform"}
        raise DecodeError(f"expected a Response PDU, got {names.get(pdu_tag, hex(pdu_tag))}")
    plen, ps = _read_len(buf, ce + 1, e)
    pe = ps + plen
    if pe != e:
        raise DecodeError("PDU length does not match the message")
    rid, i = _read_int(buf, ps, pe, "request-id")
    status, i = _read_int(buf, i, pe, "error-status")
    index, i = _read_int(buf, i, pe, "error-index")
    if not -(2**31) <= rid < 2**31:
        raise DecodeError("request-id out of range")
    if not 0 <= status <= 18:
        raise DecodeError(f"error-status {status} out of range 0..18")
    if not 0 <= index < 2**31:
        raise DecodeError(f"error-index {index} out of range")
    vs, ve = _expect(buf, i, pe, SEQUENCE, "varbind list")
    if ve != pe:
        raise DecodeError("bytes after the varbind list")
    return Response(version, community, rid, status, index, _decode_varbinds(buf, vs, ve))


def _decode_varbinds(buf: bytes, i: int, end: int) -> list[VarBind]:
    out: list[VarBind] = []
    append = out.append
    while i < end:
        if buf[i] != SEQUENCE:
            raise DecodeError(f"expected a varbind, got tag 0x{buf[i]:02x}")
        n, s = _read_len(buf, i + 1, end)
        vend = s + n
        if s >= vend or buf[s] != 0x06:
            raise DecodeError("varbind without an OID")
        olen, os_ = _read_len(buf, s + 1, vend)
        oid = decode_oid_body(buf[os_ : os_ + olen])
        j = os_ + olen
        if j >= vend:
            raise DecodeError("varbind without a value")
        tag = buf[j]
        vlen, vs = _read_len(buf, j + 1, vend)
        if vs + vlen != vend:
            raise DecodeError("bytes after a varbind's value")
        raw = buf[vs:vend]
        value: int | bytes | OID | None
        if tag == 0x04:
            value = bytes(raw)
        elif tag in (0x41, 0x42, 0x43):
            if not 0 < vlen <= 5:
                raise DecodeError(f"bad length {vlen} for a 32-bit unsigned value")
            value = int.from_bytes(raw, "big")
            if raw[0] & 0x80:
                # Negative on the wire: some agents (old net-snmp, several AP firmwares)
                # encode Gauge32/Counter32 as signed. Take the two's-complement 32-bit value.
                value = int.from_bytes(raw, "big", signed=True) & 0xFFFFFFFF
            elif value > 0xFFFFFFFF:
                raise DecodeError("32-bit unsigned value out of range")
        elif tag == 0x02:
            if not 0 < vlen <= 5:
                raise DecodeError(f"bad INTEGER length {vlen}")
            value = int.from_bytes(raw, "big", signed=True)
            if not -(2**31) <= value < 2**31:
                raise DecodeError("INTEGER out of the Integer32 range")
        elif tag == 0x46:
            if not 0 < vlen <= 9:
                raise DecodeError(f"bad Counter64 length {vlen}")
            value = int.from_bytes(raw, "big")
            if value > 0xFFFFFFFFFFFFFFFF:
                raise DecodeError("Counter64 out of range")
        elif tag == 0x06:
            value = decode_oid_body(raw)
        elif tag == 0x40:
            if vlen != 4:
                raise DecodeError("IpAddress must be 4 bytes")
            value = bytes(raw)
        elif tag == 0x44:
            value = bytes(raw)
        elif tag in (0x05, 0x80, 0x81, 0x82):
            if vlen:
                raise DecodeError("NULL/exception value with content")
            value = None
        else:
            raise DecodeError(f"unknown value tag 0x{tag:02x}")
        append(VarBind(oid, tag, value))
        i = vend
    return out
