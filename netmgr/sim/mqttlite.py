"""A small MQTT 3.1.1 / 5 client for the speaker simulator.

Why not aiomqtt here: the simulator runs 2,000 nodes, each with its own
connection, in one process, and a zone command makes all of them answer at
once. Through paho each node's message and QoS 1 publish cost ~0.5 ms of
Python (measured: 99% of 2,000 nodes accepted after 3.6 s); this client does
the same in a fraction of that, so the benchmark measures the daemon and the
broker, not the simulator. It implements what a speaker node needs: CONNECT
with credentials, last will and a persistent session, SUBSCRIBE, PUBLISH
QoS 0/1 both ways (PUBACK on receipt; v5 PUBACK reason codes counted, so a
refusal by the broker's ACL is visible), keepalive, TLS. The daemon itself
uses aiomqtt.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass

from netmgr.errors import MqttLinkError

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _packet(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([ptype << 4 | flags]) + _varint(len(body)) + body


@dataclass
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class LiteClient(asyncio.Protocol):
    """One MQTT connection. ``on_message(topic, payload)`` is called for every PUBLISH received."""

    def __init__(self, on_message: Callable[[str, bytes], None], *, v5: bool = False) -> None:
        self.on_message = on_message
        self.v5 = v5
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._next_id = 0
        self._waiters: dict[tuple[int, int], asyncio.Future[bytes]] = {}
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.refused = 0          # v5 PUBACKs with a failure reason code (e.g. 0x87 not authorized)
        self.refusals: list[int] = []
        self._ping: asyncio.TimerHandle | None = None
        self._keepalive = 0

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ping:
            self._ping.cancel()
        err = MqttLinkError(f"connection lost: {exc}" if exc else "connection closed")
        for (ptype, _), fut in self._waiters.items():
            if fut.done():
                continue
            if ptype == PUBACK:
                fut.cancel()  # nobody has to await a PUBACK; an exception would go unretrieved
            else:
                fut.set_exception(err)
        self._waiters.clear()
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        while True:
            if len(buf) < 2:
                return
            # remaining length: 1-4 bytes
            mult, length, i = 1, 0, 1
            while True:
                if i >= len(buf):
                    return
                b = buf[i]
                length += (b & 0x7F) * mult
                mult *= 128
                i += 1
                if not b & 0x80:
                    break
                if i > 4:
                    self._fail("malformed remaining length")
                    return
            end = i + length
            if len(buf) < end:
                return
            head = buf[0]
            body = bytes(buf[i:end])
            del buf[:end]
            self._dispatch(head >> 4, head & 0x0F, body)

    # ------------------------------------------------------------------ packets in

    def _fail(self, why: str) -> None:
        if self.transport:
            self.transport.abort()

    def _props_len(self, body: bytes, pos: int) -> int:
        """Skip a v5 property block at ``pos``; returns the position after it."""
        mult, length = 1, 0
        while True:
            b = body[pos]
            pos += 1
            length += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                return pos + length

    def _dispatch(self, ptype: int, flags: int, body: bytes) -> None:
        if ptype == PUBLISH:
            qos = (flags >> 1) & 3
            tlen = struct.unpack_from("!H", body)[0]
            topic = body[2:2 + tlen].decode()
            pos = 2 + tlen
            if qos:
                pid = struct.unpack_from("!H", body, pos)[0]
                pos += 2
                assert self.transport is not None
                self.transport.write(b"\x40\x02" + struct.pack("!H", pid))
            if self.v5:
                pos = self._props_len(body, pos)
            self.on_message(topic, body[pos:])
        elif ptype == PUBACK:
            pid = struct.unpack_from("!H", body)[0]
            if self.v5 and len(body) > 2 and body[2] >= 0x80:
                self.refused += 1
                self.refusals.append(body[2])
            fut = self._waiters.pop((PUBACK, pid), None)
            if fut and not fut.done():
                fut.set_result(body)
        elif ptype in (CONNACK, SUBACK):
            key = (ptype, 0 if ptype == CONNACK else struct.unpack_from("!H", body)[0])
            fut = self._waiters.pop(key, None)
            if fut and not fut.done():
                fut.set_result(body)
        elif ptype == PINGRESP:
            pass

    # ------------------------------------------------------------------ packets out

    def _pid(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def _wait(self, key: tuple[int, int]) -> asyncio.Future[bytes]:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters[key] = fut
        return fut

    def _schedule_ping(self) -> None:
        if self._keepalive and self.transport and not self.transport.is_closing():
            self._ping = asyncio.get_running_loop().call_later(self._keepalive * 0.75, self._send_ping)

    def _send_ping(self) -> None:
        if self.transport and not self.transport.is_closing():
            self.transport.write(b"\xc0\x00")
            self._schedule_ping()

    async def handshake(self, client_id: str, *, username: str | None, password: str | None,
                        will: Will | None, clean: bool, keepalive: int, session_expiry: int = 0,
                        timeout: float = 10.0) -> bool:
        """Send CONNECT and wait for CONNACK; returns session-present. MqttLinkError if refused."""
        flags = 0 if not clean else 0x02
        payload = _str(client_id)
        if will is not None:
            flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
            if self.v5:
                payload += b"\x00"  # will properties
            payload += _str(will.topic) + _str(will.payload)
        if username is not None:
            flags |= 0x80
            payload += _str(username)
        if password is not None:
            flags |= 0x40
            payload += _str(password)
        var = _str("MQTT") + bytes([5 if self.v5 else 4, flags]) + struct.pack("!H", keepalive)
        if self.v5:
            props = b"\x11" + struct.pack("!I", session_expiry) if session_expiry else b""
            var += _varint(len(props)) + props
        fut = self._wait((CONNACK, 0))
        assert self.transport is not None
        self.transport.write(_packet(CONNECT, 0, var + payload))
        async with asyncio.timeout(timeout):
            body = await fut
        if body[1] != 0:
            why = ": bad user name or password" if body[1] in (4, 5, 0x86, 0x87) else ""
            raise MqttLinkError(f"CONNACK refused the connection (code 0x{body[1]:02x}{why})")
        self._keepalive = keepalive
        self._schedule_ping()
        return bool(body[0] & 1)

    async def subscribe(self, topics: list[tuple[str, int]], timeout: float = 10.0) -> list[int]:
        pid = self._pid()
        body = struct.pack("!H", pid) + (b"\x00" if self.v5 else b"")
        for t, q in topics:
            body += _str(t) + bytes([q])
        fut = self._wait((SUBACK, pid))
        assert self.transport is not None
        self.transport.write(_packet(SUBSCRIBE, 2, body))
        async with asyncio.timeout(timeout):
            resp = await fut
        pos = 2
        if self.v5:
            pos = self._props_len(resp, pos)
        codes = list(resp[pos:])
        bad = [t for (t, _), c in zip(topics, codes, strict=False) if c >= 0x80]
        if bad:
            raise MqttLinkError(f"SUBSCRIBE refused for {bad[0]} (not authorized by the broker's ACL?)")
        return codes

    def publish(self, topic: str, payload: bytes, qos: int = 0,
                retain: bool = False) -> asyncio.Future[bytes] | None:
        """Write a PUBLISH; for QoS 1 returns a future of the PUBACK (awaiting it is optional)."""
        if self.transport is None or self.transport.is_closing():
            raise MqttLinkError("not connected")
        flags = (qos << 1) | (1 if retain else 0)
        body = _str(topic)
        fut = None
        if qos:
            pid = self._pid()
            body += struct.pack("!H", pid)
            fut = self._wait((PUBACK, pid))
        if self.v5:
            body += b"\x00"
        self.transport.write(_packet(PUBLISH, flags, body + payload))
        return fut

    def disconnect(self) -> None:
        """A clean goodbye: the broker discards the last will."""
        if self.transport and not self.transport.is_closing():
            self.transport.write(b"\xe0\x00")
            self.transport.close()

    def abort(self) -> None:
        """Drop the link without a goodbye: the broker publishes the last will."""
        if self.transport:
            self.transport.abort()


async def connect(host: str, port: int, client_id: str, on_message: Callable[[str, bytes], None], *,
                  v5: bool = False, ssl_context: ssl.SSLContext | None = None, username: str | None = None,
                  password: str | None = None, will: Will | None = None, clean: bool = False,
                  keepalive: int = 30, session_expiry: int = 86400, timeout: float = 10.0) -> LiteClient:
    """Open a connection and complete the MQTT handshake."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            _, proto = await loop.create_connection(lambda: LiteClient(on_message, v5=v5), host, port,
                                                    ssl=ssl_context)
    except (OSError, TimeoutError) as e:
        raise MqttLinkError(f"cannot connect to {host}:{port}: {e}") from None
    try:
        await proto.handshake(client_id, username=username, password=password, will=will, clean=clean,
                              keepalive=keepalive, session_expiry=session_expiry, timeout=timeout)
    except TimeoutError:
        proto.abort()
        raise MqttLinkError(f"{host}:{port}: no CONNACK within {timeout:g}s") from None
    except BaseException:
        proto.abort()
        raise
    return proto
