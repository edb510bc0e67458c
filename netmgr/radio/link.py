"""The radio service's link to the MQTT broker: two connections, kept up for ever.

``{client_id}`` publishes commands and schedules in the configured protocol (on MQTT 5 with
message expiry and response topics); ``{client_id}-in`` subscribes over MQTT 3.1.1, because paho
decodes v5 properties on every inbound message, which halves the ingest rate (measured: 13,400
vs 29,900 messages per CPU-second) and nodes' messages carry nothing in properties that the
payload does not. The link reconnects with capped, jittered backoff and resubscribes; what to do
once it is up (resync, resend) is the service's, through ``on_connected``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from netmgr.radio import protocol as p
from netmgr.radio.mqtt import Broker
from netmgr.runtime import backoff

log = logging.getLogger(__name__)

PENDING_WARN = 50_000
BACKOFF_BASE, BACKOFF_MAX = 0.5, 10.0  # a broker back after an outage is found within ~10 s
CONNECT_TIMEOUT = 10.0


class BrokerLink:
    """Keeps the two connections up; ``publish`` goes out on the publisher connection.

    ``on_message(topic, payload, retained)`` gets every inbound message (it must not raise);
    ``on_connected()`` runs after each (re)connect, once both connections are up and subscribed.
    """

    def __init__(self, broker: Broker, client_id: str, *,
                 on_message: Callable[[str, bytes, bool], None],
                 on_connected: Callable[[], Awaitable[None]]) -> None:
        self.broker = broker
        self.client_id = client_id
        self.connected = asyncio.Event()
        self.connects = 0
        self.failures = 0  # connection attempts that failed in a row
        self._on_message, self._on_connected = on_message, on_connected
        self._client: Any = None  # the publisher while connected
        self._reconfigure = asyncio.Event()

    @property
    def up(self) -> bool:
        """Whether a publish would go out now."""
        return self._client is not None

    def use(self, broker: Broker) -> bool:
        """New broker settings (SIGHUP): reconnect with them if they differ. True if they did."""
        if broker == self.broker:
            return False
        self.broker = broker
        log.info("mqtt settings changed: reconnecting to %s", broker.describe())
        self._reconfigure.set()
        return True

    async def publish(self, topic: str, payload: bytes | str, *, retain: bool = False,
                      expires_in: float | None = None, correlation: str | None = None,
                      response_topic: str | None = None) -> bool:
        """Publish at QoS 1; False (nothing sent) while the broker is away. On MQTT 5 the
        message carries its expiry, correlation data and response topic when given."""
        client = self._client
        if client is None:
            return False
        props = None
        if self.broker.v5 and (expires_in is not None or correlation or response_topic):
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.PUBLISH)
            if expires_in is not None:
                props.MessageExpiryInterval = max(1, int(expires_in))
            if correlation:
                props.CorrelationData = correlation.encode()
            if response_topic:
                props.ResponseTopic = response_topic
        await client.publish(topic, payload, qos=1, retain=retain, properties=props)
        return True

    async def run(self) -> None:
        """Connect, hand over, wait for a loss, back off, again; until cancelled."""
        import aiomqtt

        while True:
            delay = 0.0
            try:
                await self._session()
            except* aiomqtt.MqttError as eg:
                if not self._reconfigure.is_set():  # (set: left on purpose, connect at once)
                    self.failures += 1
                    delay = backoff(self.failures, BACKOFF_BASE, BACKOFF_MAX)
                    log.warning("mqtt broker=%s unreachable or lost: %s; reconnecting in %.1fs",
                                self.broker.describe(), eg.exceptions[0], delay)
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        """One connected period: both connections up, subscribed, handed over, until one drops."""
        import aiomqtt

        from netmgr.radio.fastclient import inbound_client_class

        inbound_client = inbound_client_class(log)  # FastClient, or the stock client on untested versions
        kwargs = self.broker.client_kwargs()
        in_kwargs = {**kwargs, "protocol": aiomqtt.ProtocolVersion.V311}
        if self.broker.inbound_username:
            in_kwargs["username"] = self.broker.inbound_username
        clients: list[Any] = []
        self._reconfigure.clear()
        try:
            async with contextlib.AsyncExitStack() as stack:
                # Persistent session for the subscriber: the broker keeps status and replies
                # (QoS 1) for us while we restart or reconnect.
                ingest = await stack.enter_async_context(inbound_client(
                    **in_kwargs, identifier=f"{self.client_id}-in", timeout=CONNECT_TIMEOUT,
                    clean_session=False, on_message=self._on_message))
                pub = await stack.enter_async_context(aiomqtt.Client(
                    **kwargs, identifier=self.client_id, timeout=CONNECT_TIMEOUT,
                    max_queued_outgoing_messages=100_000, **self._connect_properties()))
                # aiomqtt warns once per publish past 10 unacknowledged ones; a schedule push to
                # 2,000 nodes is that by design (it logged ~1,000 lines for 1,000 nodes).
                pub.pending_calls_threshold = PENDING_WARN
                clients = [ingest, pub]
                await ingest.subscribe(
                    [(p.node_topic_filter(k), p.QOS[k]) for k in ("status", "telemetry", "reply")])
                self._client = pub
                self.connects += 1
                if self.failures:
                    log.info("mqtt reconnected broker=%s after %d failed attempts",
                             self.broker.describe(), self.failures)
                else:
                    log.info("mqtt connected broker=%s", self.broker.describe())
                self.failures = 0
                self.connected.set()
                await self._on_connected()
                # Messages reach on_message directly; these only wait for a link to drop.
                async with asyncio.TaskGroup() as tg:
                    for c in clients:
                        tg.create_task(_until_lost(c))
                    tg.create_task(self._until_reconfigured())
        finally:
            self._client = None
            self.connected.clear()
            for c in clients:
                _retrieve_disconnect_error(c)

    def _connect_properties(self) -> dict[str, Any]:
        if not self.broker.v5:
            return {}
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        return {"properties": props}

    async def _until_reconfigured(self) -> None:
        import aiomqtt

        await self._reconfigure.wait()
        raise aiomqtt.MqttError("broker settings changed")


async def _until_lost(client: Any) -> None:
    import aiomqtt

    async for _ in client.messages:
        pass
    raise aiomqtt.MqttError("connection closed")


def _retrieve_disconnect_error(client: Any) -> None:
    """aiomqtt keeps the disconnection error in a future nobody awaits once we left the client
    (asyncio then logs "exception was never retrieved"); we logged it already. A private member:
    read only if present, so another aiomqtt version costs at most that log line."""
    fut = getattr(client, "_disconnected", None)
    if isinstance(fut, asyncio.Future) and fut.done() and not fut.cancelled():
        fut.exception()
