"""The SNMP interface the poller and the CLI use: GET, GETBULK and multi-column walks.

SNMPv1/v2c go through the lean codec on one shared socket
(:mod:`netmgr.snmp.ber`, :mod:`netmgr.snmp.transport`); SNMPv3 goes through
pysnmp (:mod:`netmgr.snmp.v3`). Both return :class:`~netmgr.snmp.types.VarBind`.
Errors are SnmpTimeout / SnmpBadResponse naming the target as ``NAME (HOST:PORT)``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from netmgr.errors import SnmpBadResponse, SnmpError, SnmpTimeout
from netmgr.snmp import ber
from netmgr.snmp.transport import UdpTransport
from netmgr.snmp.types import OID, Tag, VarBind

TOO_BIG = 1
V3_RESET_EVERY = 30.0
DNS_TTL = 300.0
MAX_ROWS = 20_000
ERROR_NAMES = {1: "tooBig", 2: "noSuchName", 3: "badValue", 4: "readOnly", 5: "genErr", 6: "noAccess",
               16: "authorizationError"}


@dataclass(frozen=True)
class Target:
    """One agent and how to talk to it."""

    name: str
    host: str
    port: int = 161
    version: str = "2c"  # "1", "2c" or "3"
    community: str = field(default="public", repr=False)
    v3_user: str | None = None
    auth_proto: str | None = None  # SHA | SHA256 | MD5
    auth_key: str | None = field(default=None, repr=False)
    priv_proto: str | None = None  # AES | AES256 | DES
    priv_key: str | None = field(default=None, repr=False)
    timeout: float = 2.0
    retries: int = 1
    max_repetitions: int = 25
    bulk: bool = True

    @property
    def label(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"


class SnmpClient:
    """Owns the shared UDP transport (and the pysnmp engine once a v3 target is used)."""

    def __init__(self) -> None:
        self.transport = UdpTransport()
        self._v3: Any = None
        self._v3_reset_at = -V3_RESET_EVERY
        self._v3_generation = 0
        self._dns: dict[str, tuple[float, str]] = {}

    async def _resolve(self, t: Target) -> str:
        """The IPv4 address of ``t.host``: replies are matched by source address, so a host name
        must be resolved first. Cached for DNS_TTL seconds; a failure names the AP."""
        try:
            ipaddress.IPv4Address(t.host)
            return t.host
        except ValueError:
            pass
        now = time.monotonic()
        hit = self._dns.get(t.host)
        if hit and hit[0] > now:
            return hit[1]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(t.host, t.port, family=socket.AF_INET,
                                                                 type=socket.SOCK_DGRAM)
        except OSError as e:
            raise SnmpError(t.label, f"cannot resolve {t.host}: {e}; check the AP's host name") from None
        addr = infos[0][4][0]
        self._dns[t.host] = (now + DNS_TTL, addr)
        return addr

    async def __aenter__(self) -> SnmpClient:
        await self.transport.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.transport.close()
        if self._v3 is not None:
            self._v3.close()
            self._v3 = None

    def _v3_engine(self) -> Any:
        if self._v3 is None:
            from netmgr.snmp.v3 import V3Engine

            self._v3 = V3Engine()
        return self._v3

    async def _v3_request(self, t: Target, pdu: int, oids: list[OID], nr: int, mr: int) -> list[VarBind]:
        generation = self._v3_generation
        try:
            return await self._v3_engine().request(t, pdu, oids, nr, mr)
        except SnmpTimeout:
            # pysnmp caches each agent's engine boots/time; an agent that rebooted answers
            # "in the past" and pysnmp drops every reply. A fresh engine rediscovers it.
            # Requests that were in flight on the old engine retry on the new one; a new
            # reset is rate-limited so dead v3 APs do not thrash the engine.
            now = time.monotonic()
            if generation == self._v3_generation:
                if now - self._v3_reset_at < V3_RESET_EVERY:
                    raise
                self._v3_reset_at = now
                self._v3_generation += 1
                old, self._v3 = self._v3, None
                if old is not None:  # close once its in-flight requests have timed out
                    asyncio.get_running_loop().call_later(2 * (t.timeout * (t.retries + 1)) + 1, old.close)
            return await self._v3_engine().request(t, pdu, oids, nr, mr)

    async def _request(
        self, t: Target, pdu: int, oids: list[OID], nr: int = 0, mr: int = 0
    ) -> list[VarBind]:
        if t.version == "3":
            return await self._v3_request(t, pdu, oids, nr, mr)
        community = t.community.encode()
        version = ber.V1 if t.version == "1" else ber.V2C

        def payload(rid: int) -> bytes:
            return ber.encode_request(pdu, rid, community, oids, nr, mr, version)

        resp = await self.transport.request(t.label, (await self._resolve(t), t.port), community, payload,
                                            t.timeout, t.retries)
        if resp.error_status:
            name = ERROR_NAMES.get(resp.error_status, str(resp.error_status))
            err = SnmpBadResponse(t.label, f"agent answered {name} (error-index {resp.error_index})")
            err.error_status = resp.error_status  # type: ignore[attr-defined]
            raise err
        return resp.varbinds

    async def get(self, t: Target, oids: list[OID]) -> list[VarBind]:
        """GET; missing objects come back as noSuchObject/noSuchInstance varbinds."""
        vbs = await self._request(t, ber.GET, oids)
        if len(vbs) != len(oids):
            raise SnmpBadResponse(t.label, f"GET of {len(oids)} OIDs answered with {len(vbs)} varbinds")
        return vbs

    async def get_bulk(self, t: Target, non_repeaters: int, max_repetitions: int,
                       oids: list[OID]) -> list[VarBind]:
        if t.version == "1":
            raise SnmpBadResponse(t.label, "SNMPv1 has no GETBULK")
        return await self._request(t, ber.GETBULK, oids, non_repeaters, max_repetitions)

    async def get_next(self, t: Target, oids: list[OID]) -> list[VarBind]:
        return await self._request(t, ber.GETNEXT, oids)

    async def _walk_request(self, t: Target, asks: list[OID], mr: int,
                            use_bulk: bool) -> tuple[list[VarBind] | None, int, bool]:
        """One request of a walk: (varbinds, max-repetitions, use GETBULK) for the next one.

        Varbinds None: ask again with the returned max-repetitions / GETNEXT.
        """
        if not use_bulk:
            return await self.get_next(t, asks), mr, False
        try:
            vbs = await self.get_bulk(t, 0, mr, asks)
        except SnmpBadResponse as e:
            status = getattr(e, "error_status", None)
            if status == TOO_BIG and mr > 1:
                return None, max(1, mr // 2), True
            if status is not None and status != TOO_BIG:
                # Agents that mishandle GETBULK (genErr, noSuchName, badValue):
                # walk the rest with GETNEXT, which every agent implements.
                return None, mr, False
            raise
        if not vbs:  # an empty GETBULK answer: same fallback
            return None, mr, False
        return vbs, mr, True

    async def walk_columns(self, t: Target, columns: list[OID], max_repetitions: int | None = None,
                           max_rows: int = MAX_ROWS) -> dict[OID, list[VarBind]]:
        """Walk several table columns at once; each column stops at the end of its own subtree.

        GETBULK (halving max-repetitions on tooBig) unless ``t.bulk`` is False or the
        version is 1, then GETNEXT; an agent answering GETBULK with another error
        (genErr, noSuchName...) or with no varbinds is walked on with GETNEXT. A
        non-increasing OID is an error naming the AP (never a loop); more than
        ``max_rows`` rows in a column is an error too.
        """
        out: dict[OID, list[VarBind]] = {c: [] for c in columns}
        cursor: dict[OID, OID] = {c: c for c in columns}
        active = list(columns)
        mr = max_repetitions or t.max_repetitions
        use_bulk = t.bulk and t.version != "1"
        while active:
            asks = [cursor[c] for c in active]
            vbs, mr, use_bulk = await self._walk_request(t, asks, mr, use_bulk)
            if vbs is None:  # fall back or shrink, then ask again
                continue
            if not vbs:
                raise SnmpBadResponse(t.label, "empty response to a walk request")
            done = _absorb_walk_response(t, active, vbs, cursor, out, max_rows)
            # Columns whose rows this (possibly trimmed) answer did not finish stay active and
            # are asked again from their cursor.
            active = [c for c in active if c not in done]
        return out


def _absorb_walk_response(t: Target, active: list[OID], vbs: list[VarBind], cursor: dict[OID, OID],
                          out: dict[OID, list[VarBind]], max_rows: int) -> set[OID]:
    """Append one walk answer's varbinds to their columns (``active`` round robin); return the finished.

    Moves each column's cursor; a non-increasing OID or more than ``max_rows`` rows is an error.
    """
    width = len(active)
    done: set[OID] = set()
    for k, vb in enumerate(vbs):
        col = active[k % width]
        if col in done:
            continue
        n = len(col)
        if vb.tag == Tag.END_OF_MIB_VIEW or vb.oid[:n] != col or vb.tag in (
                Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE):
            done.add(col)
            continue
        if vb.oid <= cursor[col]:
            raise SnmpBadResponse(t.label, f"agent returned non-increasing OID "
                                  f"{'.'.join(map(str, vb.oid))} while walking "
                                  f"{'.'.join(map(str, col))}")
        cursor[col] = vb.oid
        rows = out[col]
        rows.append(vb)
        if len(rows) > max_rows:
            raise SnmpBadResponse(t.label, f"more than {max_rows} rows under "
                                  f"{'.'.join(map(str, col))}; is the agent looping?")
    return done
