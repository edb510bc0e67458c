"""snmpsim recordings (``OID|TYPE|VALUE`` lines) and a small agent that serves them.

The agent answers GET, GETNEXT and GETBULK from a sorted recording, in memory
(for tests of the profiles) or over UDP (``UdpAgent``: the demo's AP fleet, one
port for many devices, community = recording name, like snmpsim). Real snmpsim
serves the same files in the integration tests and the benchmark.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from pathlib import Path

from netmgr.errors import RecordingError
from netmgr.snmp import ber
from netmgr.snmp.types import OID, Tag, VarBind, parse_oid

log = logging.getLogger(__name__)
TYPES = {2: Tag.INTEGER, 4: Tag.OCTET_STRING, 5: Tag.NULL, 6: Tag.OBJECT_IDENTIFIER, 64: Tag.IP_ADDRESS,
         65: Tag.COUNTER32, 66: Tag.GAUGE32, 67: Tag.TIMETICKS, 68: Tag.OPAQUE, 70: Tag.COUNTER64}


def parse_line(line: str, where: str) -> VarBind:
    try:
        oid_s, type_s, value = line.split("|", 2)
    except ValueError:
        raise RecordingError(f"{where}: expected OID|TYPE|VALUE") from None
    hexed = type_s.endswith("x")
    try:
        tag = TYPES[int(type_s.rstrip("x"))]
    except (ValueError, KeyError):
        raise RecordingError(f"{where}: unsupported type {type_s!r}") from None
    try:
        oid = parse_oid(oid_s)
        v: int | bytes | OID | None
        if tag in (Tag.OCTET_STRING, Tag.OPAQUE):
            v = bytes.fromhex(value) if hexed else value.encode()
        elif tag == Tag.IP_ADDRESS:
            v = bytes.fromhex(value) if hexed else bytes(int(x) for x in value.split("."))
            if len(v) != 4:
                raise ValueError("IpAddress needs 4 bytes")
        elif tag == Tag.OBJECT_IDENTIFIER:
            v = parse_oid(value)
        elif tag == Tag.NULL:
            v = None
        else:
            v = int(value)
    except ValueError as e:
        raise RecordingError(f"{where}: {e}") from None
    return VarBind(oid, tag, v)


def load(path: Path) -> list[VarBind]:
    """A recording's varbinds sorted by OID; errors name the file and line."""
    out = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        out.append(parse_line(line, f"{path.name}:{n}"))
    out.sort(key=lambda vb: vb.oid)
    return out


class Agent:
    """GET/GETNEXT/GETBULK semantics over one sorted recording."""

    def __init__(self, varbinds: list[VarBind]) -> None:
        self.vbs = varbinds
        self.oids = [vb.oid for vb in varbinds]
        self.by_oid = {vb.oid: vb for vb in varbinds}

    def get(self, oid: OID) -> VarBind:
        vb = self.by_oid.get(oid)
        if vb is not None:
            return vb
        i = bisect.bisect_left(self.oids, oid)
        # noSuchInstance if the object exists with other instances, else noSuchObject.
        under = i < len(self.oids) and self.oids[i][: len(oid) - 1] == oid[:-1]
        return VarBind(oid, Tag.NO_SUCH_INSTANCE if under else Tag.NO_SUCH_OBJECT, None)

    def next(self, oid: OID) -> VarBind:
        i = bisect.bisect_right(self.oids, oid)
        return self.vbs[i] if i < len(self.vbs) else VarBind(oid, Tag.END_OF_MIB_VIEW, None)

    def bulk(self, oids: list[OID], non_repeaters: int, max_rep: int) -> list[VarBind]:
        out = [self.next(o) for o in oids[:non_repeaters]]
        cursors = list(oids[non_repeaters:])
        for _ in range(max(0, max_rep)):
            if not cursors:
                break
            row = [self.next(c) for c in cursors]
            out += row
            cursors = [vb.oid for vb in row]
            if all(vb.tag == Tag.END_OF_MIB_VIEW for vb in row):
                break
        return out

    def walk(self, columns: list[OID]) -> dict[OID, list[VarBind]]:
        """What SnmpClient.walk_columns would return from a live agent serving this recording."""
        out: dict[OID, list[VarBind]] = {}
        for col in columns:
            i = bisect.bisect_right(self.oids, col)
            rows = []
            while i < len(self.vbs) and self.oids[i][: len(col)] == col:
                rows.append(self.vbs[i])
                i += 1
            out[col] = rows
        return out


class _AgentProtocol(asyncio.DatagramProtocol):
    def __init__(self, agents: dict[bytes, Agent]) -> None:
        self.agents = agents
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            version, community, pdu, rid, a, b, oids = decode_request(data)
        except ber.DecodeError:
            return
        agent = self.agents.get(community)
        if agent is None:
            return  # unknown community: real agents stay silent too
        if pdu == ber.GET:
            vbs = [agent.get(o) for o in oids]
        elif pdu == ber.GETNEXT:
            vbs = [agent.next(o) for o in oids]
        else:
            vbs = agent.bulk(oids, a, min(b, 100))
        assert self.transport is not None
        self.transport.sendto(ber.encode_response(rid, community, vbs, version=version), addr)


def decode_request(data: bytes) -> tuple[int, bytes, int, int, int, int, list[OID]]:
    """(version, community, pdu tag, request-id, a, b, oids) of a GET/GETNEXT/GETBULK request."""
    end = len(data)
    s, e = ber._expect(data, 0, end, ber.SEQUENCE, "message")
    version, i = ber._read_int(data, s, e, "version")
    cs, ce = ber._expect(data, i, e, 0x04, "community")
    if ce >= e or data[ce] not in (ber.GET, ber.GETNEXT, ber.GETBULK):
        raise ber.DecodeError("not a request")
    pdu = data[ce]
    n, ps = ber._read_len(data, ce + 1, e)
    rid, i = ber._read_int(data, ps, ps + n, "request-id")
    a, i = ber._read_int(data, i, ps + n, "a")
    b, i = ber._read_int(data, i, ps + n, "b")
    vs, ve = ber._expect(data, i, ps + n, ber.SEQUENCE, "varbinds")
    oids = [vb.oid for vb in ber._decode_varbinds(data, vs, ve)]
    return version, bytes(data[cs:ce]), pdu, rid, a, b, oids


class UdpAgent:
    """Serve many recordings on one UDP port; the community selects the recording."""

    def __init__(self, recordings: dict[str, list[VarBind]]) -> None:
        self.agents = {name.encode(): Agent(vbs) for name, vbs in recordings.items()}
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> UdpAgent:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _AgentProtocol(self.agents), local_addr=(host, port))
        self.port = self.transport.get_extra_info("sockname")[1]
        return self

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
