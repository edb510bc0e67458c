"""Command tracking: every command's state per target node, with the time each state was reached.

States of one node's delivery of one command::

    queued -> sent -> accepted -> playing -> done
                  \\-> error | expired
    offline, timeout: not final; a later reply moves the delivery on (``offline`` is final once the
    command has expired: the node never got it, and reports say so)

``offline`` marks a node that was offline when the command went out (it gets
the command when it comes back, if it has not expired); ``timeout`` a node
that was online but did not accept within the ack timeout. States only move
forward (a late ``accepted`` after ``done`` is ignored), so replies delivered
twice or out of order cannot move a delivery back.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from netmgr.radio.protocol import Command, Reply

RANK = {"queued": 0, "offline": 1, "sent": 1, "timeout": 2, "accepted": 3, "playing": 4,
        "done": 5, "error": 5, "expired": 5}
FINAL = frozenset({"done", "error", "expired"})
COMPACT_AFTER = 120.0  # seconds after expiry: a finished command keeps only its non-final deliveries


def new_command_id() -> str:
    """A short unique id: time-ordered prefix (sorts by issue time) + randomness."""
    return f"c{int(time.time() * 1000):x}-{secrets.token_hex(4)}"


@dataclass(slots=True)
class Delivery:
    """One node's progress on one command."""

    node_id: str
    state: str = "queued"
    times: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    dirty: bool = True

    def move(self, state: str, ts: float | None = None, *, error: str | None = None,
             data: dict[str, Any] | None = None) -> bool:
        """Move forward to ``state``; returns False (and changes nothing) if that is not forward."""
        if self.state in FINAL or RANK[state] < RANK[self.state]:
            return False
        if RANK[state] == RANK[self.state] and state == self.state:
            return False
        self.state = state
        self.times.setdefault(state, time.time() if ts is None else ts)
        if error is not None:
            self.error = error
        if data:
            self.data.update(data)
        self.dirty = True
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node_id, "state": self.state, "error": self.error, "data": self.data,
                "times": {k: _iso(v) for k, v in self.times.items()}}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class TrackedCommand:
    """A command and its deliveries; ``zones`` non-empty means it went out on zone topics."""

    cmd: Command
    nodes: list[str]
    zones: list[str]
    issued_by: str = ""
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    published: float | None = None    # monotonic time of the first publish
    published_wall: float | None = None
    first_ack: float | None = None    # monotonic time of the first accepted (or done)
    dirty: bool = True
    # Final deliveries dropped from memory once stored (Tracker.sweep): their count by state.
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_accept_s: list[float] = field(default_factory=list)  # their accept latencies, for reports

    @property
    def total(self) -> int:
        return len(self.deliveries) + sum(self.dropped.values())

    @property
    def expired(self) -> bool:
        return time.time() >= self.cmd.expires

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = dict(self.dropped)
        for d in self.deliveries.values():
            out[d.state] = out.get(d.state, 0) + 1
        return out

    @property
    def complete(self) -> bool:
        """Every target answered for good; after expiry a node that stayed offline is final too."""
        expired = self.expired
        return all(d.state in FINAL or (expired and d.state == "offline") for d in self.deliveries.values())

    def to_dict(self, *, deliveries: bool = True) -> dict[str, Any]:
        c = self.cmd
        out: dict[str, Any] = {
            "id": c.id, "method": c.method, "params": c.params, "priority": c.priority,
            "issued": _iso(c.issued), "expires": _iso(c.expires), "issued_by": self.issued_by,
            "targets": {"nodes": self.nodes, "zones": self.zones},
            "published": _iso(self.published_wall) if self.published_wall else None,
            "total": self.total, "summary": self.summary(), "complete": self.complete,
        }
        if deliveries:
            out["deliveries"] = [d.to_dict() for d in sorted(self.deliveries.values(),
                                                              key=lambda d: d.node_id)]
        return out


class Tracker:
    """Commands in flight and recently finished, by id; replies are matched here."""

    def __init__(self, keep_s: float = 3600.0, ack_timeout: float = 10.0,
                 compact_after: float = COMPACT_AFTER) -> None:
        self.commands: dict[str, TrackedCommand] = {}
        self.keep_s = keep_s
        self.ack_timeout = ack_timeout
        self.compact_after = compact_after

    def add(self, tc: TrackedCommand) -> None:
        for n in tc.nodes:
            tc.deliveries.setdefault(n, Delivery(n))
        self.commands[tc.cmd.id] = tc

    def on_reply(self, node_id: str, reply: Reply) -> str:
        """Apply a node's reply. Returns ``ok``, ``unknown`` (no such command), ``stranger``
        (the node is not a target) or ``stale`` (not a forward move)."""
        tc = self.commands.get(reply.id)
        if tc is None:
            return "unknown"
        d = tc.deliveries.get(node_id)
        if d is None:
            # A final delivery dropped from memory (stored): a repeated reply, nothing moves.
            return "stale" if tc.dropped and node_id in tc.nodes else "stranger"
        state = reply.status
        error = reply.error
        if state == "error" and error and error.startswith("expired"):
            state = "expired"
        ts = time.time()  # our clock: node clocks may be skewed; theirs is kept in data
        data = {"node_ts": reply.ts} if reply.ts is not None else {}
        if reply.data:
            data.update(reply.data)
        if state in ("accepted", "playing", "done") and "accepted" not in d.times:
            d.times["accepted"] = ts  # a node that answers "done" at once has accepted too
        moved = d.move(state, ts, error=error, data=data)
        if moved:
            tc.dirty = True
            if state in ("accepted", "playing", "done") and tc.first_ack is None:
                tc.first_ack = time.monotonic()
        return "ok" if moved else "stale"

    def pending_for(self, node_id: str) -> list[TrackedCommand]:
        """Unexpired commands the node has not accepted: resent when the node comes (back) online."""
        now = time.time()
        out = []
        for tc in self.commands.values():
            d = tc.deliveries.get(node_id)
            if d is not None and now < tc.cmd.expires and d.state in ("queued", "sent", "offline", "timeout"):
                out.append(tc)
        return out

    def sweep(self) -> list[TrackedCommand]:
        """Expire what ran out of time, time out silent online nodes, forget old finished commands.
        Returns the commands that changed."""
        now = time.time()
        mono = time.monotonic()
        changed = []
        for cid in list(self.commands):
            tc = self.commands[cid]
            moved = False
            if now >= tc.cmd.expires:
                for d in tc.deliveries.values():
                    if d.state == "offline":
                        # Reported as offline (what happened), not as expired; final from now on.
                        if d.error is None:
                            d.error = "offline until the command expired"
                            d.dirty = moved = True
                    elif d.state in ("queued", "sent", "timeout"):
                        moved |= d.move("expired", now, error="expired before the node accepted it")
            if tc.published is not None and mono - tc.published > self.ack_timeout:
                for d in tc.deliveries.values():
                    if d.state == "sent":
                        moved |= d.move("timeout", now)
            if moved:
                tc.dirty = True
                changed.append(tc)
            if tc.complete and not tc.dirty and now - tc.cmd.expires > self.keep_s:
                del self.commands[cid]
            elif tc.complete and not tc.dirty and now - tc.cmd.expires > self.compact_after:
                self._compact(tc)
        return changed

    @staticmethod
    def _compact(tc: TrackedCommand) -> None:
        """Drop the stored final deliveries of a finished command; keep the nodes that were offline
        (one may still report a playback from its cached schedule). A program every minute to
        1,000 nodes kept ~1 MB a minute for ``keep_s`` (the province soak's RSS growth)."""
        gone = [n for n, d in tc.deliveries.items() if d.state in FINAL and not d.dirty]
        for n in gone:
            d = tc.deliveries.pop(n)
            tc.dropped[d.state] = tc.dropped.get(d.state, 0) + 1
            if "accepted" in d.times and tc.published_wall:
                tc.dropped_accept_s.append(d.times["accepted"] - tc.published_wall)

    def accept_latencies(self, tc: TrackedCommand) -> list[float]:
        """Seconds from the publish to each node's accept, dropped deliveries included; sorted."""
        live = [d.times["accepted"] - tc.published_wall for d in tc.deliveries.values()
                if "accepted" in d.times and tc.published_wall]
        return sorted(live + tc.dropped_accept_s)
