"""The netmgr daemon: services supervised in one asyncio TaskGroup.

Each service is a long-running coroutine (``Service.run``). The supervisor runs
every service in a named task, logs a failure with the service's name and
restarts that service alone with capped, jittered exponential backoff; one
service's crash never takes the others down.

Signals: SIGTERM/SIGINT drain (every service's ``drain()`` in parallel, bounded
by ``daemon.drain_timeout``) and exit 0; SIGHUP re-reads the config and the
inventory (a bad config is logged and the old one kept). systemd is told
READY/STATUS/WATCHDOG/STOPPING/RELOADING through :mod:`netmgr.sdnotify`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netmgr import __version__
from netmgr.config import Settings, load_settings
from netmgr.errors import ConfigError, NetmgrError
from netmgr.sdnotify import Notifier

if TYPE_CHECKING:
    from netmgr.telemetry.service import TelemetryHub

log = logging.getLogger("netmgr.daemon")

# A service that ran this long without failing starts its backoff over.
STABLE_AFTER = 60.0
BACKOFF_BASE = 0.5


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
    telemetry: TelemetryHub | None = None  # where services submit points (netmgr.telemetry)


async def every(interval: float, fn: Callable[[], Any], what: str, logger: logging.Logger) -> None:
    """Run ``await fn()`` every ``interval`` seconds for ever; a failure is logged (one line for
    netmgr's own errors, a traceback for anything else) and the next round tries again."""
    while True:
        await asyncio.sleep(interval)
        try:
            await fn()
        except Exception as e:
            if isinstance(e, NetmgrError):
                logger.error("%s failed: %s", what, e)
            else:
                logger.exception("%s failed", what)


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
        """Capped exponential backoff with full jitter in [d/2, d]."""
        d = min(self.backoff_max, BACKOFF_BASE * (2 ** max(0, failures - 1)))
        return d / 2 + random.random() * d / 2

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


class ApiService(Service):
    """The HTTP API (FastAPI under uvicorn) on ``[api] host:port``."""

    name = "api"

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        self.bound: tuple[str, int] | None = None

    def _bind(self) -> socket.socket:
        host, port = self.ctx.settings.api.host, self.ctx.settings.api.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            raise NetmgrError(
                f"api: cannot listen on {host}:{port}: {e.strerror}; "
                "stop the other process or set [api] port"
            ) from None
        sock.listen(512)
        sock.setblocking(False)
        self.bound = sock.getsockname()[:2]
        return sock

    async def run(self) -> None:
        import uvicorn

        from netmgr.api.app import create_app

        service = self

        class _Server(uvicorn.Server):
            # The daemon owns the signals; uvicorn must not install its own.
            @contextlib.contextmanager
            def capture_signals(self):  # type: ignore[no-untyped-def]
                yield

            async def startup(self, sockets=None):  # type: ignore[no-untyped-def]
                await super().startup(sockets=sockets)
                service.ready.set()

        app = create_app(self.ctx.settings, self.ctx.sessions, self.ctx.health)
        app.state.services = self.ctx.services
        sock = self._bind()
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off",
            timeout_graceful_shutdown=3, server_header=False,
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="api:uvicorn")
        log.info("api listening url=http://%s:%d", *self.bound)  # type: ignore[misc]
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
            raise
        finally:
            sock.close()
        raise NetmgrError("api: the HTTP server stopped by itself")

    def health(self) -> dict[str, Any]:
        return {"listen": f"{self.bound[0]}:{self.bound[1]}"} if self.bound else {}


# Services other issues add register here: (config switch, factory path).
SERVICE_FACTORIES: list[tuple[Callable[[Settings], bool], str]] = [
    (lambda s: s.api.enabled, "netmgr.daemon:ApiService"),
    (lambda s: s.snmp.enabled, "netmgr.snmp.poller:PollerService"),
    (lambda s: True, "netmgr.telemetry.service:TelemetryService"),
    (lambda s: s.mqtt.enabled, "netmgr.radio.service:RadioService"),
    (lambda s: s.mqtt.enabled, "netmgr.broadcast.service:SchedulerService"),
]


def build_services(ctx: DaemonContext) -> list[Service]:
    import importlib

    services = []
    for enabled, path in SERVICE_FACTORIES:
        if enabled(ctx.settings):
            mod, attr = path.split(":")
            services.append(getattr(importlib.import_module(mod), attr)(ctx))
    return services


class Daemon:
    """``netmgr run``: open the store, migrate, supervise services until a signal."""

    def __init__(self, settings: Settings, config_path: Path | None = None,
                 extra_services: list[Callable[[DaemonContext], Service]] | None = None,
                 load: Callable[[], Settings] | None = None) -> None:
        self.settings = settings
        self.config_path = config_path
        # What SIGHUP re-reads: the config file; the demo, whose settings are built in
        # code, passes its own (else a reload would swap in the defaults).
        self._load = load or (lambda: load_settings(self.config_path)[0])
        self.extra_services = extra_services or []
        self.notifier = Notifier()
        self._stop = asyncio.Event()
        self._reload_requested = asyncio.Event()
        self.ctx: DaemonContext | None = None
        self.supervisor: Supervisor | None = None
        self.started = asyncio.Event()

    def request_stop(self) -> None:
        """Drain and stop (what SIGTERM and SIGINT do)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        """True once a stop was asked for (a signal or :meth:`request_stop`)."""
        return self._stop.is_set()

    def request_reload(self) -> None:
        """Re-read the config and the inventories (what SIGHUP does)."""
        self._reload_requested.set()

    def health(self) -> dict[str, Any]:
        services = self.supervisor.health() if self.supervisor else {}
        ok = all(s["state"] == "running" for s in services.values())
        return {"status": "ok" if ok else "degraded", "version": __version__, "services": services}

    async def _open_store(self) -> tuple[Any, Any]:
        from netmgr.store import db

        engine = db.create_engine(self.settings.database_url, echo=self.settings.database.echo)
        try:
            await db.upgrade(engine)
        except Exception as e:  # noqa: BLE001 - any driver error becomes one clear line
            await engine.dispose()
            raise NetmgrError(f"state store {engine.url.render_as_string(hide_password=True)}: "
                              f"cannot open or migrate it: {e}") from None
        return engine, db.sessionmaker(engine)

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval()
        if interval is None:
            return
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    async def _announce_ready(self, services: list[Service]) -> None:
        waits = [asyncio.create_task(s.ready.wait()) for s in services]
        try:
            async with asyncio.timeout(30):
                await asyncio.gather(*waits)
        except TimeoutError:
            pending = [s.name for s in services if not s.ready.is_set()]
            log.warning("services not ready after 30s: %s", ",".join(pending))
        finally:
            for w in waits:
                w.cancel()
        names = ",".join(s.name for s in services)
        self.notifier.ready(f"running: {names}")
        log.info("daemon ready version=%s services=%s", __version__, names)
        self.started.set()

    async def _reload_loop(self) -> None:
        while True:
            await self._reload_requested.wait()
            self._reload_requested.clear()
            await self.reload()

    async def reload(self) -> None:
        """Re-read the config file; keep the old settings if the new ones are bad."""
        assert self.ctx and self.supervisor
        self.notifier.reloading()
        try:
            new = self._load()
        except ConfigError as e:
            for p in e.problems:
                log.error("reload refused, keeping the running config: %s: %s", e.source, p)
            self.notifier.ready("reload failed: config invalid, old config kept")
            return
        for key in ("database", "api"):
            if getattr(new, key) != getattr(self.settings, key):
                log.warning("reload: [%s] changed; it takes effect at the next restart", key)
        self.settings = self.ctx.settings = new
        for svc in self.supervisor.services:
            try:
                await svc.reload(new)
            except Exception as e:  # noqa: BLE001 - one service's reload must not stop the others
                log.error("reload failed service=%s error=%s", svc.name, e)
        log.info("reloaded config=%s", self.config_path or "(defaults)")
        self.notifier.ready("reloaded")

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload_requested.set)
        self.notifier.status("starting: opening the state store")
        engine, sessions = await self._open_store()
        from netmgr.telemetry.service import TelemetryHub

        self.ctx = DaemonContext(self.settings, self.config_path, engine, sessions,
                                 self.notifier, health=self.health,
                                 telemetry=TelemetryHub(self.settings.influxdb.batch_size))
        services = build_services(self.ctx) + [f(self.ctx) for f in self.extra_services]
        self.ctx.services = {s.name: s for s in services}
        self.supervisor = Supervisor(services, self.settings.daemon.restart_backoff_max)
        try:
            async with asyncio.TaskGroup() as tg:
                self.supervisor.start(tg)
                helpers = [
                    tg.create_task(self._watchdog(), name="daemon:watchdog"),
                    tg.create_task(self._announce_ready(services), name="daemon:ready"),
                    tg.create_task(self._reload_loop(), name="daemon:reload"),
                ]
                await self._stop.wait()
                drain = self.settings.daemon.drain_timeout
                log.info("stopping: draining services timeout=%.1fs", drain)
                self.notifier.stopping()
                await self.supervisor.stop(drain)
                for h in helpers:
                    h.cancel()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await engine.dispose()
            self.notifier.close()
        log.info("stopped")
        return 0
