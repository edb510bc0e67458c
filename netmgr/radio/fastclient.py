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

Both rely on private attributes of paho-mqtt and aiomqtt, which pyproject allows
to move within their major versions. :func:`inbound_client_class` therefore
picks :class:`FastClient` only when :func:`fast_path_ok` finds the installed
versions in the series of ``TESTED`` and every private attribute in place;
otherwise it logs one warning and returns :class:`StockClient`, the stock
aiomqtt client behind the same ``on_message=`` interface (slower: ~3,700
messages per CPU-second). The environment variable ``NETMGR_MQTT_FASTPATH=0``
forces the stock client (tests, or to rule the fast path out when debugging).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from importlib import metadata
from typing import Any

import aiomqtt
import paho.mqtt.client as paho_client

READ_SIZE = 65536
FASTPATH_ENV = "NETMGR_MQTT_FASTPATH"

# The major.minor series the fast path was tested on (constraints.txt pins the newest of them).
TESTED: dict[str, tuple[str, ...]] = {"aiomqtt": ("2.5",), "paho-mqtt": ("2.1", "2.2")}

# The private attributes the fast path uses that exist on the classes (the others, such as
# ``_client``, ``_sock``, ``_disconnected``, ``_loop`` and ``_misc_task``, are set per instance).
PRIVATE: tuple[tuple[type, str, tuple[str, ...]], ...] = (
    (paho_client.Client, "paho.mqtt.client.Client", ("_handle_on_message", "loop_read", "_sock_recv")),
    (aiomqtt.Client, "aiomqtt.Client", ("_on_socket_open", "_misc_loop")),
)


def installed_version(dist: str) -> str:
    """The installed version of distribution ``dist``, or ``"unknown"`` without its metadata."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _series(version: str) -> str | None:
    m = re.match(r"(\d+)\.(\d+)", version)
    return f"{m[1]}.{m[2]}" if m else None


def _describe_series(series: tuple[str, ...]) -> str:
    """``("2.1", "2.2")`` -> ``"2.1-2.2"`` when consecutive, else ``"2.1/2.4"``."""
    if len(series) > 1:
        parts = [tuple(int(x) for x in s.split(".")) for s in series]
        if all(a[0] == b[0] and b[1] == a[1] + 1 for a, b in itertools.pairwise(parts)):
            return f"{series[0]}-{series[-1]}"
    return "/".join(series)


def _versions_text(versions: dict[str, str]) -> str:
    return " / ".join(f"{dist} {v}" for dist, v in versions.items())


def fast_path_ok() -> tuple[bool, str]:
    """Whether :class:`FastClient` can be used: ``(True, "")`` when the installed aiomqtt and
    paho-mqtt are in the series of ``TESTED`` and every private attribute the fast path uses
    exists; else ``(False, reason)``, the reason naming both installed versions and what is off."""
    versions = {dist: installed_version(dist) for dist in TESTED}
    problems: list[str] = []
    untested = [dist for dist, v in versions.items() if _series(v) not in TESTED[dist]]
    if untested:
        tested = ", ".join(f"{dist} {_describe_series(s)}" for dist, s in TESTED.items())
        problems.append(f"{_versions_text(versions)} are not versions the fast MQTT path was tested on "
                        f"({tested})")
    missing = [f"{name}.{attr}" for cls, name, attrs in PRIVATE for attr in attrs if not hasattr(cls, attr)]
    if missing:
        prefix = "" if problems else f"{_versions_text(versions)}: "
        problems.append(f"{prefix}private attributes the fast MQTT path uses are missing: "
                        f"{', '.join(missing)}")
    return (not problems, "; ".join(problems))


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


class StockClient(aiomqtt.Client):
    """The stock ``aiomqtt.Client`` behind :class:`FastClient`'s interface, for untested versions.

    Messages take aiomqtt's own path (paho's matcher, aiomqtt's queue); iterating
    ``client.messages`` hands each one to ``on_message(topic, payload, retained)`` before
    yielding it, and ends with aiomqtt's ``MqttError`` on disconnection, as with FastClient.
    So exactly one task must iterate ``messages`` (the service's wait for a lost link does)."""

    def __init__(self, *args: Any, on_message: Callable[[str, bytes, bool], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stock_on_message = on_message

    @property
    def messages(self) -> AsyncIterator[aiomqtt.Message]:  # type: ignore[override]
        """aiomqtt's message iterator, delivering every message to ``on_message`` on the way."""
        return self._dispatch(super().messages)

    async def _dispatch(self, source: AsyncIterator[aiomqtt.Message]) -> AsyncIterator[aiomqtt.Message]:
        async for message in source:
            payload = message.payload
            if not isinstance(payload, bytes):
                payload = b"" if payload is None else str(payload).encode()
            self._stock_on_message(message.topic.value, payload, bool(message.retain))
            yield message


def inbound_client_class(logger: logging.Logger) -> type[FastClient] | type[StockClient]:
    """:class:`FastClient` when :func:`fast_path_ok` (and ``NETMGR_MQTT_FASTPATH`` is not ``0``);
    else :class:`StockClient`, after one warning on ``logger`` naming the versions. Both take
    aiomqtt's arguments plus ``on_message=``."""
    ok, reason = fast_path_ok()
    if os.environ.get(FASTPATH_ENV, "").strip() == "0":
        versions = _versions_text({dist: installed_version(dist) for dist in TESTED})
        reason = f"{FASTPATH_ENV}=0 turns the fast MQTT path off ({versions})"
        ok = False
    if ok:
        return FastClient
    logger.warning("%s: falling back to the stock aiomqtt client for inbound messages (slower inbound "
                   "path, about 3,700 messages per CPU-second instead of ~30,000)", reason)
    return StockClient
