"""The daemon's ``radio`` service: the MQTT side of the speaker network, composed of

- :mod:`netmgr.radio.link`: the two broker connections, reconnect with backoff;
- :mod:`netmgr.radio.inbound`: status, telemetry and replies into the :class:`Registry` and the
  :class:`Tracker`, bad messages counted and logged within budgets;
- :mod:`netmgr.radio.outbound`: commands checked, tracked, published, queued while the broker is
  away and resent to nodes that come back;
- :mod:`netmgr.radio.schedules`: each node's retained schedule, republished when needed;
- :mod:`netmgr.radio.persistence`: the inventory read from, and states and deliveries written
  to, the state store (or memory, for tests and benchmarks: :meth:`RadioService.standalone`).

Telemetry goes to the daemon's telemetry hub. Others (the API, the scheduler) use the methods
under "what others ask of it" (netmgr.api.services.RadioApi), never the parts behind them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from netmgr.errors import NetmgrError, NotFound
from netmgr.radio import protocol as p
from netmgr.radio.commands import Delivery, TrackedCommand, Tracker
from netmgr.radio.inbound import BadMessageLog, Inbound, InboundHooks
from netmgr.radio.link import BrokerLink
from netmgr.radio.mqtt import Broker, from_settings
from netmgr.radio.outbound import Outbound
from netmgr.radio.persistence import MemoryRadioStore, RadioStore, SqlRadioStore, StateSync
from netmgr.radio.registry import NodeState, Registry
from netmgr.radio.schedules import Schedules
from netmgr.runtime import Service, every, standalone_context

if TYPE_CHECKING:
    from collections.abc import Callable

    from netmgr.config import Settings
    from netmgr.runtime import DaemonContext, PointSink

log = logging.getLogger(__name__)

FLUSH_EVERY = 1.0
SWEEP_EVERY = 0.5


class RadioService(Service):
    """See the module docstring. ``store`` defaults to the daemon's state store; ``broker``,
    ``client_id`` and ``hub`` default to what the context's settings and telemetry say."""

    name = "radio"

    def __init__(self, ctx: DaemonContext, *, store: RadioStore | None = None, broker: Broker | None = None,
                 client_id: str | None = None, hub: PointSink | None = None) -> None:
        super().__init__(ctx)
        mqtt = ctx.settings.mqtt
        self.stats: Counter[str] = Counter()
        self.registry = Registry(mqtt.telemetry_interval, mqtt.stale_after_missed)
        self.tracker = Tracker(ack_timeout=mqtt.ack_timeout)
        self.state = StateSync(store or SqlRadioStore(ctx.sessions), self.registry, self.tracker)
        self.inbound = Inbound(self.registry, self.tracker, InboundHooks(
            unknown_node=self.inventory_changed, new_session=self._node_reconnected,
            telemetry=self._on_telemetry, reply=self._reply_arrived), self.stats)
        self.link = BrokerLink(broker or from_settings(mqtt), client_id or mqtt.client_id,
                               on_message=self.inbound.handle, on_connected=self._connected)
        self.outbound = Outbound(self.link, self.registry, self.tracker, self.stats,
                                 ttl=mqtt.command_ttl, fresh_inventory=self.state.fresh_inventory,
                                 take_early=self.inbound.take_early)
        self.schedules = Schedules(self.link, self.registry)
        self.hub = hub if hub is not None else ctx.telemetry  # where telemetry goes
        self._last_net: dict[str, str] = {}  # node -> network it last reported (speaker_point)
        # Called with (node_id, NodeState) on each telemetry message (tests, benchmarks).
        self.listeners: list[Callable[[str, NodeState], None]] = []

    @classmethod
    def standalone(cls, broker: Broker, inventory: dict[str, str] | None = None, *,
                   client_id: str = "netmgr", hub: PointSink | None = None,
                   settings: Settings | None = None, **mqtt: Any) -> RadioService:
        """The service without a daemon (tests, benchmarks): the inventory (node id -> zone) and
        everything it writes in memory; ``mqtt`` overrides [mqtt] settings (e.g.
        telemetry_interval=5)."""
        ctx = standalone_context(settings, mqtt=mqtt)
        svc = cls(ctx, store=MemoryRadioStore(inventory), broker=broker, client_id=client_id, hub=hub)
        if inventory is not None:  # usable before run() reads it (the API's tests)
            svc.registry.set_inventory(inventory)
        return svc

    # ------------------------------------------------------------------ supervision

    async def run(self) -> None:
        await self.load_inventory()
        self.ready.set()  # running even while the broker is away: commands queue meanwhile
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.link.run(), name="radio:mqtt")
            tg.create_task(self._sweep_loop(), name="radio:sweep")
            tg.create_task(every(FLUSH_EVERY, self.flush, "writing speaker state", log), name="radio:flush")

    async def _connected(self) -> None:
        """The link is (back) up: a fresh look at who is online, then what waits goes out."""
        self.registry.begin_resync()
        await self.outbound.publish_queued()
        await self.schedules.publish_all()

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            self.tracker.sweep()
            self.inbound.bad.summarize()
            if self.link.connected.is_set():
                for nid in self.registry.end_resync():
                    self._emit(nid, self.registry.node(nid), None)
            if self.state.reload_due():
                try:
                    await self.load_inventory()
                except NetmgrError as e:
                    log.error("reading the speaker inventory failed: %s", e)

    async def reload(self, settings: Settings) -> None:
        await self.load_inventory()
        m = settings.mqtt
        self.registry.telemetry_interval = m.telemetry_interval
        self.registry.stale_after_missed = m.stale_after_missed
        self.tracker.ack_timeout = m.ack_timeout
        self.outbound.ttl = m.command_ttl
        self.link.use(from_settings(m))

    async def drain(self) -> None:
        await self.flush()

    def stats_fields(self) -> dict[str, Any]:
        """The ``netmgr,component=radio`` fields (docs/telemetry.md): running totals and gauges."""
        counts = self.registry.counts()
        return {"nodes_online": counts["online"], "nodes_total": sum(counts.values()),
                "messages": sum(v for k, v in self.stats.items() if k in ("status", "telemetry", "reply")),
                "bad_messages": sum(self.bad.counts.values()),
                "commands_inflight": self._inflight()}

    def health(self) -> dict[str, Any]:
        return {"connected": self.connected.is_set(), "broker": self.link.broker.describe(),
                "connects": self.link.connects, "nodes": self.registry.counts(),
                "messages": dict(self.stats), "bad_messages": dict(self.bad.counts),
                "commands_inflight": self._inflight()}

    def _inflight(self) -> int:
        return sum(1 for tc in self.tracker.commands.values() if not tc.complete)

    @property
    def connected(self) -> asyncio.Event:
        """Set while the broker link is up."""
        return self.link.connected

    @property
    def bad(self) -> BadMessageLog:
        """The bad messages counted so far, by kind."""
        return self.inbound.bad

    # ------------------------------------------------------------------ what others ask of it
    # (netmgr.api.services.RadioApi, the scheduler): methods, never the attributes behind them.

    def node_status(self, node_id: str) -> dict[str, Any] | None:
        """The node's live status (netmgr.radio.registry.NodeState.to_dict), None if never heard."""
        st = self.registry.nodes.get(node_id)
        return st.to_dict(time.monotonic(), self.registry.stale_after) if st is not None else None

    def schedule_version(self, node_id: str) -> int | None:
        """The schedule version the node last reported holding."""
        st = self.registry.nodes.get(node_id)
        return st.schedule_version if st is not None else None

    def pending_for(self, node_id: str) -> list[tuple[TrackedCommand, Delivery]]:
        """Commands still tracked in memory that target the node, with its delivery."""
        return [(tc, d) for tc in self.tracker.commands.values()
                if (d := tc.deliveries.get(node_id)) is not None]

    def command(self, command_id: str) -> TrackedCommand | None:
        """A command still tracked in memory (else it is only in the store)."""
        return self.tracker.commands.get(command_id)

    def accept_latencies(self, tc: TrackedCommand) -> list[float]:
        """Seconds from publish to each node's acceptance, sorted."""
        return self.tracker.accept_latencies(tc)

    async def issue(self, method: str, params: dict[str, Any] | None = None, *,
                    nodes: list[str] | None = None, zones: list[str] | None = None,
                    priority: str = "normal", ttl: float | None = None, issued_by: str = "",
                    command_id: str | None = None) -> TrackedCommand:
        """Send a command to nodes and/or zones (netmgr.radio.outbound.Outbound.issue)."""
        return await self.outbound.issue(method, params, nodes=nodes, zones=zones, priority=priority,
                                         ttl=ttl, issued_by=issued_by, command_id=command_id)

    async def wait(self, command_id: str, until: Callable[[TrackedCommand], bool],
                   timeout: float) -> TrackedCommand:
        """Wait until ``until(tc)`` holds or ``timeout`` passes; returns the command as it stands."""
        return await self.outbound.wait(command_id, until, timeout)

    async def publish_schedule(self, node_id: str, sched: p.Schedule) -> None:
        """Publish a node's schedule document (retained); kept and republished after reconnects."""
        await self.schedules.publish(node_id, sched)

    def forget_schedules(self) -> None:
        """Stop republishing the schedules sent so far (another daemon leads the schedules now)."""
        self.schedules.forget()

    def inventory_changed(self) -> None:
        """The speakers changed (the API calls this): re-read them within a second."""
        self.state.dirty = True

    async def load_inventory(self) -> None:
        """Read the speakers from the store now (the demo calls this before its nodes publish)."""
        await self.state.load_inventory()

    async def flush(self) -> None:
        """Write changed node states and command deliveries to the store, in one transaction
        (what fails is marked changed again and written at the next flush)."""
        await self.state.flush()

    async def reset_session(self, node_id: str) -> int:
        """Forget the node's session (after a flash wipe reset its counter): the next status it
        publishes is accepted whatever its session. Returns the session that was forgotten."""
        st = self.registry.nodes.get(node_id)
        if st is None or st.zone is None:
            raise NotFound(f"speaker {node_id!r} is not in the inventory")
        old, st.session, st.known_status = st.session, -1, False
        self.registry.changes.add(node_id)
        return old

    # ------------------------------------------------------------------ between the parts

    def _node_reconnected(self, node_id: str) -> None:
        self.outbound.resend_pending(node_id)
        self.schedules.refresh(node_id)

    def _reply_arrived(self, command_id: str) -> None:
        self.outbound.reply_arrived(command_id)

    def _on_telemetry(self, node_id: str, node: NodeState, msg: p.Telemetry | None) -> None:
        self._emit(node_id, node, msg)
        if msg is not None:
            for fn in self.listeners:
                fn(node_id, node)

    def _emit(self, node_id: str, node: NodeState, msg: p.Telemetry | None) -> None:
        """Hand the node's telemetry (or that it went offline) to the telemetry hub."""
        hub = self.hub
        if hub is None:
            return
        try:
            from netmgr.telemetry.points import speaker_point

            fields = msg.as_fields() if msg is not None else {}
            if node.lat is not None:
                fields["lat"], fields["lon"] = node.lat, node.lon
            hub.submit([speaker_point(node_id, node.zone or "", fields, node.online,
                                      time.time_ns(), self._last_net)])
        except Exception:
            self.stats["telemetry_errors"] += 1
            log.exception("handing telemetry over failed node=%s", node_id)
