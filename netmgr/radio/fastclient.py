"""aiomqtt's client with a faster inbound path, for ~2,000 nodes' telemetry on one core.

Measured here (bench/radio, 100,000 telemetry messages): stock aiomqtt 2.5 over
paho 2.1 ingests ~3,700 messages per CPU-second, because paho reads one packet
per event-loop turn with four or more ``recv`` calls (one per header byte),
then every message goes through paho's topic matcher, an aiomqtt ``Message``
copy, an asyncio queue and an ``asyncio.wait`` in the ``messages`` iterator.

Two changes, both confined to this module and pinned by the versions in
constraints.txt (tests/integration/test_radio.py and bench/radio exercise them):

* reads are buffered (64 KiB per ``recv``), and the reader callback keeps
  calling ``loop_read`` while buffered bytes remain, so one wakeup drains
  everything the kernel had;
* ``on_message(topic, payload, retained)`` is called straight from paho's PUBLISH
  handler (after paho's QoS handling and PUBACK), skipping the matcher and the
  queue; ``client.messages`` then only serves to wait for a disconnection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiomqtt

READ_SIZE = 65536


class FastClient(aiomqtt.Client):
    """``aiomqtt.Client`` that hands every PUBLISH to ``on_message(topic, payload, retained)``."""

    def __init__(self, *args: Any, on_message: Callable[[str, bytes, bool], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fast_on_message = on_message
        paho = self._client

        def handle(message: Any) -> None:
            try:
                topic = message.topic
            except UnicodeDecodeError:
                topic = "<not UTF-8>"
            on_message(topic, message.payload, message.retain)

        paho._handle_on_message = handle  # type: ignore[method-assign]

    def _on_socket_open(self, client: Any, userdata: Any, sock: Any) -> None:
        raw_recv = client._sock_recv
        state: list[Any] = [b"", 0]  # buffered bytes, read position

        def sock_recv(n: int) -> bytes:
            data, pos = state
            if pos >= len(data):
                data = raw_recv(READ_SIZE)  # BlockingIOError when the kernel has nothing
                pos = 0
                if not data:
                    state[0], state[1] = b"", 0
                    return data
            out = data[pos:pos + n]
            state[0], state[1] = data, pos + len(out)
            return out

        client._sock_recv = sock_recv

        def callback() -> None:
            try:
                while True:
                    client.loop_read()
                    if state[1] < len(state[0]):
                        continue
                    s = client._sock
                    if s is not None and hasattr(s, "pending") and s.pending() > 0:
                        continue
                    break
            except Exception as exc:  # noqa: BLE001 - any read error ends the connection, as in aiomqtt
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def create_misc_task() -> None:
            self._misc_task = self._loop.create_task(self._misc_loop())

        # paho calls this from the executor thread that runs connect(): hop to the loop.
        self._loop.call_soon_threadsafe(self._loop.add_reader, sock.fileno(), callback)
        self._loop.call_soon_threadsafe(create_misc_task)
