"""The telemetry pipeline: a hub the poller and radio submit to, and the ``telemetry`` service.

::

    submit() -> hub queue --collector--encode--> outbox --sender--> InfluxDB --> ring (SQLite)
                   |                                |  (failure, outage, drain)      ^
                   | (full)                         +--> spool (disk) ----------------+
                   \\--overflow--encode--(no ring)---^      \\--replay, oldest first--> InfluxDB

- :meth:`TelemetryHub.submit` never blocks and never raises: points go to a
  bounded in-memory queue; when it is full they go to a second bounded queue
  that is encoded straight to the outbox and from there to InfluxDB or the
  spool (not the ring: the ring is what fell behind); past that they are
  dropped and counted.
- The collector takes up to ``batch_size`` points every ``flush_interval``
  (or as soon as a batch is full) and encodes them once (line protocol).
- A batch goes to the ring (in a thread, by the ring task) only once it is
  handed on: written to InfluxDB or appended to the spool (fsync). So what
  the ring holds has reached InfluxDB or the spool, even when the daemon is
  SIGKILLed: the province scenario (tests/e2e/test_province.py) checks every
  ring point against the database. Without an InfluxDB the ring gets every
  batch at once.
- The sender writes to InfluxDB. The spool is older than the outbox, so while
  the spool holds anything it is replayed first, record by record, in order.
  A failed write starts capped, jittered backoff; during it, every new batch
  goes to the spool at once (crash-safe, memory stays small).
- ``drain()`` (SIGTERM) moves every queued point to the outbox, writes it to
  InfluxDB if that answers within the drain budget, and spools the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from netmgr.errors import SinkRetryable, TelemetryError
from netmgr.runtime import DaemonContext, Service, backoff
from netmgr.telemetry.hub import TelemetryHub
from netmgr.telemetry.lineproto import Encoder
from netmgr.telemetry.points import COMPONENTS, Point, netmgr_point
from netmgr.telemetry.ring import Ring
from netmgr.telemetry.spool import Spool

if TYPE_CHECKING:
    from netmgr.config import InfluxSettings, Settings
    from netmgr.telemetry.sink import InfluxSink

log = logging.getLogger(__name__)

SPOOL_DIR = "telemetry-spool"
RING_FILE = "telemetry.db"
STATS_EVERY = 10.0
PRUNE_EVERY = 60.0
BACKOFF_BASE = 1.0
BACKOFF_MAX = 15.0
ERROR_LOG_EVERY = 60.0
SINK_CLOSE_TIMEOUT = 10.0


class TelemetryService(Service):
    """The daemon's ``telemetry``: ring always, InfluxDB when ``[influxdb] url`` is set, spool between."""

    name = "telemetry"

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        hub = ctx.telemetry
        if hub is None:
            hub = TelemetryHub(ctx.settings.influxdb.batch_size)
            ctx.telemetry = hub
        if not isinstance(hub, TelemetryHub):
            raise TypeError(f"the telemetry service drains a TelemetryHub, not {type(hub).__name__}")
        self.hub: TelemetryHub = hub
        self.settings: InfluxSettings = ctx.settings.influxdb
        self.encoder = Encoder()
        # (line protocol, points in it, the points for the ring once the batch is handed on)
        self.outbox: deque[tuple[bytes, int, list[Point]]] = deque()
        self.ring_queue: deque[list[Point]] = deque()
        self._ring_wake = asyncio.Event()
        self.outbox_points = 0
        self.ring: Ring | None = None
        self.spool: Spool | None = None
        self.sink: InfluxSink | None = None
        self.points_written = 0
        self.points_refused = 0
        self.write_errors = 0
        self.ring_errors = 0
        self.ring_skipped = 0
        self.spool_lost = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._logged: tuple[str, float] = ("", 0.0)
        self._sender_wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def outbox_max(self) -> int:
        return max(2 * self.hub.batch_size, 20_000)

    # ------------------------------------------------------------------ lifecycle

    async def _open_stores(self, settings: Settings) -> None:
        state = settings.daemon.state_dir
        inf = settings.influxdb
        ring_path, spool_dir = state / RING_FILE, state / SPOOL_DIR
        try:
            self.ring = await asyncio.to_thread(Ring(ring_path, inf.ring_hours).open)
        except (OSError, sqlite3.Error) as e:
            raise TelemetryError(f"telemetry: cannot open the ring {ring_path}: {e}; "
                                 "check [daemon] state_dir and its permissions") from None
        try:
            self.spool = await asyncio.to_thread(Spool(spool_dir, inf.spool_max_mb * 2**20).open)
        except OSError as e:
            raise TelemetryError(f"telemetry: cannot open the spool {spool_dir}: {e}; "
                                 "check [daemon] state_dir and its permissions") from None

    async def _make_sink(self, inf: InfluxSettings) -> InfluxSink | None:
        if not inf.url:
            return None
        from netmgr.telemetry.sink import InfluxSink

        return await InfluxSink(inf.url, inf.org, inf.bucket, inf.token.get_secret_value(),
                                learn=self.encoder.learn, api=inf.api, username=inf.username).open()

    async def run(self) -> None:
        settings = self.ctx.settings
        self.settings = settings.influxdb
        try:
            await self._open_stores(settings)
            self.sink = await self._make_sink(self.settings)
            assert self.spool is not None and self.ring is not None
            log.info("telemetry started influxdb=%s ring=%s ring_hours=%d spool_points=%d",
                     self.sink.where if self.sink else "off (SQLite ring only)", self.ring.path,
                     self.settings.ring_hours, self.spool.points)
            self.ready.set()
            async with asyncio.TaskGroup() as tg:
                for name, coro in (("collect", self._collect_loop()), ("overflow", self._overflow_loop()),
                                   ("send", self._send_loop()), ("ring", self._ring_loop()),
                                   ("prune", self._prune_loop()),
                                   ("stats", self._stats_loop())):
                    self._tasks[name] = tg.create_task(coro, name=f"telemetry:{name}")
        finally:
            await self._close()

    async def _close(self) -> None:
        sink, self.sink = self.sink, None
        if sink is not None:
            with contextlib.suppress(Exception):
                await sink.close()
        for store in (self.ring, self.spool):
            if store is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(store.close)

    async def reload(self, settings: Settings) -> None:
        new, old = settings.influxdb, self.settings
        self.hub.batch_size = new.batch_size
        if self.ring is not None:
            self.ring.hours = new.ring_hours
        if self.spool is not None:
            self.spool.max_bytes = new.spool_max_mb * 2**20
        self.settings = new
        if ((new.url, new.api, new.org, new.bucket, new.username, new.token)
                == (old.url, old.api, old.org, old.bucket, old.username, old.token)):
            return
        previous = self.sink
        self.sink = await self._make_sink(new)
        self._failures, self._retry_at = 0, 0.0
        if previous is not None:
            # Closed once a write in flight on it is done; reload does not wait for that.
            task = asyncio.create_task(self._close_sink(previous), name="telemetry:close-sink")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        log.info("telemetry reloaded influxdb=%s", self.sink.where if self.sink else "off (SQLite ring only)")
        self._sender_wake.set()

    async def _close_sink(self, sink: InfluxSink) -> None:
        async with self._write_lock:
            pass  # a write in flight on the old sink is done; later writes use the new one
        try:
            async with asyncio.timeout(SINK_CLOSE_TIMEOUT):
                await sink.close()
        except Exception as e:  # noqa: BLE001 - the old sink is gone either way; never hold the sender
            log.warning("telemetry: closing %s: %s", sink.where, e or type(e).__name__)

    # ------------------------------------------------------------------ collector

    async def _collect_loop(self) -> None:
        hub = self.hub
        while True:
            if len(hub.queue) < hub.batch_size:
                hub.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.flush_interval):
                        await hub.wake.wait()
            await self._collect()

    def _take(self, q: deque[Point]) -> list[Point]:
        n = min(len(q), self.hub.batch_size)
        popleft = q.popleft
        return [popleft() for _ in range(n)]

    async def _collect(self) -> None:
        q = self.hub.queue
        while q:
            self._to_outbox(self._take(q))
            await asyncio.sleep(0)

    def _to_outbox(self, batch: list[Point], ring: bool = True) -> None:
        """Encode for InfluxDB; the ring gets the batch once it is written or spooled (so what the
        ring shows has reached InfluxDB or the spool, even across a SIGKILL)."""
        if self.sink is None:
            if ring:
                self._to_ring(batch)
            return
        payload, n = self.encoder.encode(batch)
        if n:
            self.outbox.append((payload, n, batch if ring else []))
            self.outbox_points += n
            self._sender_wake.set()
        elif ring:
            self._to_ring(batch)

    def _to_ring(self, batch: list[Point]) -> None:
        if batch:
            self.ring_queue.append(batch)
            self._ring_wake.set()

    async def _ring_loop(self) -> None:
        while True:
            await self._ring_wake.wait()
            self._ring_wake.clear()
            while self.ring_queue:
                await self._ring_write(self.ring_queue.popleft())

    async def _ring_write(self, batch: list[Point]) -> None:
        ring = self.ring
        if ring is None:
            return
        try:
            await asyncio.to_thread(ring.write, batch)
        except Exception as e:  # noqa: BLE001 - the ring is a local copy: report, never stop the pipeline
            self.ring_errors += 1
            self._note_error(f"telemetry: writing the ring {ring.path} failed: {e}")

    async def _overflow_loop(self) -> None:
        hub = self.hub
        while True:
            await hub.overflow_wake.wait()
            hub.overflow_wake.clear()
            while hub.overflow:
                batch = self._take(hub.overflow)
                if self.sink is not None:
                    self._to_outbox(batch, ring=False)
                    self.ring_skipped += len(batch)
                else:
                    await self._ring_write(batch)
                await asyncio.sleep(0)

    # ------------------------------------------------------------------ sender

    async def _wait_sender(self, timeout: float | None) -> None:
        self._sender_wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._sender_wake.wait()

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            spool = self.spool
            assert spool is not None
            if self.sink is None:
                await self._spill()  # data kept for an InfluxDB configured later
                await self._wait_sender(None)
                continue
            now = loop.time()
            if self._retry_at > now:
                await self._spill()  # outage: new data to disk at once, memory stays small
                await self._wait_sender(self._retry_at - now)
                continue
            if spool.pending_bytes > 0:
                if self.outbox_points > self.outbox_max:
                    await self._spill()
                rec = await asyncio.to_thread(spool.peek)
                if rec is None:
                    await self._wait_sender(1.0)
                    continue
                if await self._write(rec.data, rec.points):
                    await asyncio.to_thread(spool.commit, rec)
                continue
            if self.outbox:
                k, payload, n = self._coalesce()
                if await self._write(payload, n):
                    for _ in range(k):
                        _, m, points = self.outbox.popleft()
                        self.outbox_points -= m
                        self._to_ring(points)
                else:
                    await self._spill()
                continue
            await self._wait_sender(None)

    def _coalesce(self) -> tuple[int, bytes, int]:
        """The leading outbox batches that fit in one request of ``batch_size`` points: when the
        database answers slower than ``flush_interval`` (influxdb 1.6 on a busy machine took ~1.5 s
        a request in the province scenario), the outbox must not drain one small batch per request."""
        first, n, _ = self.outbox[0]
        parts, k = [first], 1
        while k < len(self.outbox) and n + self.outbox[k][1] <= self.hub.batch_size:
            parts.append(self.outbox[k][0])
            n += self.outbox[k][1]
            k += 1
        return k, (parts[0] if k == 1 else b"\n".join(parts)), n

    def _backoff(self) -> float:
        return backoff(self._failures, BACKOFF_BASE, BACKOFF_MAX)

    async def _write(self, payload: bytes, n: int) -> bool:
        """One batch to InfluxDB; False (and backoff started) if it has to wait."""
        async with self._write_lock:
            sink = self.sink
            if sink is None:
                return False
            try:
                refused = await sink.write(payload)
            except SinkRetryable as e:
                self.write_errors += 1
                self._failures += 1
                delay = self._backoff()
                if e.retry_after:
                    delay = max(delay, min(e.retry_after, 300.0))
                self._retry_at = asyncio.get_running_loop().time() + delay
                self._note_error(f"telemetry: {e}; retrying in {delay:.1f}s, new points go to the spool")
                return False
        if self._failures:
            log.info("telemetry: %s writes again after %d failed attempts; spooled points=%d", sink.where,
                     self._failures, self.spool.points if self.spool else 0)
            self._failures = 0
        self.points_written += n - refused
        self.points_refused += refused
        return True

    async def _spill(self) -> None:
        """Move the whole outbox, in order, to the end of the spool (one fsync)."""
        if not self.outbox or self.spool is None:
            return
        entries = list(self.outbox)
        self.outbox.clear()
        self.outbox_points = 0
        try:
            await asyncio.to_thread(self.spool.append_many, [(payload, n) for payload, n, _ in entries])
        except OSError as e:
            lost = sum(n for _, n, _ in entries)
            self.spool_lost += lost
            self._note_error(f"telemetry: cannot write the spool {self.spool.dir}: {e}; {lost} points lost")
        for _, _, points in entries:
            self._to_ring(points)

    def _note_error(self, message: str) -> None:
        """Remember the error; log it when it changes, and at most once a minute while it repeats."""
        now = time.monotonic()
        self.last_error, self.last_error_at = message, time.time()
        text, at = self._logged
        if message.split("; retrying in")[0] != text.split("; retrying in")[0] or now - at > ERROR_LOG_EVERY:
            log.warning("%s", message)
            self._logged = (message, now)

    # ------------------------------------------------------------------ drain

    async def drain(self) -> None:
        """Flush everything to InfluxDB, or to the spool, within the daemon's drain budget."""
        if self.spool is None:
            return
        loop = asyncio.get_running_loop()
        budget = self.ctx.settings.daemon.drain_timeout
        deadline = loop.time() + max(0.5, budget * 0.75 - 0.5)
        for name in ("collect", "overflow", "send", "ring"):
            task = self._tasks.get(name)
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        batches = []
        for q in (self.hub.queue, self.hub.overflow):
            while q:
                batches.append(self._take(q))
        for batch in batches:
            self._to_outbox(batch)
        if self.sink is not None and self.spool.pending_bytes == 0 and loop.time() >= self._retry_at:
            while self.outbox and loop.time() < deadline:
                k, payload, n = self._coalesce()
                try:
                    async with asyncio.timeout(deadline - loop.time()):
                        ok = await self._write(payload, n)
                except TimeoutError:
                    ok = False
                if not ok:
                    break
                for _ in range(k):
                    _, m, points = self.outbox.popleft()
                    self.outbox_points -= m
                    self._to_ring(points)
        await self._spill()
        while self.ring_queue:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.1, deadline + 1.0 - loop.time())):
                    await self._ring_write(self.ring_queue.popleft())
        log.info("telemetry drained written=%d spooled_points=%d", self.points_written, self.spool.points)

    # ------------------------------------------------------------------ housekeeping

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY)
            if self.ring is not None:
                try:
                    await asyncio.to_thread(self.ring.prune)
                except Exception as e:  # noqa: BLE001 - pruning fails alone; the next round retries
                    self.ring_errors += 1
                    self._note_error(f"telemetry: pruning the ring {self.ring.path} failed: {e}")

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(STATS_EVERY)
            self.hub.submit(self.stats_points(time.time_ns()))

    def points_dropped(self) -> int:
        """Every point that will never reach InfluxDB (or, without one, the ring), whatever the cause."""
        sink_refused = self.points_refused
        spool = self.spool.dropped_points if self.spool else 0
        return self.encoder.points_dropped + self.hub.dropped + sink_refused + spool + self.spool_lost

    def stats_fields(self) -> dict[str, int | float | None]:
        h = self.health()
        return {k: h[k] for k in ("queue_depth", "points_written", "points_dropped", "write_errors",
                                  "spool_bytes", "spool_points")}

    def stats_points(self, ts_ns: int) -> list[Point]:
        """The ``netmgr`` points (every 10 s): one per service with figures (``stats_fields()``)."""
        out = []
        for name, svc in self.ctx.services.items():
            if name not in COMPONENTS:
                continue
            try:
                fields = svc.stats_fields()
            except Exception:  # one broken service must not stop the others' figures
                log.debug("telemetry: no figures from service=%s", name, exc_info=True)
                continue
            if any(v is not None for v in fields.values()):
                out.append(netmgr_point(name, fields, ts_ns))
        return out

    def health(self) -> dict[str, Any]:
        sp = self.spool.stats() if self.spool else {"spool_bytes": 0, "spool_points": 0}
        sink = self.sink
        out: dict[str, Any] = {
            "influxdb": sink.where if sink else "off (SQLite ring only)",
            "queue_depth": self.hub.depth + self.outbox_points,
            "points_submitted": self.hub.submitted,
            "points_written": self.points_written,
            "points_dropped": self.points_dropped(),
            "dropped": {"queue_full": self.hub.dropped, "unencodable": self.encoder.points_dropped,
                        "refused_by_server": self.points_refused,
                        "spool_cap": sp.get("spool_dropped_points", 0), "spool_unwritable": self.spool_lost},
            "write_errors": self.write_errors,
            **sp,
            "ring_points": self.ring.points_written if self.ring else 0,
            "ring_errors": self.ring_errors,
            "ring_skipped": self.ring_skipped,
            "encoder": self.encoder.stats(),
            "last_error": self.last_error,
        }
        if sink is not None:
            out["fields_dropped_by_server"] = sink.fields_dropped
        return out
