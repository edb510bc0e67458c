"""The node registry: which speaker nodes are online, since when, and what they last said.

Online/offline comes from the retained status topic with the node's session
counter (Sparkplug's bdSeq idea): a status whose session is older than the
newest one seen is ignored, so a last will the broker delivers late cannot mark
a reconnected node offline. A node is *stale* when it is online but has sent no
telemetry for ``stale_after`` telemetry intervals (a half-open 4G link).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from netmgr.radio.protocol import Status, Telemetry

# A session is the node's connection counter or its Unix time in milliseconds at connect
# (docs/protocol.md, "Session counter"). Anything further ahead than this of the daemon's clock
# read as milliseconds is not a real session: accepting it would lock the node's real, lower
# sessions out for good (issue 12, item 11).
SESSION_AHEAD_MS = 86_400_000


def session_limit(now: float | None = None) -> int:
    """The highest plausible session now: the daemon's clock in ms plus one day."""
    return int((time.time() if now is None else now) * 1000) + SESSION_AHEAD_MS


def plausible_session(session: int, now: float | None = None) -> bool:
    """True unless ``session`` is more than a day ahead of the clock in milliseconds."""
    return session <= session_limit(now)


@dataclass(slots=True)
class NodeState:
    """What the daemon knows about one node."""

    id: str
    zone: str | None = None        # from the inventory; None: not in the inventory
    online: bool = False
    session: int = -1
    since: float | None = None     # wall time of the last online/offline change
    last_seen: float | None = None  # monotonic time of the last message of any kind
    last_seen_wall: float | None = None
    telemetry: Telemetry | None = None
    telemetry_wall: float | None = None
    fw: str | None = None
    model: str | None = None
    skew_s: float | None = None    # node clock minus ours, from the last timestamped message
    schedule_version: int | None = None
    known_status: bool = False     # False until a status message was seen
    lat: float | None = None       # from the inventory, for the map
    lon: float | None = None

    def status(self, now_mono: float, stale_after: float) -> str:
        """``online``, ``stale``, ``offline`` or ``unknown`` (never heard of)."""
        if not self.known_status and self.telemetry is None:
            return "unknown"
        if not self.online:
            return "offline"
        if self.last_seen is not None and now_mono - self.last_seen > stale_after:
            return "stale"
        return "online"

    def to_dict(self, now_mono: float, stale_after: float) -> dict[str, Any]:
        t = self.telemetry
        return {
            "id": self.id, "zone": self.zone, "status": self.status(now_mono, stale_after),
            "session": self.session if self.session >= 0 else None,
            "since": self.since, "last_seen": self.last_seen_wall, "fw": self.fw, "model": self.model,
            "skew_s": None if self.skew_s is None else round(self.skew_s, 3),
            "schedule_version": self.schedule_version,
            "telemetry": None if t is None else {
                "ts": t.ts, "rssi_dbm": t.rssi_dbm, "volume": t.volume, "playing": t.playing,
                "priority": t.priority, "temperature_c": t.temperature_c, "voltage_v": t.voltage_v,
                "uptime_s": t.uptime_s, "net": t.net, "fw": t.fw},
        }


@dataclass
class Registry:
    """All nodes by id; ``changes`` collects ids whose online state changed since the last take."""

    telemetry_interval: float = 30.0
    stale_after_missed: int = 3
    nodes: dict[str, NodeState] = field(default_factory=dict)
    changes: set[str] = field(default_factory=set)
    _resync_from: float | None = None

    @property
    def stale_after(self) -> float:
        return self.telemetry_interval * self.stale_after_missed

    def node(self, node_id: str) -> NodeState:
        st = self.nodes.get(node_id)
        if st is None:
            st = self.nodes[node_id] = NodeState(node_id)
        return st

    def set_inventory(self, zones: dict[str, str]) -> None:
        """Inventory node id -> zone; nodes gone from the inventory keep their state but lose their zone."""
        for nid, st in self.nodes.items():
            if nid not in zones:
                st.zone = None
        for nid, zone in zones.items():
            self.node(nid).zone = zone

    def _seen(self, st: NodeState, ts: float | None) -> None:
        now = time.time()
        st.last_seen = time.monotonic()
        st.last_seen_wall = now
        if ts is not None:
            st.skew_s = ts - now

    def apply_status(self, node_id: str, msg: Status, *, live: bool = True) -> bool:
        """Apply a status; returns False when it was ignored as older than the current session.
        ``live`` False: a retained status delivered on subscribe (not proof the node is alive)."""
        st = self.node(node_id)
        if msg.session < st.session:
            return False
        if msg.session == st.session and st.known_status and not st.online and msg.online:
            # The same session cannot come back online after its goodbye: a replayed
            # retained birth from before the will. Keep offline.
            return False
        changed = not st.known_status or st.online != msg.online
        st.known_status = True
        st.session = msg.session
        st.online = msg.online
        if msg.fw:
            st.fw = msg.fw
        if msg.model:
            st.model = msg.model
        if changed:
            st.since = time.time()
            self.changes.add(node_id)
        if msg.online and live:
            self._seen(st, msg.ts)
        return True

    def apply_telemetry(self, node_id: str, msg: Telemetry) -> NodeState:
        """Record telemetry; telemetry from a node we think is offline brings it online
        (its birth may have been lost with a broker restart without persistence)."""
        st = self.node(node_id)
        if msg.session is not None and msg.session < st.session:
            return st  # a message from a previous session, delivered late
        if msg.session is not None:
            st.session = msg.session
        if not st.online:
            st.online = True
            st.known_status = True
            st.since = time.time()
            self.changes.add(node_id)
        st.telemetry = msg
        st.telemetry_wall = time.time()
        if msg.fw:
            st.fw = msg.fw
        if msg.schedule_version is not None:
            st.schedule_version = msg.schedule_version
        self._seen(st, msg.ts)
        return st

    def touch(self, node_id: str, ts: float | None) -> None:
        """Any valid message (a reply) shows the node is alive."""
        st = self.node(node_id)
        self._seen(st, ts)

    def begin_resync(self) -> None:
        """After connecting to the broker: nodes not heard live within one telemetry interval
        are marked offline (their will may have been lost with a broker restart). A node that is
        up sends its birth as soon as it reconnects, and telemetry within the interval."""
        self._resync_from = time.monotonic()

    def end_resync(self) -> list[str]:
        """Called periodically; once the resync window has passed, mark the unheard nodes offline."""
        started = getattr(self, "_resync_from", None)
        if started is None or time.monotonic() - started < self.telemetry_interval:
            return []
        self._resync_from = None
        out = []
        for nid, st in self.nodes.items():
            if st.zone is not None and st.online and (st.last_seen is None or st.last_seen < started):
                st.online = False
                st.since = time.time()
                self.changes.add(nid)
                out.append(nid)
        return out

    def take_changes(self) -> set[str]:
        out, self.changes = self.changes, set()
        return out

    def counts(self) -> dict[str, int]:
        now = time.monotonic()
        out = {"online": 0, "stale": 0, "offline": 0, "unknown": 0}
        for st in self.nodes.values():
            if st.zone is not None:
                out[st.status(now, self.stale_after)] += 1
        return out

    def is_online(self, node_id: str) -> bool:
        st = self.nodes.get(node_id)
        return bool(st and st.status(time.monotonic(), self.stale_after) == "online")
