"""The daemon's ``scheduler`` service: programs to occurrences, schedules to nodes, delivery records.

- Every node holds its next 48 hours (``node/{id}/schedule``, retained, versioned), recomputed
  when programs or the inventory change and every few minutes as the window slides; the radio
  service republishes it when a node reconnects without having acked the version.
- At each occurrence's start the scheduler also confirms by command: a ``play`` whose id is the
  occurrence id (``p12-20261130T230000Z``) with ``params.item`` the same id, to the program's
  zones (one publish each) and speakers. Nodes already playing the item from their schedule
  answer with their state; per-node states are the command's deliveries.
- Restart safety: an occurrence is written (state ``sending``) and committed *before* it is
  published, so a daemon killed at any point never sends it twice as a new occurrence; on
  start, ``sending`` rows are published again (nodes are idempotent by id, so none plays twice),
  and occurrences that fell into the downtime go out late (``late``) if they started less than
  ``[broadcast] grace`` ago, else they are recorded ``missed`` and logged.
- Several daemons on one PostgreSQL store: only the holder of the scheduler lock
  (:class:`netmgr.store.leader.LeaderLock`) sends commands and schedules and writes occurrences;
  the others are standbys. Gaining the lock is handled like a start (the catch-up above, and every
  node's schedule sent again); losing it stops all sending at once. Programs changed through
  another daemon's API reach the leader by a NOTIFY on ``netmgr_scheduler`` (and a reload every
  ``RELOAD_EVERY`` seconds in case one is missed). On SQLite the daemon is always the leader.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from netmgr.errors import NetmgrError
from netmgr.radio.service import RadioService
from netmgr.runtime import DaemonContext, Service, every, log_failure

log = logging.getLogger(__name__)

TICK = 1.0
SCHEDULE_EVERY = 300.0   # the 48 h window slides: recompute node schedules this often at least
LATE_AFTER = 10.0        # an occurrence sent this long after its start is recorded late
CATCH_UP = timedelta(hours=24)  # how far back a restart looks for occurrences it missed
OUTCOME_EVERY = 5.0       # how often occurrence outcomes are written to telemetry (when they change)
RELOAD_EVERY = 30.0       # on a shared store, programs are re-read this often (another daemon's API)
CHANNEL = "netmgr_scheduler"  # NOTIFY channel: "programs changed" between daemons sharing a store


async def _logged_failure(coro: Awaitable[Any], what: str) -> None:
    """Run one round of a loop; a failure is logged (netmgr.runtime.log_failure) and the loop
    goes on."""
    try:
        await coro
    except Exception as e:  # noqa: BLE001 - log_failure logs a bug with its traceback
        log_failure(log, what, e)


def utcnow() -> datetime:
    return datetime.now(UTC)


class SchedulerService(Service):
    """See the module docstring."""

    name = "scheduler"

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        self.programs: dict[int, Any] = {}      # id -> Program (not cancelled)
        self.index: Any = None                  # ZoneIndex of the inventory
        self.handled: dict[str, str] = {}       # occurrence id -> state, recent ones
        self.last_tick: datetime | None = None
        self.published: dict[str, str] = {}     # node -> hash of the schedule items it was sent
        self._dirty = True
        self.stats = {"sent": 0, "late": 0, "missed": 0, "resent": 0, "schedules": 0}
        self.zones: dict[int, str] = {}        # program id -> owning zone (for telemetry)
        self.outcomes: dict[str, tuple[Any, datetime, bool, tuple[int, ...] | None]] = {}
        self.grace = timedelta(seconds=ctx.settings.broadcast.grace)
        self._changed = False
        self._wake = asyncio.Event()
        self._schedules_due = asyncio.Event()
        self.lock: Any = None                   # LeaderLock while running
        self._token = secrets.token_hex(8)      # our NOTIFY payload: our own notifications are ignored
        self._notifies: set[asyncio.Task[None]] = set()
        self._was_leader = False

    # ------------------------------------------------------------------ loading

    def radio(self) -> RadioService | None:
        """The radio service of this daemon (used through its public methods only)."""
        svc = self.ctx.services.get("radio")
        return svc if isinstance(svc, RadioService) else None

    def media_url(self, media_id: str) -> str:
        api = self.ctx.settings.api
        base = api.public_url.rstrip("/") or f"http://{api.host}:{api.port}"
        return f"{base}/media/{media_id}"

    async def load(self) -> None:
        """Programs (not cancelled) and the zone index from the store."""
        from sqlalchemy import select

        from netmgr.broadcast.model import Program
        from netmgr.broadcast.planner import ZoneIndex
        from netmgr.store.models import ProgramRow, Speaker

        async with self.ctx.sessions() as s:
            rows = list(await s.scalars(select(ProgramRow).where(ProgramRow.cancelled_at.is_(None))))
            speakers = (await s.execute(select(Speaker.id, Speaker.zone))).all()
        programs = {}
        self.zones = {r.id: r.zone for r in rows}
        for r in rows:
            try:
                programs[r.id] = Program.model_validate({**r.data, "id": r.id})
            except ValueError as e:  # a stored program that no longer validates: say so, skip it
                log.error("program %s cannot be loaded and is skipped: %s", r.id, e)
        zones: dict[str, list[str]] = {}
        for nid, zone in speakers:
            zones.setdefault(zone, []).append(nid)
        self.programs = programs
        self.index = ZoneIndex(zones)
        self._dirty = True

    def changed(self) -> None:
        """Programs or the inventory changed (the API calls this): reload, resend schedules, and
        handle what is due now at once. On a shared store the other daemons are told too (the
        leader may be another one)."""
        self._changed = True
        self._wake.set()
        if self.lock is not None and self.lock.shared:
            task = asyncio.get_running_loop().create_task(self._notify(), name="scheduler:notify")
            self._notifies.add(task)
            task.add_done_callback(self._notifies.discard)

    async def _notify(self) -> None:
        from sqlalchemy import text

        try:
            async with self.ctx.engine.begin() as c:  # delivered to the listeners when this commits
                await c.execute(text("SELECT pg_notify(:ch, :me)"), {"ch": CHANNEL, "me": self._token})
        except Exception as e:  # noqa: BLE001 - the leader re-reads the programs within RELOAD_EVERY anyway
            log.warning("scheduler: telling the other daemons that programs changed failed (they re-read "
                        "them within %.0f s): %s", RELOAD_EVERY, e)

    def _remote_change(self, payload: str) -> None:
        """Another daemon's API changed the programs (a NOTIFY on our lock's connection)."""
        if payload != self._token:
            self._changed = True
            self._wake.set()

    async def _reload_due(self) -> None:
        self._changed = True
        self._wake.set()

    async def _load_handled(self, since: datetime) -> None:
        from sqlalchemy import select

        from netmgr.store.models import OccurrenceRow

        async with self.ctx.sessions() as s:
            rows = (await s.execute(select(OccurrenceRow.id, OccurrenceRow.state)
                                    .where(OccurrenceRow.start >= since))).all()
        self.handled = {r[0]: r[1] for r in rows}

    # ------------------------------------------------------------------ supervision

    @property
    def leading(self) -> bool:
        """Whether this daemon schedules (holds the scheduler lock; always on SQLite)."""
        return self.lock is None or self.lock.is_leader

    async def run(self) -> None:
        from netmgr.store.leader import LeaderLock

        await self.load()  # a standby needs the programs too (`media rm` asks what still plays a media)
        self.lock = LeaderLock(self.ctx.settings.database_url, on_change=self._leadership, listen=CHANNEL,
                               on_notify=self._remote_change)
        self._was_leader = False
        async with self.lock:
            await self.lock.wait_decided()
            log.info("scheduler started programs=%d speakers=%d", len(self.programs),
                     len(self.index.speakers))
            async with asyncio.TaskGroup() as tg:
                tg.create_task(every(OUTCOME_EVERY, self.emit_outcomes, "writing broadcast telemetry", log),
                               name="scheduler:outcomes")
                if self.lock.shared:
                    tg.create_task(every(RELOAD_EVERY, self._reload_due, "re-reading programs", log),
                                   name="scheduler:reload")
                while True:
                    if self.lock.is_leader:
                        await _until(self._lead(), self.lock.wait_standby)
                    else:
                        await _until(self._standby(), self.lock.wait_leader)

    def _leadership(self, lock: Any) -> None:
        """The lock's status changed: one log line, and nothing more goes out from here once it is lost."""
        from netmgr.store.leader import HELD, LEADER, STOPPED

        was, self._was_leader = self._was_leader, lock.is_leader
        if lock.status == LEADER:
            if lock.shared:
                log.info("scheduler: leader (lock on %s)", lock.where)
            return
        if was and lock.shared:
            radio = self.radio()
            if radio is not None:  # else it republishes our copies to reconnecting nodes: the new
                radio.forget_schedules()  # leader's are the ones that count
        if lock.status == STOPPED:
            if was and lock.shared:
                log.info("scheduler: stopped; the scheduler lock on %s is free for another daemon",
                         lock.where)
            return
        lost = "lost the lock, sending nothing more; " if was else ""
        if lock.status == HELD:
            log.info("scheduler: %sstandby (another daemon holds the scheduler lock on %s)", lost, lock.where)
        else:
            log.warning("scheduler: %sstandby (database %s unreachable: %s)", lost, lock.where, lock.error)

    async def _lead(self) -> None:
        """Leader: what a start does (catch-up, every node's schedule), then schedule until cancelled."""
        await self.load()
        now = utcnow()
        await self._load_handled(now - CATCH_UP - timedelta(hours=1))
        self.published = {}  # nodes may hold another leader's documents: send ours to every node
        await self.catch_up(now)
        self.last_tick = now
        self.ready.set()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._tick_loop(), name="scheduler:tick")
            tg.create_task(self._schedules_loop(), name="scheduler:schedules")
            tg.create_task(every(SCHEDULE_EVERY, self._mark_dirty, "sliding the schedule window", log),
                           name="scheduler:window")

    async def _standby(self) -> None:
        """Standby: keep the programs current (woken by changes), send nothing."""
        self.ready.set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._changed:
                self._changed = False
                await _logged_failure(self.load(), "reading programs")

    async def _tick_loop(self) -> None:
        """A tick every second, or at once when woken (a `broadcast now` must not wait for it)."""
        while True:
            try:
                async with asyncio.timeout(TICK):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            await _logged_failure(self.tick(), "scheduling occurrences")

    async def _schedules_loop(self) -> None:
        while True:
            await self._schedules_due.wait()
            self._schedules_due.clear()
            self._dirty = False
            await _logged_failure(self.publish_schedules(utcnow()), "publishing node schedules")

    async def _mark_dirty(self) -> None:
        self._dirty = True

    async def reload(self, settings: Any) -> None:
        self.grace = timedelta(seconds=settings.broadcast.grace)
        self._changed = True

    async def drain(self) -> None:
        """Stopping: give the lock up now, so a standby daemon takes over while we finish."""
        if self.lock is not None and self.lock.shared:
            await self.lock.stop()

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"programs": len(self.programs), **self.stats}
        lock = self.lock
        if lock is not None:
            out["role"] = "leader" if lock.is_leader else "standby"
            out["leadership"] = lock.status
            out["lock"] = lock.where if lock.shared else "none (SQLite: one daemon)"
            if lock.error:
                out["lock_error"] = lock.error
        return out

    def media_in_use(self, media_id: str) -> bool | str:
        """What still plays this media (the API refuses `media rm` then), or False."""
        for prog in self.programs.values():
            if getattr(prog.content, "media_id", None) == media_id:
                return f"program {prog.id} {prog.title!r} ({prog.describe_when()}); cancel it first"
        return False

    # ------------------------------------------------------------------ occurrences

    def due(self, start: datetime, end: datetime) -> list[tuple[Any, datetime]]:
        """(program, occurrence start) for every occurrence starting in ``(start, end]``."""
        out = []
        for prog in self.programs.values():
            for occ in prog.occurrences(start, end + timedelta(seconds=1)):
                if start < occ <= end:
                    out.append((prog, occ))
        out.sort(key=lambda x: (x[1], -x[0].rank, x[0].id))
        return out

    async def catch_up(self, now: datetime) -> None:
        """After a start: re-send what was being sent, and handle what fell into the downtime."""
        from sqlalchemy import select

        from netmgr.store.models import OccurrenceRow

        async with self.ctx.sessions() as s:
            sending = list(await s.scalars(select(OccurrenceRow).where(OccurrenceRow.state == "sending")))
        for row in sending:
            prog = self.programs.get(row.program_id)
            if prog is not None and row.end.replace(tzinfo=UTC) > now:
                self.stats["resent"] += 1
                start = row.start.replace(tzinfo=UTC)
                await self._publish(prog, start, row.id, now)
                self.outcomes[row.id] = (prog, start, "late" in row.detail, None)
        for prog, start in self.due(now - CATCH_UP, now):
            oid = occurrence_id(prog, start)
            if oid in self.handled:
                continue
            if not self.leading:
                return
            if now - start <= self.grace:
                await self.fire(prog, start, now)
            else:
                await self._record(prog, start, "missed", None,
                                   f"the daemon was not running at {start:%Y-%m-%d %H:%M}Z "
                                   f"(grace {self.grace.total_seconds():.0f} s)")
                self.stats["missed"] += 1
                log.warning("occurrence missed program=%s occurrence=%s started=%s: the daemon was down "
                            "past the grace period", prog.id, oid, start.isoformat())

    async def tick(self) -> None:
        now = utcnow()
        last = self.last_tick or now
        if self._changed:
            self._changed = False
            await self.load()
            # A program just created may start "now", i.e. a moment before this tick's window:
            # look back over the grace period (occurrences already handled are skipped).
            last = min(last, now - self.grace)
        for prog, start in self.due(last, now):
            if occurrence_id(prog, start) not in self.handled:
                await self.fire(prog, start, now)
        self.last_tick = now
        if self._dirty:
            self._schedules_due.set()  # published by their own loop: a tick never waits for them

    async def fire(self, prog: Any, start: datetime, now: datetime) -> None:
        """Record, then publish the confirming command of one occurrence."""
        if not self.leading:
            return
        oid = occurrence_id(prog, start)
        late = (now - start).total_seconds() > LATE_AFTER
        await self._record(prog, start, "sending", now, "late" if late else "")
        if not self.leading:  # lost the lock meanwhile: the next leader re-sends what is `sending`
            return
        ok = await self._publish(prog, start, oid, now)
        self.outcomes[oid] = (prog, start, late, None)
        state = ("late" if late else "sent") if ok else "sending"
        await self._set_state(oid, state)
        self.stats["late" if late else "sent"] += 1
        if late:
            log.warning("occurrence sent late program=%s occurrence=%s by %.0fs", prog.id, oid,
                        (now - start).total_seconds())

    async def _publish(self, prog: Any, start: datetime, oid: str, now: datetime) -> bool:
        from netmgr.broadcast.schedule import content_url

        if not self.leading:
            return False
        radio = self.radio()
        url = content_url(prog, self.media_url)
        end = start + timedelta(seconds=prog.duration_s)
        if radio is None or url is None:
            log.error("occurrence %s not confirmed by command: %s", oid,
                      "the radio service is not running" if radio is None else "its audio is not ready")
            return False
        remaining = max(1.0, (end - now).total_seconds())
        params = {"url": url, "duration_s": round(remaining, 1), "item": oid, "title": prog.title[:200],
                  "volume": prog.volume}
        if radio.command(oid) is not None:
            return True
        try:
            await radio.issue("play", params, nodes=list(prog.targets.speakers),
                              zones=list(prog.targets.zones), priority=prog.priority.value, ttl=remaining,
                              issued_by=f"scheduler:{prog.id}", command_id=oid)
        except NetmgrError as e:
            log.error("occurrence %s: %s", oid, e)
            return False
        return True

    async def _record(self, prog: Any, start: datetime, state: str, sent_at: datetime | None,
                      detail: str) -> None:
        from netmgr.store.models import OccurrenceRow

        oid = occurrence_id(prog, start)
        targets = len(self.index.resolve(prog.targets, strict=False)) if self.index else 0
        async with self.ctx.sessions() as s:
            row = await s.get(OccurrenceRow, oid)
            if row is None:
                s.add(OccurrenceRow(id=oid, program_id=prog.id, start=start,
                                    end=start + timedelta(seconds=prog.duration_s), state=state,
                                    sent_at=sent_at, targets=targets, detail=detail))
            else:
                row.state, row.sent_at, row.detail = state, sent_at, detail
            await s.commit()
        self.handled[oid] = state

    async def _set_state(self, oid: str, state: str) -> None:
        from netmgr.store.models import OccurrenceRow

        async with self.ctx.sessions() as s:
            row = await s.get(OccurrenceRow, oid)
            if row is not None:
                row.state = state
                await s.commit()
        self.handled[oid] = state

    async def emit_outcomes(self) -> None:
        """A ``broadcast`` point per occurrence when its outcome changes, and once more when final
        (timestamped at the occurrence's start, so a later point replaces the earlier one)."""
        hub = self.ctx.telemetry
        radio = self.radio()
        if hub is None or radio is None:
            return
        from netmgr.telemetry.points import broadcast_point

        points = []
        for oid, (prog, start, late, last) in list(self.outcomes.items()):
            tc = radio.command(oid)
            if tc is None:
                continue
            s = tc.summary()
            played = s.get("done", 0) + s.get("playing", 0)
            accepted = played + s.get("accepted", 0)
            offline = s.get("offline", 0) + s.get("timeout", 0)
            figures = (tc.total, accepted, played, s.get("error", 0) + s.get("expired", 0), offline)
            if figures == last:
                if tc.complete:
                    del self.outcomes[oid]
                continue
            lat = radio.accept_latencies(tc)
            points.append(broadcast_point(
                self.zones.get(prog.id, ""), prog.priority.value, prog.id, start, prog.title,
                targets=figures[0], accepted=accepted, played=played, failed=figures[3], offline=offline,
                late=int(late), latency_ms=lat[len(lat) // 2] * 1000 if lat else None,
                ts_ns=int(start.timestamp() * 1e9)))
            self.outcomes[oid] = (prog, start, late, figures)
        if points:
            hub.submit(points)

    # ------------------------------------------------------------------ node schedules

    async def publish_schedules(self, now: datetime) -> None:
        """Send every node whose next 48 h changed its new schedule document."""
        from netmgr.broadcast.schedule import node_schedules
        from netmgr.radio import protocol as p

        radio = self.radio()
        if radio is None or self.index is None or not self.leading:
            return
        docs = await asyncio.to_thread(node_schedules, list(self.programs.values()), self.index, now=now,
                                       media_url=self.media_url)
        version = int(time.time() * 1000)
        sends = []
        for node, doc in docs.items():
            if self.published.get(node) == doc["hash"]:
                continue
            items = [p.ScheduleItem(it["id"], _epoch(it["start"]), _epoch(it["end"]), it["url"], it["volume"],
                                    it["priority"], it["title"][:200], float(it.get("offset_s") or 0))
                     for it in doc["items"]]
            zone = self.index.zone_of(node)
            # Nodes ignore a lower version than theirs, which another daemon (whose clock may be ahead)
            # may have sent: ours is above what the node reported holding.
            held = radio.schedule_version(node)
            v = max(version, held + 1) if isinstance(held, int) else version
            doc_out = p.Schedule(v, time.time(), [zone] if zone else [], items)
            sends.append((node, doc["hash"], radio.publish_schedule(node, doc_out)))
        started = 0
        try:
            for k in range(0, len(sends), 500):  # QoS 1 publishes in flight together, not one by one
                if not self.leading:
                    return
                chunk = sends[k:k + 500]
                started = k + len(chunk)
                await asyncio.gather(*(c for _, _, c in chunk))
                for node, h, _ in chunk:
                    self.published[node] = h
                    self.stats["schedules"] += 1
        finally:
            for _, _, c in sends[started:]:
                c.close()  # never started (leadership lost, or cancelled): nothing more goes out


async def _until(work: Awaitable[None], stop: Callable[[], Awaitable[None]]) -> None:
    """Run ``work`` until ``stop()`` returns (then cancel it); ``work`` failing fails this."""
    w = asyncio.ensure_future(work)
    s = asyncio.ensure_future(stop())
    try:
        await asyncio.wait({w, s}, return_when=asyncio.FIRST_COMPLETED)
        if w.done():
            w.result()
            raise RuntimeError("scheduler: a role ended by itself")
    finally:
        for t in (w, s):
            t.cancel()
        await asyncio.gather(w, s, return_exceptions=True)


def occurrence_id(prog: Any, start: datetime) -> str:
    from netmgr.broadcast.planner import make_occ

    return make_occ(prog, start).occurrence_id


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
