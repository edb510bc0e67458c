"""What the poller holds of each AP between polls (:class:`ApRuntime`, with its reachability
:class:`Reach`): read by the poller, the telemetry points of a poll (netmgr.snmp.points) and the
tests; it knows nothing of how polls are scheduled."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from netmgr.snmp.client import Target
from netmgr.snmp.counters import Sample
from netmgr.snmp.evaluate import PollResult
from netmgr.snmp.profiles import Profile


@dataclass
class Reach:
    """Reachability with hysteresis: down after ``down_after`` misses, up after ``up_after`` successes."""

    status: str = "unknown"
    fails: int = 0
    oks: int = 0
    flaps: int = 0
    since: datetime | None = None

    def update(self, ok: bool, down_after: int, up_after: int, now: datetime) -> str | None:
        """Record one poll; return the new status if it changed."""
        if ok:
            self.fails, self.oks = 0, self.oks + 1
            if self.status != "up" and self.oks >= up_after:
                return self._set("up", now)
        else:
            self.oks, self.fails = 0, self.fails + 1
            if self.status != "down" and self.fails >= down_after:
                return self._set("down", now)
        return None

    def _set(self, status: str, now: datetime) -> str:
        if self.status in ("up", "down"):
            self.flaps += 1
        self.status, self.since = status, now
        return status


@dataclass
class ApRuntime:
    """An AP as the poller holds it between polls."""

    id: int
    name: str
    zone: str
    target: Target
    forced_profile: str | None = None
    profile: Profile | None = None
    reach: Reach = field(default_factory=Reach)
    samples: dict[tuple[int, str], Sample] = field(default_factory=dict)
    restarts_seen: dict[tuple[int, str], float] = field(default_factory=dict)
    result: PollResult | None = None
    rates: dict[int, dict[str, float | None]] = field(default_factory=dict)
    response_ms: float | None = None
    last_poll: datetime | None = None
    last_ok: datetime | None = None
    last_error: str | None = None
    events: list[tuple[datetime, str, str]] = field(default_factory=list)
    dirty: bool = False
    due: float = 0.0
    generation: int = 0
    lat: float | None = None
    lon: float | None = None
