"""One UDP socket for every SNMPv2c request the poller makes.

Requests are multiplexed by request-id. A response is accepted only from the
address the request went to, with the request's id and community; anything
else is counted and dropped. Each request has its own timer (``call_later``,
cheaper than a task per request) that resends up to ``retries`` times and then
fails it with :class:`SnmpTimeout`. Pending entries are removed on answer,
timeout and cancellation, so nothing leaks.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from dataclasses import dataclass, field
from typing import Any

from netmgr.errors import SnmpBadResponse, SnmpTimeout
from netmgr.snmp import ber

log = logging.getLogger(__name__)

RCVBUF = 8 * 1024 * 1024
MAX_DATAGRAM = 65535


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[ber.Response]
    addr: tuple[str, int]
    community: bytes
    payload: bytes
    target: str
    timeout: float
    retries_left: int
    retries: int
    timer: asyncio.TimerHandle | None = None


@dataclass
class TransportStats:
    sent: int = 0
    received: int = 0
    retries: int = 0
    timeouts: int = 0
    unknown_id: int = 0
    wrong_source: int = 0
    malformed: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner._received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: the timer will report the AP; nothing to do here.
        log.debug("udp error: %s", exc)


class UdpTransport:
    """The shared socket. Use ``async with UdpTransport() as t: await t.request(...)``."""

    def __init__(self) -> None:
        self._pending: dict[int, _Pending] = {}
        self._next_id = random.randrange(1, 2**31 - 1)
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = TransportStats()

    async def __aenter__(self) -> UdpTransport:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        except OSError:
            pass
        sock.bind(("0.0.0.0", 0))
        sock.setblocking(False)
        self._transport, _ = await self._loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)

    def close(self) -> None:
        for rid, p in list(self._pending.items()):
            self._finish(rid, p, exc=SnmpTimeout(p.target, p.timeout, p.retries))
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def new_request_id(self) -> int:
        rid = self._next_id
        nxt = rid + 1 if rid < 2**31 - 1 else 1
        while nxt in self._pending:  # a slow request still holds this id: skip it, wrapping
            nxt = nxt + 1 if nxt < 2**31 - 1 else 1
        self._next_id = nxt
        return rid

    async def request(self, target: str, addr: tuple[str, int], community: bytes, payload_for: Any,
                      timeout: float, retries: int) -> ber.Response:
        """Send ``payload_for(request_id)`` to ``addr`` and await the matching Response."""
        assert self._loop is not None and self._transport is not None, "transport not open"
        rid = self.new_request_id()
        fut: asyncio.Future[ber.Response] = self._loop.create_future()
        p = _Pending(fut, addr, community, payload_for(rid), target, timeout, retries, retries)
        self._pending[rid] = p
        self._send(rid, p)
        try:
            return await fut
        finally:
            if self._pending.get(rid) is p:  # cancelled by the caller
                self._finish(rid, p)

    def _send(self, rid: int, p: _Pending) -> None:
        assert self._transport is not None and self._loop is not None
        try:
            self._transport.sendto(p.payload, p.addr)
        except OSError as e:
            self._finish(rid, p, exc=SnmpBadResponse(p.target, f"cannot send: {e.strerror}"))
            return
        self.stats.sent += 1
        p.timer = self._loop.call_later(p.timeout, self._expired, rid)

    def _expired(self, rid: int) -> None:
        p = self._pending.get(rid)
        if p is None:
            return
        if p.retries_left > 0:
            p.retries_left -= 1
            self.stats.retries += 1
            self._send(rid, p)
            return
        self.stats.timeouts += 1
        self._finish(rid, p, exc=SnmpTimeout(p.target, p.timeout, p.retries))

    def _finish(self, rid: int, p: _Pending, result: ber.Response | None = None,
                exc: Exception | None = None) -> None:
        self._pending.pop(rid, None)
        if p.timer is not None:
            p.timer.cancel()
        if not p.future.done():
            if exc is not None:
                p.future.set_exception(exc)
            elif result is not None:
                p.future.set_result(result)
            else:
                p.future.cancel()

    def _drop(self, reason: str) -> None:
        self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1

    def _received(self, data: bytes, addr: Any) -> None:
        self.stats.received += 1
        try:
            rid = ber.peek_request_id(data)
        except ber.DecodeError:
            self.stats.malformed += 1
            self._drop("malformed")
            return
        p = self._pending.get(rid)
        if p is None:
            self.stats.unknown_id += 1
            self._drop("unknown request-id")
            return
        if (addr[0], addr[1]) != p.addr:
            self.stats.wrong_source += 1
            self._drop("wrong source")
            return
        try:
            resp = ber.decode_response(data)
        except ber.DecodeError as e:
            self.stats.malformed += 1
            self._finish(rid, p, exc=SnmpBadResponse(p.target, f"malformed response: {e}"))
            return
        if resp.community != p.community:
            self._drop("wrong community")
            return
        self._finish(rid, p, result=resp)
