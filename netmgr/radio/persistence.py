"""Where the radio service keeps what must outlive it: the speaker inventory it reads, the node
states (session counters above all: a late will must never win after a restart) and the command
deliveries it writes. :class:`SqlRadioStore` is the daemon's (the state store);
:class:`MemoryRadioStore` serves tests and benchmarks that run the service without a daemon.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from netmgr.radio.commands import Delivery, TrackedCommand
from netmgr.radio.registry import NodeState


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
