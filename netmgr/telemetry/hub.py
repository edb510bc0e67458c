"""Where points enter the telemetry pipeline: :class:`TelemetryHub`, shared by every service
through the daemon's context (netmgr.runtime.DaemonContext.telemetry); netmgr.telemetry.service
drains it to InfluxDB, the spool and the ring."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from netmgr.telemetry.points import Point


class TelemetryHub:
    """Where points enter the pipeline. ``submit`` is O(points), never blocks, never raises.

    Call it from the daemon's event loop (the poller's and radio's callbacks run there).
    """

    def __init__(self, batch_size: int = 5000, queue_max: int | None = None,
                 overflow_max: int | None = None) -> None:
        self.batch_size = batch_size
        self.queue_max = queue_max or max(50_000, 4 * batch_size)
        self.overflow_max = overflow_max or self.queue_max
        self.queue: deque[Point] = deque()
        self.overflow: deque[Point] = deque()
        self.wake = asyncio.Event()
        self.overflow_wake = asyncio.Event()
        self.submitted = 0
        self.overflowed = 0
        self.dropped = 0

    def submit(self, points: Sequence[Point]) -> None:
        """Queue ``points``; past the queue's bound they overflow (then are dropped, counted)."""
        n = len(points)
        if not n:
            return
        self.submitted += n
        q = self.queue
        room = self.queue_max - len(q)
        if n <= room:
            q.extend(points)
            if len(q) >= self.batch_size:
                self.wake.set()
            return
        if room > 0:
            q.extend(points[:room])
            points = points[room:]
        self.wake.set()
        o = self.overflow
        oroom = self.overflow_max - len(o)
        take = points[:oroom] if oroom > 0 else ()
        o.extend(take)
        self.overflowed += len(take)
        self.dropped += len(points) - len(take)
        self.overflow_wake.set()

    @property
    def depth(self) -> int:
        return len(self.queue) + len(self.overflow)
