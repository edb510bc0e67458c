"""Where the radio service keeps what must outlive it: the speaker inventory it reads, the node
states (session counters above all: a late will must never win after a restart) and the command
deliveries it writes. :class:`SqlRadioStore` is the daemon's (the state store);
:class:`MemoryRadioStore` serves tests and benchmarks that run the service without a daemon.
:class:`StateSync` moves state between the service's memory and either store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from netmgr.radio.commands import Delivery, TrackedCommand, Tracker
from netmgr.radio.registry import NodeState, Registry, plausible_session

log = logging.getLogger(__name__)

INVENTORY_EVERY = 15.0  # the inventory is read again this often (and a second after a change)
FRESH_FOR = 2.0  # a command resolves its targets on an inventory at most this old
STATE_WRITE_EVERY = 30.0  # a node's row is rewritten at most this often unless it changes state


@dataclass(frozen=True, slots=True)
class SpeakerRow:
    """A speaker of the inventory."""

    id: str
    zone: str
    lat: float | None = None
    lon: float | None = None


@dataclass(slots=True)
class StoredState:
    """A node's state as the store keeps it between runs."""

    node_id: str
    online: bool
    session: int
    since: datetime | None = None
    last_seen: datetime | None = None
    fw: str | None = None
    schedule_version: int | None = None
    telemetry: dict[str, Any] | None = None


# What a flush hands the store: node states (with their telemetry as shown) and commands with
# the deliveries that changed.
NodeWrite = tuple[NodeState, dict[str, Any]]
CommandWrite = tuple[TrackedCommand, list[Delivery]]


class RadioStore(Protocol):
    """The radio service's storage."""

    async def speakers(self) -> list[SpeakerRow] | None:
        """The inventory; None when the store does not own it (it was given to the service)."""

    async def states(self) -> Iterable[Any]:
        """The stored node states (attributes of :class:`StoredState`)."""

    async def write(self, nodes: list[NodeWrite], commands: list[CommandWrite]) -> None:
        """Write node states and command deliveries, all or nothing."""


def _dt(t: float | None) -> datetime | None:
    return datetime.fromtimestamp(t, UTC) if t is not None else None


def stored_state(st: NodeState, telemetry: dict[str, Any]) -> StoredState:
    """The stored form of a node's live state."""
    return StoredState(st.id, st.online, max(st.session, -1), _dt(st.since), _dt(st.last_seen_wall), st.fw,
                       st.schedule_version, telemetry or {})


def delivery_times(d: Delivery) -> dict[str, str]:
    return {k: _dt(v).isoformat() for k, v in d.times.items()}  # type: ignore[union-attr]


class SqlRadioStore:
    """The daemon's state store (SQLite or PostgreSQL) through its session factory."""

    def __init__(self, sessions: Callable[[], Any]) -> None:
        self.sessions = sessions

    async def speakers(self) -> list[SpeakerRow]:
        from sqlalchemy import select

        from netmgr.store.models import Speaker

        async with self.sessions() as s:
            rows = (await s.execute(select(Speaker.id, Speaker.zone, Speaker.lat, Speaker.lon))).all()
        return [SpeakerRow(*r) for r in rows]

    async def states(self) -> list[Any]:
        from sqlalchemy import select

        from netmgr.store.models import SpeakerState

        async with self.sessions() as s:
            return list(await s.scalars(select(SpeakerState)))

    async def write(self, nodes: list[NodeWrite], commands: list[CommandWrite]) -> None:
        async with self.sessions() as s:
            await self._write_states(s, nodes)
            for tc, dirty in commands:
                await self._write_command(s, tc, dirty)
            await s.commit()

    @staticmethod
    async def _write_states(s: Any, nodes: list[NodeWrite]) -> None:
        from sqlalchemy import select

        from netmgr.store.models import SpeakerState

        if not nodes:
            return
        # One query per table for the rows that exist (not one per node: 2,000 replies to a zone
        # command are flushed at once, and the store's writer lock is held meanwhile).
        have = {r.node_id: r for r in await s.scalars(select(SpeakerState).where(
            SpeakerState.node_id.in_([st.id for st, _ in nodes])))}
        for st, telemetry in nodes:
            v = stored_state(st, telemetry)
            row = have.get(st.id) or SpeakerState(node_id=st.id)
            row.online, row.session, row.since, row.last_seen = v.online, v.session, v.since, v.last_seen
            row.fw, row.schedule_version, row.telemetry = v.fw, v.schedule_version, v.telemetry
            s.add(row)

    @staticmethod
    async def _write_command(s: Any, tc: TrackedCommand, dirty: list[Delivery]) -> None:
        from sqlalchemy import select

        from netmgr.store.models import Command, CommandDelivery

        c = tc.cmd
        if await s.get(Command, c.id) is None:
            s.add(Command(id=c.id, method=c.method, params=c.params, priority=c.priority,
                          issued=_dt(c.issued), expires=_dt(c.expires),
                          targets={"nodes": tc.nodes if not tc.zones else [], "zones": tc.zones},
                          issued_by=tc.issued_by))
            await s.flush()
        if not dirty:
            return
        have = {r.node_id: r for r in await s.scalars(select(CommandDelivery).where(
            CommandDelivery.command_id == c.id, CommandDelivery.node_id.in_([d.node_id for d in dirty])))}
        for d in dirty:
            row = have.get(d.node_id) or CommandDelivery(command_id=c.id, node_id=d.node_id)
            row.state, row.error, row.data = d.state, d.error, dict(d.data)
            row.times = delivery_times(d)
            row.updated = datetime.now(UTC)
            s.add(row)


class MemoryRadioStore:
    """Keeps everything in dicts: the radio service without a daemon (tests, benchmarks).

    ``inventory`` (node id -> zone), when given, is the inventory; without it the store owns
    none and the service's registry keeps whatever it was given.
    """

    def __init__(self, inventory: dict[str, str] | None = None) -> None:
        self.inventory = inventory
        self.saved_states: dict[str, StoredState] = {}
        self.commands: dict[str, dict[str, Any]] = {}  # command id -> {"targets", "deliveries": {node: ...}}

    async def speakers(self) -> list[SpeakerRow] | None:
        if self.inventory is None:
            return None
        return [SpeakerRow(nid, zone) for nid, zone in self.inventory.items()]

    async def states(self) -> list[StoredState]:
        return list(self.saved_states.values())

    async def write(self, nodes: list[NodeWrite], commands: list[CommandWrite]) -> None:
        for st, telemetry in nodes:
            self.saved_states[st.id] = stored_state(st, telemetry)
        for tc, dirty in commands:
            entry = self.commands.setdefault(tc.cmd.id, {"method": tc.cmd.method, "deliveries": {}})
            for d in dirty:
                entry["deliveries"][d.node_id] = {"state": d.state, "error": d.error,
                                                  "times": delivery_times(d)}


class StateSync:
    """Between the registry and tracker in memory and the :class:`RadioStore`: reads the inventory
    (and, once, the sessions nodes last had), writes what changed. A flush that fails marks
    everything it held changed again, so the next one writes it."""

    def __init__(self, store: RadioStore, registry: Registry, tracker: Tracker) -> None:
        self.store, self.registry, self.tracker = store, registry, tracker
        self.loaded_at = 0.0  # monotonic time of the last inventory read
        self.dirty = False  # the inventory changed: read it again soon
        self._sessions_loaded = False
        self._state_written: dict[str, float] = {}

    async def load_inventory(self) -> None:
        """Node id -> zone from the store, and the last known sessions (once, at start)."""
        self.loaded_at = time.monotonic()
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

    async def fresh_inventory(self, max_age: float = FRESH_FOR) -> None:
        """Read the inventory again unless it was read less than ``max_age`` seconds ago."""
        if time.monotonic() - self.loaded_at > max_age:
            await self.load_inventory()

    def reload_due(self) -> bool:
        """Time for the periodic re-read, or a second after someone said it changed."""
        age = time.monotonic() - self.loaded_at
        if age > INVENTORY_EVERY or (self.dirty and age > 1.0):
            self.dirty = False
            return True
        return False

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
        """Write changed node states and command deliveries, in one transaction."""
        now = time.monotonic()
        changed = self.registry.take_changes()
        nodes = [st for nid, st in self.registry.nodes.items() if self._due(nid, st, changed, now)]
        cmds = [tc for tc in self.tracker.commands.values() if tc.dirty]
        if not nodes and not cmds:
            return
        writes = [(st, st.to_dict(now, self.registry.stale_after)["telemetry"] or {}) for st in nodes]
        deliveries = [(tc, [d for d in tc.deliveries.values() if d.dirty]) for tc in cmds]
        _mark(deliveries, False)
        try:
            await self.store.write(writes, deliveries)
        except BaseException:
            self.registry.changes.update(changed)  # try again next flush
            _mark(deliveries, True)
            raise
        for st in nodes:
            self._state_written[st.id] = now

    def _due(self, nid: str, st: NodeState, changed: set[str], now: float) -> bool:
        """Whether a node's state is to be written: it changed, or its telemetry is older in the
        store than STATE_WRITE_EVERY (nodes no longer in the inventory are not written)."""
        if st.zone is None:
            return False
        return nid in changed or (st.telemetry_wall is not None and
                                  now - self._state_written.get(nid, -STATE_WRITE_EVERY) >= STATE_WRITE_EVERY)


def _mark(deliveries: list[CommandWrite], dirty: bool) -> None:
    for tc, ds in deliveries:
        tc.dirty = dirty
        for d in ds:
            d.dirty = dirty
