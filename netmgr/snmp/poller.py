"""The AP poller: a daemon service polling every AP on its own phase, one socket for all.

Each AP is due every ``snmp.interval`` seconds at a phase derived from its name
(so polls spread evenly over the interval and stay put across restarts), with
a little jitter. A heap holds the due times; a semaphore bounds the polls in
flight; every poll has its own timeout and retries, so a dead AP costs one
pending entry and never delays the others. Results update reachability (with
hysteresis), rates (counters.py) and the latest state, which is written to the
store in batches (not per poll), and are handed to listeners (telemetry).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from netmgr.errors import SnmpError
from netmgr.runtime import DaemonContext, Service, every
from netmgr.snmp.client import SnmpClient, Target
from netmgr.snmp.counters import Sample, rate, restarted
from netmgr.snmp.discover import identify
from netmgr.snmp.evaluate import PollResult, evaluate
from netmgr.snmp.profiles import Profile, Profiles, load_profiles
from netmgr.snmp.state import ApRuntime, Reach
from netmgr.snmp.types import OID, VarBind

log = logging.getLogger(__name__)

GET_CHUNK = 40
LATE_AFTER = 5.0
INVENTORY_DEBOUNCE = 0.5
FLUSH_EVERY = 2.0


async def fetch(client: SnmpClient, target: Target, profile: Profile) -> PollResult:
    """One poll of ``target`` with ``profile``: a GET of the scalars, a walk per table (concurrently)."""
    scalar_oids, _ = profile.fetch_plan()
    mr = profile.max_repetitions or target.max_repetitions
    if not profile.bulk and target.bulk:
        target = replace(target, bulk=False)  # the profile knows this agent mishandles GETBULK
    gets = [client.get(target, scalar_oids[i:i + GET_CHUNK]) for i in range(0, len(scalar_oids), GET_CHUNK)]
    walks = [client.walk_columns(target, [c.oid_t for c in t.columns.values()], mr)
             for t in profile.tables.values()]
    results = await asyncio.gather(*gets, *walks)
    scalars: dict[OID, VarBind] = {vb.oid: vb for part in results[: len(gets)] for vb in part}
    columns: dict[OID, list[VarBind]] = {}
    for part in results[len(gets):]:
        columns.update(part)
    return evaluate(profile, scalars, columns)


async def poll_agent(client: SnmpClient, target: Target, profiles: Profiles,
                     profile_name: str | None = None) -> tuple[PollResult, float]:
    """Identify (unless a profile is forced) and poll; returns the result and the response time in ms."""
    t0 = time.monotonic()
    if profile_name:
        profile = profiles[profile_name]
    else:
        profile, _, _ = await identify(lambda oids: client.get(target, oids), profiles)
    result = await fetch(client, target, profile)
    return result, (time.monotonic() - t0) * 1000


def phase(name: str, interval: float) -> float:
    """A stable offset in [0, interval) from the AP's name: polls spread evenly, survive restarts."""
    return (zlib.crc32(name.encode()) / 2**32) * interval


def apply_result(ap: ApRuntime, result: PollResult, now_mono: float) -> None:
    """Rates from the counters of this poll and the previous one."""
    ap.result = result
    uptime = result.uptime_ticks
    rates: dict[int, dict[str, float | None]] = {}
    for itf in result.interfaces:
        max_rate = float(itf.speed_bps) if itf.speed_bps else None
        r: dict[str, float | None] = {}
        for direction, value in (("in", itf.in_octets), ("out", itf.out_octets)):
            if value is None:
                r[f"{direction}_bps"] = None
                continue
            cur = Sample(value, now_mono, uptime, itf.counter_bits)
            key = (itf.index, direction)
            prev = ap.samples.get(key)
            r[f"{direction}_bps"] = rate(prev, cur, scale=8, max_rate=max_rate)
            # What the rate was computed from, so `ap show --json` can be checked by hand.
            r[f"{direction}_prev_octets"] = prev.value if prev else None
            r["rate_interval_s"] = round(now_mono - prev.t, 6) if prev else None
            if prev is not None and restarted(prev, cur):
                ap.restarts_seen[key] = now_mono
            seen = ap.restarts_seen.get(key)
            # Seconds since the last agent restart this counter saw (None: none seen).
            r[f"{direction}_restart_age_s"] = None if seen is None else round(now_mono - seen, 3)
            ap.samples[key] = cur
        rates[itf.index] = r
    ap.rates = rates


def state_detail(ap: ApRuntime) -> dict[str, Any]:
    """The JSON kept in ap_state.detail for `ap show`."""
    r = ap.result
    if r is None:
        return {}
    return {
        "sys_descr": r.sys_descr, "sys_object_id": r.sys_object_id, "sys_location": r.sys_location,
        "family": r.family,
        "interfaces": [{"index": i.index, "name": i.name, "alias": i.alias, "oper_status": i.oper_status,
                        "speed_bps": i.speed_bps, "counter_bits": i.counter_bits,
                        "in_octets": i.in_octets, "out_octets": i.out_octets,
                        "in_errors": i.in_errors, "out_errors": i.out_errors,
                        **ap.rates.get(i.index, {})} for i in r.interfaces],
        "radios": [vars(x) for x in r.radios],
        "clients_by_ssid": r.clients_by_ssid, "clients_by_radio": r.clients_by_radio,
    }


Listener = Callable[[ApRuntime, bool], None]


class Poller:
    """Schedules and runs the polls; no store access (PollerService does that)."""

    def __init__(self, client: SnmpClient, profiles: Profiles, *, interval: float, concurrency: int,
                 down_after: int, up_after: int) -> None:
        self.client = client
        self.profiles = profiles
        self.interval = interval
        self.down_after = down_after
        self.up_after = up_after
        self.sem = asyncio.Semaphore(concurrency)
        self.sem_size = concurrency
        self.aps: dict[int, ApRuntime] = {}
        self.heap: list[tuple[float, int, int]] = []
        self.listeners: list[Listener] = []
        self.wakeup = asyncio.Event()
        self.polls = 0
        self.failures = 0
        self.late = 0
        self.in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def set_aps(self, aps: list[ApRuntime]) -> None:
        """Replace the inventory; APs that stay keep their state and phase."""
        now = time.monotonic()
        new: dict[int, ApRuntime] = {}
        for ap in aps:
            old = self.aps.get(ap.id)
            if old is not None and old.target == ap.target and old.forced_profile == ap.forced_profile:
                old.name, old.zone, old.lat, old.lon = ap.name, ap.zone, ap.lat, ap.lon
                new[ap.id] = old
                continue
            if old is not None:
                ap.reach = old.reach
            ap.generation = (old.generation + 1) if old else 0
            ap.due = now + phase(ap.name, self.interval)
            new[ap.id] = ap
            heapq.heappush(self.heap, (ap.due, ap.id, ap.generation))
        self.aps = new
        self.wakeup.set()

    def retune(self, *, interval: float, concurrency: int, down_after: int, up_after: int) -> None:
        """Apply changed [snmp] settings (SIGHUP): a new interval re-phases every AP from now
        (state, counters and rates kept); thresholds apply from the next poll."""
        self.down_after, self.up_after = down_after, up_after
        if concurrency != self.sem_size:
            self.sem, self.sem_size = asyncio.Semaphore(concurrency), concurrency
        if interval == self.interval:
            return
        self.interval = interval
        now = time.monotonic()
        self.heap = []
        for ap in self.aps.values():
            ap.generation += 1
            ap.due = now + phase(ap.name, interval)
            self.heap.append((ap.due, ap.id, ap.generation))
        heapq.heapify(self.heap)
        self.wakeup.set()

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            while self.heap and self.heap[0][0] <= now:
                due, ap_id, gen = heapq.heappop(self.heap)
                ap = self.aps.get(ap_id)
                if ap is None or ap.generation != gen:
                    continue  # removed or replaced since it was scheduled
                task = asyncio.create_task(self._poll(ap, due), name=f"poll:{ap.name}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                # Next due time from the schedule, not from now: no drift; small jitter.
                ap.due = due + self.interval * (1 + random.uniform(-0.01, 0.01))
                if ap.due < now:
                    ap.due = now + phase(ap.name, self.interval) % 1.0
                heapq.heappush(self.heap, (ap.due, ap.id, ap.generation))
            self.wakeup.clear()
            delay = self.heap[0][0] - time.monotonic() if self.heap else 3600
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, delay)):
                    await self.wakeup.wait()

    async def _poll(self, ap: ApRuntime, due: float) -> None:
        async with self.sem:
            start = time.monotonic()
            if start - due > LATE_AFTER:
                self.late += 1
            self.in_flight += 1
            try:
                await self.poll_one(ap)
            finally:
                self.in_flight -= 1

    async def poll_one(self, ap: ApRuntime) -> bool:
        now = datetime.now(UTC)
        ok = True
        try:
            if ap.profile is None:
                if ap.forced_profile:
                    ap.profile = self.profiles[ap.forced_profile]
                else:
                    ap.profile, _, _ = await identify(lambda oids: self.client.get(ap.target, oids),
                                                      self.profiles)
            t0 = time.monotonic()
            result = await fetch(self.client, ap.target, ap.profile)
            ap.response_ms = (time.monotonic() - t0) * 1000
            apply_result(ap, result, time.monotonic())
            ap.last_ok, ap.last_error = now, None
        except SnmpError as e:
            ok = False
            ap.last_error = str(e)
            self.failures += 1
        except Exception as e:
            ok = False
            ap.last_error = f"{ap.target.label}: {type(e).__name__}: {e}"
            self.failures += 1
            log.exception("poll failed ap=%s", ap.name)
        self.polls += 1
        ap.last_poll = now
        change = ap.reach.update(ok, self.down_after, self.up_after, now)
        if change:
            ap.events.append((now, change, ap.last_error or ""))
            log.info("ap status ap=%s zone=%s status=%s%s", ap.name, ap.zone, change,
                     f" error={ap.last_error}" if change == "down" else "")
        ap.dirty = True
        for listener in self.listeners:
            try:
                listener(ap, ok)
            except Exception:
                log.exception("poll listener failed ap=%s", ap.name)
        return ok


def target_of(row: Any, snmp: Any) -> Target:
    """A Target from an AccessPoint row and the [snmp] settings."""
    return Target(
        name=row.name, host=row.host, port=row.port, version=row.snmp_version or "2c",
        community=row.community or snmp.default_community.get_secret_value(),
        v3_user=row.v3_user, auth_proto=row.v3_auth_proto, auth_key=row.v3_auth_key,
        priv_proto=row.v3_priv_proto, priv_key=row.v3_priv_key,
        timeout=snmp.timeout, retries=snmp.retries, max_repetitions=snmp.max_repetitions,
    )


class PollerService(Service):
    """The daemon's ``poller``: inventory from the store, state back to it in batches."""

    name = "poller"

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        self.poller: Poller | None = None
        self.poll_ms: deque[float] = deque(maxlen=4096)  # recent poll times, for p50/p99
        self._inventory_dirty = asyncio.Event()

    def _telemetry_listener(self) -> Listener:
        """Each poll's points to the telemetry hub (a few µs per poll: see docs/telemetry.md)."""
        from netmgr.snmp.points import ap_points

        hub = self.ctx.telemetry
        record = self.poll_ms.append
        now_ns = time.time_ns

        def listener(ap: ApRuntime, ok: bool) -> None:
            if ok and ap.response_ms is not None:
                record(ap.response_ms)
            if hub is not None:
                hub.submit(ap_points(ap, now_ns()))

        return listener

    async def _load_inventory(self) -> list[ApRuntime]:
        from sqlalchemy import select

        from netmgr.store.models import AccessPoint, ApState

        snmp = self.ctx.settings.snmp
        async with self.ctx.sessions() as s:
            rows = list(await s.scalars(select(AccessPoint).where(AccessPoint.enabled.is_(True))))
            states = {st.ap_id: st for st in await s.scalars(select(ApState))}
        out = []
        for row in rows:
            ap = ApRuntime(row.id, row.name, row.zone, target_of(row, snmp), row.profile,
                           lat=row.lat, lon=row.lon)
            st = states.get(row.id)
            if st is not None:  # keep status and flaps across restarts
                ap.reach = Reach(st.status, 0, 0, st.flaps, st.status_since)
            out.append(ap)
        return out

    async def flush(self) -> None:
        """Write the dirty APs' latest state and their status changes, in one transaction."""
        from netmgr.store.models import ApEvent, ApState

        if self.poller is None:
            return
        dirty = [ap for ap in self.poller.aps.values() if ap.dirty]
        if not dirty:
            return
        async with self.ctx.sessions() as s:
            for ap in dirty:
                ap.dirty = False
                r = ap.result
                st = await s.get(ApState, ap.id) or ApState(ap_id=ap.id)
                st.status, st.status_since, st.flaps = ap.reach.status, ap.reach.since, ap.reach.flaps
                st.last_poll, st.last_ok, st.last_error = ap.last_poll, ap.last_ok, ap.last_error
                st.response_ms = ap.response_ms
                if r is not None:
                    st.profile, st.vendor, st.model = r.profile, r.vendor, r.family
                    st.sys_name = r.sys_name[:255]
                    st.uptime_s = r.uptime_ticks / 100 if r.uptime_ticks is not None else None
                    st.clients, st.cpu_pct = r.clients_total, r.cpu_pct
                    st.mem_used, st.mem_total = r.mem_used_bytes, r.mem_total_bytes
                    st.detail = state_detail(ap)
                s.add(st)
                for ts, status, detail in ap.events:
                    s.add(ApEvent(ap_id=ap.id, ts=ts, status=status, detail=detail[:1000]))
                ap.events.clear()
            await s.commit()

    async def run(self) -> None:
        settings = self.ctx.settings.snmp
        profiles = await asyncio.to_thread(load_profiles)
        async with SnmpClient() as client:
            self.poller = Poller(client, profiles, interval=settings.interval,
                                 concurrency=settings.concurrency, down_after=settings.down_after,
                                 up_after=settings.up_after)
            self.poller.listeners.append(self._telemetry_listener())
            self.poller.set_aps(await self._load_inventory())
            log.info("poller started aps=%d interval=%.0fs profiles=%d", len(self.poller.aps),
                     settings.interval, len(profiles))
            self.ready.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.poller.run(), name="poller:schedule")
                tg.create_task(every(FLUSH_EVERY, self.flush, "writing AP state", log), name="poller:flush")
                tg.create_task(self._inventory_loop(), name="poller:inventory")

    async def reload(self, settings: Any) -> None:
        """SIGHUP: the new [snmp] settings (interval, thresholds, timeouts) and the inventory."""
        if self.poller is not None:
            snmp = settings.snmp
            self.poller.retune(interval=snmp.interval, concurrency=snmp.concurrency,
                               down_after=snmp.down_after, up_after=snmp.up_after)
            # ctx.settings is already the new one: targets get the new timeout and retries.
            self.poller.set_aps(await self._load_inventory())
            log.info("poller reloaded aps=%d interval=%.0fs", len(self.poller.aps), snmp.interval)

    def inventory_changed(self) -> None:
        """APs were added, changed or removed through the API: re-read them within a second."""
        self._inventory_dirty.set()

    async def _inventory_loop(self) -> None:
        while True:
            await self._inventory_dirty.wait()
            await asyncio.sleep(INVENTORY_DEBOUNCE)  # an import is many rows: read them once
            self._inventory_dirty.clear()
            if self.poller is not None:
                try:
                    self.poller.set_aps(await self._load_inventory())
                    log.info("poller inventory changed aps=%d", len(self.poller.aps))
                except Exception as e:  # noqa: BLE001 - the store may be away; the next change retries
                    log.warning("poller: re-reading the APs failed: %s; keeping the current list", e)

    async def drain(self) -> None:
        await self.flush()

    def stats_fields(self) -> dict[str, int | float | None]:
        h = self.health()
        return {"polls": h.get("polls"), "polls_failed": h.get("failures"), "late_polls": h.get("late_polls"),
                "poll_ms_p50": h.get("poll_ms_p50"), "poll_ms_p99": h.get("poll_ms_p99"), "aps": h.get("aps")}

    def health(self) -> dict[str, Any]:
        p = self.poller
        if p is None:
            return {}
        up = sum(1 for a in p.aps.values() if a.reach.status == "up")
        down = sum(1 for a in p.aps.values() if a.reach.status == "down")
        ms = sorted(self.poll_ms)
        return {"aps": len(p.aps), "up": up, "down": down, "polls": p.polls, "failures": p.failures,
                "late_polls": p.late, "in_flight": p.in_flight,
                "poll_ms_p50": round(ms[len(ms) // 2], 3) if ms else None,
                "poll_ms_p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3) if ms else None}
