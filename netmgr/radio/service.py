"""The daemon's ``radio`` service: the MQTT side of the speaker network.

One aiomqtt client (paho underneath) subscribes to every node's status,
telemetry and reply topics, keeps the :class:`Registry`, tracks commands with
the :class:`Tracker`, publishes commands and schedules, and hands telemetry to
the telemetry pipeline. It reconnects with capped, jittered backoff and
resubscribes; commands issued while the broker is away stay ``queued`` and go
out on reconnect if they have not expired. When a node comes (back) online,
the commands it has not accepted are resent to it on its own topic: nodes are
idempotent by command id, so a node that did get the first copy answers again
without playing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from netmgr.errors import Conflict, NetmgrError, NotFound, UsageError
from netmgr.radio import protocol as p
from netmgr.radio.commands import RANK, Delivery, TrackedCommand, Tracker, new_command_id
from netmgr.radio.mqtt import Broker, from_settings
from netmgr.radio.persistence import MemoryRadioStore, RadioStore, SqlRadioStore
from netmgr.radio.registry import Registry, plausible_session
from netmgr.runtime import Service, backoff, every
from netmgr.text import safe_text
from netmgr.zones import is_within

if TYPE_CHECKING:
    from netmgr.runtime import DaemonContext

log = logging.getLogger("netmgr.radio")

FLUSH_EVERY = 1.0
INVENTORY_EVERY = 15.0
SWEEP_EVERY = 0.5
PENDING_WARN = 50_000
BACKOFF_BASE, BACKOFF_MAX = 0.5, 10.0  # a broker back after an outage is found within ~10 s
LOG_EVERY = 60.0  # at most one log line per node and kind of bad message per minute
KIND_BUDGET = 20  # ... and at most this many lines per kind of bad message per minute
STATE_WRITE_EVERY = 30.0  # a node's registry row is rewritten at most this often unless it changes state


def _checked(method: str, params: dict[str, Any] | None, priority: str, nodes: list[str],
             zones: list[str]) -> dict[str, Any]:
    """A command's params once everything about it is valid, else UsageError saying what is not."""
    if method not in p.METHODS:
        raise UsageError(f"unknown method {method!r}; use one of {', '.join(p.METHODS)}")
    if priority not in p.PRIORITIES:
        raise UsageError(f"unknown priority {priority!r}; use normal, priority or emergency")
    if not nodes and not zones:
        raise UsageError("a command needs a target: node ids and/or zone paths")
    try:
        checked = p.check_params(method, dict(params or {}))
        # Every topic it would go out on is built now: a command that cannot be published is
        # refused here and never stored (a stored one would fail again at each reconnect).
        for z in zones:
            p.zone_topic(z)
        for n in nodes:
            p.node_topic(n, "cmd")
    except (p.BadMessage, ValueError) as e:
        raise UsageError(str(e)) from None
    return checked


def _check_session(kind: str, session: int | None) -> None:
    if session is not None and not plausible_session(session):
        raise p.BadMessage(kind, f"session {session} is more than a day ahead of this daemon's clock in "
                           "milliseconds; ignored (fix the node's clock or counter, or run "
                           "`netmgr speaker reset-session` after a flash wipe; docs/protocol.md)")


class BadMessageLog:
    """Counts bad messages by kind and logs them within two budgets: each (node, kind) at most
    once a minute, and each kind at most ``KIND_BUDGET`` lines a minute across all nodes (3,000
    spoofed node ids must not make 3,000 lines); what the second budget holds back is summed up
    in one line per kind and minute ("2,941 more unknown_node messages suppressed")."""

    def __init__(self, kind_budget: int = KIND_BUDGET, every: float = LOG_EVERY) -> None:
        self.counts: Counter[str] = Counter()
        self.kind_budget, self.every = kind_budget, every
        self._last: dict[tuple[str, str], float] = {}
        self._window = time.monotonic()
        self._logged: Counter[str] = Counter()  # lines per kind in the current window
        self.suppressed: Counter[str] = Counter()  # held back by the kind budget in this window

    def report(self, node: str, kind: str, message: str) -> None:
        self.counts[kind] += 1
        now = time.monotonic()
        self.summarize(now)
        key = (node, kind)
        if now - self._last.get(key, -self.every) < self.every:
            return
        if self._logged[kind] >= self.kind_budget:
            self.suppressed[kind] += 1
            return
        self._last[key] = now
        self._logged[kind] += 1
        log.warning("bad message node=%s kind=%s: %s (counted; more like it are logged at most "
                    "once a minute)", safe_text(node, keep_newlines=False), kind,
                    safe_text(message, keep_newlines=False))
        if len(self._last) > 50_000:  # a flood of random node ids must not grow this forever
            self._last.clear()

    def summarize(self, now: float | None = None) -> None:
        """At the end of each window: one line per kind whose messages the budget held back."""
        now = time.monotonic() if now is None else now
        if now - self._window < self.every:
            return
        for kind, n in sorted(self.suppressed.items()):
            log.warning("bad messages: %s more %s messages suppressed in the last %.0f s (over %d "
                        "lines of that kind; all are counted in /healthz bad_messages)",
                        f"{n:,}", kind, now - self._window, self.kind_budget)
        self.suppressed.clear()
        self._logged.clear()
        self._window = now


class RadioService(Service):
    """See the module docstring. Also usable outside the daemon (tests, benchmarks) with
    ``inventory`` given directly instead of a store."""

    name = "radio"

    def __init__(self, ctx: DaemonContext | None, *, broker: Broker | None = None,
                 client_id: str | None = None, inventory: dict[str, str] | None = None,
                 telemetry_interval: float | None = None, stale_after_missed: int | None = None,
                 ack_timeout: float | None = None, command_ttl: float | None = None,
                 hub: Any = None, store: RadioStore | None = None) -> None:
        super().__init__(ctx)  # type: ignore[arg-type]
        mqtt = ctx.settings.mqtt if ctx is not None else None
        self.broker = broker or from_settings(mqtt)
        self.client_id = client_id or (mqtt.client_id if mqtt else "netmgr")
        self.registry = Registry(
            telemetry_interval or (mqtt.telemetry_interval if mqtt else 30.0),
            stale_after_missed or (mqtt.stale_after_missed if mqtt else 3))
        self.tracker = Tracker(ack_timeout=ack_timeout or (mqtt.ack_timeout if mqtt else 10.0))
        self.command_ttl = command_ttl or (mqtt.command_ttl if mqtt else 300.0)
        # The daemon's state store; a given inventory (tests, benchmarks) is kept in memory.
        if store is None:
            store = SqlRadioStore(ctx.sessions) if ctx is not None and inventory is None \
                else MemoryRadioStore(inventory)
        self.store: RadioStore = store
        if inventory is not None:
            self.registry.set_inventory(inventory)
        self.client: Any = None
        self.connected = asyncio.Event()
        self.bad = BadMessageLog()
        self.stats: Counter[str] = Counter()
        self.connects = 0
        self._inventory_loaded = 0.0
        self._inventory_dirty = False
        self._state_written: dict[str, float] = {}
        self._sessions_loaded = False
        self.listeners: list[Any] = []  # callables(node_id, NodeState) on telemetry (tests, bench)
        self._reply_waiters: dict[str, asyncio.Event] = {}
        self.schedules: dict[str, p.Schedule] = {}  # node -> last published schedule
        self._early: dict[str, dict[str, p.Reply]] = {}  # item id -> node -> latest reply
        # Where telemetry goes (netmgr.telemetry's hub): the daemon's, or one given (benchmarks).
        self.hub = hub if hub is not None else (ctx.telemetry if ctx is not None else None)

    # ------------------------------------------------------------------ supervision

    async def run(self) -> None:
        await self.load_inventory()
        self.ready.set()  # running even while the broker is away: commands queue meanwhile
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._connection_loop(), name="radio:mqtt")
            tg.create_task(self._sweep_loop(), name="radio:sweep")
            tg.create_task(every(FLUSH_EVERY, self.flush, "writing speaker state", log), name="radio:flush")

    async def _connection_loop(self) -> None:
        """Two connections to the broker: ``{client_id}`` publishes commands and schedules in the
        configured protocol (on MQTT 5 with message expiry and response topics); ``{client_id}-in``
        subscribes over MQTT 3.1.1, because paho decodes v5 properties on every inbound message,
        which halves the ingest rate (measured: 13,400 vs 29,900 messages per CPU-second) and
        nodes' messages carry nothing in properties that the payload does not."""
        import aiomqtt

        from netmgr.radio.fastclient import inbound_client_class

        inbound_client = inbound_client_class(log)  # FastClient, or the stock client on untested versions

        failures = 0
        while True:
            kwargs = self.broker.client_kwargs()
            extra: dict[str, Any] = {}
            if self.broker.v5:
                from paho.mqtt.packettypes import PacketTypes
                from paho.mqtt.properties import Properties

                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = 0
                extra = {"properties": props}
            in_kwargs = {**kwargs, "protocol": aiomqtt.ProtocolVersion.V311}
            if self.broker.inbound_username:
                in_kwargs["username"] = self.broker.inbound_username
            delay = 0.0
            clients: list[Any] = []
            try:
                async with contextlib.AsyncExitStack() as stack:
                    # Persistent session for the subscriber: the broker keeps status and replies
                    # (QoS 1) for us while we restart or reconnect.
                    ingest = await stack.enter_async_context(inbound_client(
                        **in_kwargs, identifier=f"{self.client_id}-in", timeout=10, clean_session=False,
                        on_message=self.handle))
                    pub = await stack.enter_async_context(aiomqtt.Client(
                        **kwargs, identifier=self.client_id, timeout=10,
                        max_queued_outgoing_messages=100_000, **extra))
                    # aiomqtt warns once per publish past 10 unacknowledged ones; a schedule push to
                    # 2,000 nodes is that by design (it logged ~1,000 lines for 1,000 nodes).
                    pub.pending_calls_threshold = PENDING_WARN
                    clients = [ingest, pub]
                    await ingest.subscribe(
                        [(p.node_topic_filter(k), p.QOS[k]) for k in ("status", "telemetry", "reply")])
                    self.client = pub
                    self.connects += 1
                    self.registry.begin_resync()
                    if failures:
                        log.info("mqtt reconnected broker=%s after %d failed attempts",
                                 self.broker.describe(), failures)
                    else:
                        log.info("mqtt connected broker=%s", self.broker.describe())
                    failures = 0
                    self.connected.set()
                    await self._publish_queued()
                    # Messages reach handle() directly; these only wait for either link to drop.
                    async with asyncio.TaskGroup() as tg:
                        for c in (ingest, pub):
                            tg.create_task(self._until_lost(c))
            except* aiomqtt.MqttError as eg:
                failures += 1
                delay = backoff(failures, BACKOFF_BASE, BACKOFF_MAX)
                log.warning("mqtt broker=%s unreachable or lost: %s; reconnecting in %.1fs",
                            self.broker.describe(), eg.exceptions[0], delay)
            finally:
                self.client = None
                self.connected.clear()
                for c in clients:  # retrieve aiomqtt's disconnection error: we logged it above
                    fut = getattr(c, "_disconnected", None)
                    if fut is not None and fut.done() and not fut.cancelled():
                        fut.exception()
            await asyncio.sleep(delay)

    @staticmethod
    async def _until_lost(client: Any) -> None:
        import aiomqtt

        async for _ in client.messages:
            pass
        raise aiomqtt.MqttError("connection closed")

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            self.tracker.sweep()
            self.bad.summarize()
            if self.connected.is_set():
                for nid in self.registry.end_resync():
                    self._emit(nid, self.registry.node(nid), None)
            age = time.monotonic() - self._inventory_loaded
            if age > INVENTORY_EVERY or (self._inventory_dirty and age > 1.0):
                self._inventory_dirty = False
                try:
                    await self.load_inventory()
                except NetmgrError as e:
                    log.error("reading the speaker inventory failed: %s", e)

    async def reload(self, settings: Any) -> None:
        await self.load_inventory()
        new = from_settings(settings.mqtt)
        self.registry.telemetry_interval = settings.mqtt.telemetry_interval
        self.registry.stale_after_missed = settings.mqtt.stale_after_missed
        self.tracker.ack_timeout = settings.mqtt.ack_timeout
        self.command_ttl = settings.mqtt.command_ttl
        if new != self.broker:
            self.broker = new
            log.info("mqtt settings changed: reconnecting to %s", new.describe())
            if self.client is not None:
                # Leaving the client's context ends the message loop; the loop reconnects.
                with contextlib.suppress(Exception):
                    self.client._client.disconnect()

    async def drain(self) -> None:
        await self.flush()

    def stats_fields(self) -> dict[str, Any]:
        """The ``netmgr,component=radio`` fields (docs/telemetry.md): running totals and gauges."""
        counts = self.registry.counts()
        return {"nodes_online": counts["online"], "nodes_total": sum(counts.values()),
                "messages": sum(v for k, v in self.stats.items() if k in ("status", "telemetry", "reply")),
                "bad_messages": sum(self.bad.counts.values()),
                "commands_inflight": sum(1 for tc in self.tracker.commands.values() if not tc.complete)}

    def health(self) -> dict[str, Any]:
        inflight = sum(1 for tc in self.tracker.commands.values() if not tc.complete)
        return {"connected": self.connected.is_set(), "broker": self.broker.describe(),
                "connects": self.connects, "nodes": self.registry.counts(),
                "messages": dict(self.stats), "bad_messages": dict(self.bad.counts),
                "commands_inflight": inflight}

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

    def forget_schedules(self) -> None:
        """Stop republishing the schedules sent so far (another daemon leads the schedules now)."""
        self.schedules.clear()

    # ------------------------------------------------------------------ inventory and state

    def inventory_changed(self) -> None:
        """The speakers changed (the API calls this): re-read them within a second."""
        self._inventory_dirty = True

    async def load_inventory(self) -> None:
        """Node id -> zone from the store, and the last known sessions (once, at start)."""
        self._inventory_loaded = time.monotonic()
        rows = await self.store.speakers()
        states = [] if self._sessions_loaded else await self.store.states()
        if rows is not None:
            self.registry.set_inventory({r.id: r.zone for r in rows})
            for r in rows:
                node = self.registry.nodes[r.id]
                node.lat, node.lon = r.lat, r.lon
        for st in states:  # the session counter must survive restarts, or a late will wins
            self._restore(st)
        self._sessions_loaded = True

    def _restore(self, st: Any) -> None:
        if not plausible_session(st.session):
            log.warning("stored session of node=%s is implausible (%d, more than a day ahead); "
                        "ignored, the node's next status sets it", st.node_id, st.session)
            return
        node = self.registry.node(st.node_id)
        if node.session < st.session:
            node.session = st.session
            node.online = st.online
            node.known_status = True
            node.since = st.since.timestamp() if st.since else None
            node.fw = st.fw
            node.schedule_version = st.schedule_version

    async def flush(self) -> None:
        """Write changed node states and command deliveries to the store, in one transaction
        (what fails is marked changed again and written at the next flush)."""
        now = time.monotonic()
        changed = self.registry.take_changes()
        nodes = [st for nid, st in self.registry.nodes.items() if self._due(nid, st, changed, now)]
        cmds = [tc for tc in self.tracker.commands.values() if tc.dirty]
        if not nodes and not cmds:
            return
        writes = [(st, st.to_dict(now, self.registry.stale_after)["telemetry"] or {}) for st in nodes]
        deliveries = [(tc, [d for d in tc.deliveries.values() if d.dirty]) for tc in cmds]
        for tc, dirty in deliveries:
            tc.dirty = False
            for d in dirty:
                d.dirty = False
        try:
            await self.store.write(writes, deliveries)
        except BaseException:
            self.registry.changes.update(changed)  # try again next flush
            for tc, dirty in deliveries:
                tc.dirty = True
                for d in dirty:
                    d.dirty = True
            raise
        for st in nodes:
            self._state_written[st.id] = now

    def _due(self, nid: str, st: Any, changed: set[str], now: float) -> bool:
        """Whether a node's state is to be written: it changed, or its telemetry is older in the
        store than STATE_WRITE_EVERY (nodes no longer in the inventory are not written)."""
        if st.zone is None:
            return False
        return nid in changed or (st.telemetry_wall is not None and
                                  now - self._state_written.get(nid, -STATE_WRITE_EVERY) >= STATE_WRITE_EVERY)

    async def reset_session(self, node_id: str) -> int:
        """Forget the node's session (after a flash wipe reset its counter): the next status it
        publishes is accepted whatever its session. Returns the session that was forgotten."""
        st = self.registry.nodes.get(node_id)
        if st is None or st.zone is None:
            raise NotFound(f"speaker {node_id!r} is not in the inventory")
        old, st.session, st.known_status = st.session, -1, False
        self.registry.changes.add(node_id)
        return old

    # ------------------------------------------------------------------ inbound

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """Dispatch one message; never raises (a bad message is counted and logged).

        ``retained``: a status the broker kept (delivered on subscribe) says what the node
        last announced, not that it is alive now; only live messages count as heard."""
        parsed = p.parse_node_topic(topic)
        if parsed is None:
            self.bad.report("?", "topic", f"unexpected topic {topic[:120]!r}")
            return
        node_id, kind = parsed
        st = self.registry.nodes.get(node_id)
        if st is None or st.zone is None:
            self._inventory_dirty = True  # added by another daemon sharing the store? look again
            self.bad.report(node_id, "unknown_node",
                            f"node {node_id!r} is not in the inventory; add it with `netmgr speaker add`")
            return
        self.stats[kind] += 1
        try:
            if kind == "telemetry":
                self._on_telemetry(node_id, payload)
            elif kind == "status":
                self._on_status(node_id, payload, retained)
            elif kind == "reply":
                self._on_reply(node_id, payload)
            elif kind not in ("cmd", "schedule"):  # ours (a shared broker may echo them to a wildcard)
                self.bad.report(node_id, "topic", f"unknown topic kind {kind!r}")
        except p.BadMessage as e:
            self.bad.report(node_id, f"bad_{e.kind}", str(e))
        except Exception:  # a bug must not take the radio down; the message is dropped and logged
            self.stats["handler_errors"] += 1
            log.exception("handling a message failed node=%s topic=%s", node_id, topic)

    def _on_telemetry(self, node_id: str, payload: bytes) -> None:
        msg = p.parse_telemetry(payload)
        _check_session("telemetry", msg.session)
        node = self.registry.apply_telemetry(node_id, msg)
        self._emit(node_id, node, msg)
        for fn in self.listeners:
            fn(node_id, node)

    def _on_status(self, node_id: str, payload: bytes, retained: bool) -> None:
        status = p.parse_status(payload)
        _check_session("status", status.session)
        before = self.registry.node(node_id).session
        if not self.registry.apply_status(node_id, status, live=not retained):
            self.stats["stale_status"] += 1
            return
        if status.online and status.session != before:
            # A new connection of the node: it may have missed commands and schedules
            # (a broker restart loses sessions). Nodes are idempotent by command id.
            self._resend_pending(node_id)
            self._republish_schedule(node_id)
        elif not status.online:
            self._emit(node_id, self.registry.node(node_id), None)

    def _on_reply(self, node_id: str, payload: bytes) -> None:
        reply = p.parse_reply(payload)
        self.registry.touch(node_id, reply.ts)
        if reply.id == p.SCHEDULE_ACK_ID:
            v = reply.data.get("version")
            if isinstance(v, int) and not isinstance(v, bool):
                self.registry.node(node_id).schedule_version = v
            return
        outcome = self.tracker.on_reply(node_id, reply)
        if outcome == "unknown" and reply.data.get("source") == "schedule":
            # A node plays a schedule item (its id is the occurrence's) before the scheduler's
            # confirming command exists, or reports one it played offline: kept until that
            # command is issued (see issue()).
            self._early_reply(node_id, reply)
            return
        if outcome == "unknown":
            self.bad.report(node_id, "unknown_command",
                            f"reply to unknown command {reply.id!r} (status {reply.status})")
        elif outcome == "stranger":
            self.bad.report(node_id, "not_a_target", f"reply to command {reply.id!r} "
                            "that was not sent to this node")
        ev = self._reply_waiters.get(reply.id)
        if ev is not None:
            ev.set()

    def _early_reply(self, node_id: str, reply: p.Reply) -> None:
        self.stats["early_replies"] += 1
        if len(self._early) >= 10_000:  # bounded: drop the oldest item
            self._early.pop(next(iter(self._early)))
        per = self._early.setdefault(reply.id, {})
        old = per.get(node_id)
        if old is None or RANK.get(reply.status, 0) >= RANK.get(old.status, 0):
            per[node_id] = reply

    def _emit(self, node_id: str, node: Any, msg: p.Telemetry | None) -> None:
        hub = self.hub
        if hub is None:
            return
        try:
            from netmgr.telemetry.points import speaker_point

            fields = msg.as_fields() if msg is not None else {}
            if node.lat is not None:
                fields["lat"], fields["lon"] = node.lat, node.lon
            hub.submit([speaker_point(node_id, node.zone or "", fields, node.online,
                                      time.time_ns())])
        except Exception:
            self.stats["telemetry_errors"] += 1
            log.exception("handing telemetry over failed node=%s", node_id)

    # ------------------------------------------------------------------ outbound

    def resolve(self, nodes: list[str], zones: list[str]) -> list[str]:
        """The inventory nodes a command reaches: the listed nodes plus every node in (or under) the zones."""
        inv = {nid: st.zone for nid, st in self.registry.nodes.items() if st.zone is not None}
        missing = [n for n in nodes if n not in inv]
        if missing:
            raise NotFound(f"speaker {missing[0]!r} is not in the inventory"
                           + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        out = set(nodes)
        for z in zones:
            out.update(nid for nid, nz in inv.items() if nz and is_within(nz, z))
        return sorted(out)

    async def issue(self, method: str, params: dict[str, Any] | None = None, *,
                    nodes: list[str] | None = None, zones: list[str] | None = None,
                    priority: str = "normal", ttl: float | None = None, issued_by: str = "",
                    command_id: str | None = None) -> TrackedCommand:
        """Send a command to nodes and/or zones; returns it tracked. Zones go out as one publish
        each on the zone topic; nodes listed apart get it on their own topic."""
        nodes, zones = list(nodes or []), list(zones or [])
        params = _checked(method, params, priority, nodes, zones)
        if time.monotonic() - self._inventory_loaded > 2.0:
            await self.load_inventory()
        targets = self.resolve(nodes, zones)
        if not targets:
            raise NotFound(f"no speakers in {', '.join(zones)}")
        cid = command_id or new_command_id()
        if cid in self.tracker.commands:
            raise Conflict(f"command {cid!r} exists")
        now = time.time()
        cmd = p.Command(cid, method, params, now, now + (ttl or self.command_ttl), priority)
        tc = TrackedCommand(cmd, targets if not zones else sorted(set(nodes)), zones, issued_by)
        for n in targets:
            tc.deliveries.setdefault(n, Delivery(n))
        self.tracker.add(tc)
        for node, reply in self._early.pop(cid, {}).items():
            if node in tc.deliveries:
                self.tracker.on_reply(node, reply)
        if self.connected.is_set():
            await self._publish(tc)
        else:
            log.info("mqtt broker away: command %s (%s to %d nodes) queued until it is back",
                     cid, method, len(targets))
        return tc

    async def _publish(self, tc: TrackedCommand, *, only: list[str] | None = None) -> None:
        """Publish ``tc`` (on its zone topics and listed nodes' topics, or only to ``only`` nodes)."""
        client = self.client
        if client is None:
            return
        cmd = tc.cmd
        remaining = cmd.expires - time.time()
        if remaining <= 0:
            return
        payload = cmd.to_json()
        # Marked before the first await: replies may arrive before the broker's PUBACK does.
        now = time.time()
        if tc.published is None:
            tc.published = time.monotonic()
            tc.published_wall = now
        for nid in (only if only is not None else list(tc.deliveries)):
            d = tc.deliveries[nid]
            if d.state in ("queued", "offline", "timeout"):
                d.move("sent" if self.registry.is_online(nid) else "offline", now)
                d.times.setdefault("sent", now)
        tc.dirty = True
        topics: list[tuple[str, str | None]] = []
        if only is not None:
            topics = [(p.node_topic(n, "cmd"), n) for n in only]
        else:
            topics = [(p.zone_topic(z), None) for z in tc.zones]
            topics += [(p.node_topic(n, "cmd"), n) for n in (tc.nodes if tc.zones else tc.deliveries)]
        for topic, node in topics:
            props = None
            if self.broker.v5:
                from paho.mqtt.packettypes import PacketTypes
                from paho.mqtt.properties import Properties

                props = Properties(PacketTypes.PUBLISH)
                props.MessageExpiryInterval = max(1, int(remaining))
                props.CorrelationData = cmd.id.encode()
                if node is not None:
                    props.ResponseTopic = p.node_topic(node, "reply")
            await client.publish(topic, payload, qos=1, properties=props)

    async def _publish_queued(self) -> None:
        """After (re)connecting: every unexpired command some target has not accepted goes out
        again (zones as one publish each; nodes are idempotent by id), then the schedules."""
        pending = ("queued", "sent", "offline", "timeout")
        for tc in list(self.tracker.commands.values()):
            if tc.expired or not any(d.state in pending for d in tc.deliveries.values()):
                continue
            try:
                if tc.zones or tc.published is None:
                    await self._publish(tc)
                else:
                    await self._publish(tc, only=[n for n, d in tc.deliveries.items() if d.state in pending])
            except ValueError as e:
                # The client refused it (a topic or payload it cannot send): that command fails,
                # not the connection, or every reconnect would fail the same way until it expires.
                log.error("command %s could not be published and is dropped: %s", tc.cmd.id, e)
                now = time.time()
                for d in tc.deliveries.values():
                    if d.state in pending:
                        d.move("error", now, error=f"could not be published: {e}")
                tc.dirty = True
        for node_id, sched in list(self.schedules.items()):
            await self._publish_schedule(node_id, sched)

    def _resend_pending(self, node_id: str) -> None:
        pending = self.tracker.pending_for(node_id)
        if not pending or self.client is None:
            return
        self.stats["resent"] += len(pending)
        for tc in pending:
            asyncio.get_running_loop().create_task(self._publish(tc, only=[node_id]),
                                                   name=f"radio:resend:{node_id}")

    def _republish_schedule(self, node_id: str) -> None:
        sched = self.schedules.get(node_id)
        st = self.registry.nodes.get(node_id)
        if sched is None or self.client is None or (st and st.schedule_version == sched.version):
            return
        asyncio.get_running_loop().create_task(self._publish_schedule(node_id, sched),
                                               name=f"radio:schedule:{node_id}")

    async def publish_schedule(self, node_id: str, sched: p.Schedule) -> None:
        """Publish a node's schedule document (retained); kept and republished after reconnects."""
        self.schedules[node_id] = sched
        if self.client is not None:
            await self._publish_schedule(node_id, sched)

    async def _publish_schedule(self, node_id: str, sched: p.Schedule) -> None:
        if self.client is not None:
            await self.client.publish(p.node_topic(node_id, "schedule"), sched.to_json(), qos=1,
                                      retain=True)

    async def wait(self, command_id: str, until: Any, timeout: float) -> TrackedCommand:
        """Wait until ``until(tc)`` holds or ``timeout`` passes; returns the command as it stands."""
        tc = self.tracker.commands.get(command_id)
        if tc is None:
            raise NotFound(f"command {command_id!r} not found")
        ev = self._reply_waiters.setdefault(command_id, asyncio.Event())
        try:
            async with asyncio.timeout(timeout):
                while not until(tc):
                    ev.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(SWEEP_EVERY):
                            await ev.wait()
        except TimeoutError:
            pass
        finally:
            self._reply_waiters.pop(command_id, None)
        return tc
