"""What every daemon service is built on: the service contract, the context services share,
the supervisor that runs and restarts them, and the two timing helpers (``every`` for periodic
work, ``backoff`` for retries). netmgr.daemon composes the services; this module knows none of
them.

The supervisor runs every service in a named task, logs a failure with the service's name and
restarts that service alone with capped, jittered exponential backoff; one service's crash never
takes the others down.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from netmgr.config import Settings
from netmgr.errors import NetmgrError
from netmgr.sdnotify import Notifier

log = logging.getLogger(__name__)


def backoff(failures: int, base: float, cap: float) -> float:
    """The wait after ``failures`` failures in a row: ``base * 2**(failures-1)`` capped at ``cap``,
    with jitter in [d/2, d] so that many clients retrying at once spread out."""
    d = min(cap, base * 2 ** min(max(0, failures - 1), 30))
    return d / 2 + random.random() * d / 2


# A service that ran this long without failing starts its backoff over.
STABLE_AFTER = 60.0
BACKOFF_BASE = 0.5


class PointSink(Protocol):
    """Where services hand telemetry points (netmgr.telemetry.hub.TelemetryHub in the daemon):
    ``submit`` never blocks and never raises."""

    def submit(self, points: Sequence[Any]) -> None: ...


@dataclass
class DaemonContext:
    """What services share: settings, the state store, each other, systemd."""

    settings: Settings
    config_path: Path | None
    engine: Any
    sessions: Any
    notifier: Notifier
    health: Callable[[], dict[str, Any]] = field(default=lambda: {})
    services: dict[str, Service] = field(default_factory=dict)
    telemetry: PointSink | None = None  # where services submit points


def standalone_context(settings: Settings | None = None, **sections: dict[str, Any]) -> DaemonContext:
    """A context for a service run without a daemon (tests, benchmarks): no state store, no
    systemd, no telemetry; ``sections`` override settings, e.g. ``mqtt={"ack_timeout": 2}``."""
    base = settings or Settings()
    if sections:
        # Validated as a config file would be (a section is rebuilt, not patched).
        base = base.model_copy(update={
            name: type(sec)(**{**dict(sec), **values})
            for name, values in sections.items() if values for sec in [getattr(base, name)]})
    return DaemonContext(base, None, engine=None, sessions=None, notifier=Notifier(""))


def log_failure(logger: logging.Logger, what: str, e: BaseException) -> None:
    """How a failed round of periodic work is logged, everywhere: ``<what> failed: <error>`` in
    one line for netmgr's own errors (they say what to do), with the traceback for anything else
    (a bug)."""
    if isinstance(e, NetmgrError):
        logger.error("%s failed: %s", what, e)
    else:
        logger.error("%s failed", what, exc_info=e)


async def every(interval: float, fn: Callable[[], Any], what: str, logger: logging.Logger) -> None:
    """Run ``await fn()`` every ``interval`` seconds for ever; a failure is logged
    (:func:`log_failure`) and the next round tries again."""
    while True:
        await asyncio.sleep(interval)
        try:
            await fn()
        except Exception as e:  # noqa: BLE001 - log_failure logs a bug with its traceback
            log_failure(logger, what, e)


class Service:
    """A daemon service. Subclasses implement ``run`` (until cancelled)."""

    name = "service"

    def __init__(self, ctx: DaemonContext) -> None:
        self.ctx = ctx
        self.ready = asyncio.Event()

    async def run(self) -> None:
        raise NotImplementedError

    async def reload(self, settings: Settings) -> None:
        """SIGHUP: new settings (already validated) and a fresh look at the inventory."""

    async def drain(self) -> None:
        """SIGTERM: finish what is in flight (flush, acks); bounded by the supervisor."""

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` shows of this service (its state and restarts are the supervisor's)."""
        return {}

    def stats_fields(self) -> dict[str, int | float | None]:
        """This service's figures for the ``netmgr`` measurement, every 10 s: the fields that
        netmgr.telemetry.points.INTERNAL_METRICS declares for its component (None: not known)."""
        return {}


@dataclass
class ServiceState:
    state: str = "starting"  # starting | running | backoff | stopped
    restarts: int = 0
    failures_in_row: int = 0
    last_error: str | None = None
    since: float = field(default_factory=time.time)


class Supervisor:
    """Runs services in one TaskGroup and restarts a failed one with backoff."""

    def __init__(self, services: list[Service], backoff_max: float = 30.0) -> None:
        self.services = services
        self.backoff_max = backoff_max
        self.states = {s.name: ServiceState() for s in services}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def backoff(self, failures: int) -> float:
        """The wait before the restart after ``failures`` failures in a row (:func:`backoff`)."""
        return backoff(failures, BACKOFF_BASE, self.backoff_max)

    async def _supervise(self, svc: Service) -> None:
        st = self.states[svc.name]
        while True:
            st.state, st.since = "running", time.time()
            started = time.monotonic()
            try:
                await svc.run()
                raise RuntimeError("service returned; services run until cancelled")
            except asyncio.CancelledError:
                st.state = "stopped"
                raise
            except Exception as e:
                if time.monotonic() - started > STABLE_AFTER:
                    st.failures_in_row = 0
                st.failures_in_row += 1
                st.restarts += 1
                st.last_error = f"{type(e).__name__}: {e}" if not isinstance(e, NetmgrError) else str(e)
                delay = self.backoff(st.failures_in_row)
                log.error(
                    "service failed service=%s restarts=%d retry_in=%.1fs error=%s",
                    svc.name, st.restarts, delay, st.last_error,
                    exc_info=not isinstance(e, NetmgrError),
                )
                st.state, st.since = "backoff", time.time()
                svc.ready.clear()
                await asyncio.sleep(delay)

    def start(self, tg: asyncio.TaskGroup) -> None:
        for svc in self.services:
            self._tasks[svc.name] = tg.create_task(self._supervise(svc), name=f"service:{svc.name}")

    async def stop(self, drain_timeout: float) -> None:
        """Drain every service in parallel (bounded), then cancel them all and wait."""
        async def drain(svc: Service) -> None:
            try:
                await svc.drain()
            except Exception as e:  # noqa: BLE001 - shutdown goes on whatever a drain does
                log.warning("drain failed service=%s error=%s", svc.name, e)

        try:
            async with asyncio.timeout(drain_timeout):
                await asyncio.gather(*(drain(s) for s in self.services))
        except TimeoutError:
            log.warning("drain timed out after %.1fs; stopping anyway", drain_timeout)
        for t in self._tasks.values():
            t.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for svc in self.services:
            st = self.states[svc.name]
            entry: dict[str, Any] = {
                "state": st.state,
                "ready": svc.ready.is_set(),
                "restarts": st.restarts,
                "since": datetime.fromtimestamp(st.since, UTC).isoformat(),
            }
            if st.last_error:
                entry["last_error"] = st.last_error
            try:
                entry.update(svc.health())
            except Exception as e:  # noqa: BLE001 - health must answer even if a service is broken
                entry["health_error"] = str(e)
            out[svc.name] = entry
        return out
