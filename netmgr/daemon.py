"""The netmgr daemon, the composition root: which services run, in one asyncio TaskGroup under
the supervisor of netmgr.runtime (each a long-running ``Service.run``, restarted alone with
backoff when it fails).

Signals: SIGTERM/SIGINT drain (every service's ``drain()`` in parallel, bounded
by ``daemon.drain_timeout``) and exit 0; SIGHUP re-reads the config and the
inventory (a bad config is logged and the old one kept). systemd is told
READY/STATUS/WATCHDOG/STOPPING/RELOADING through :mod:`netmgr.sdnotify`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netmgr import __version__
from netmgr.api.service import ApiService
from netmgr.broadcast.service import SchedulerService
from netmgr.config import Settings, load_settings
from netmgr.errors import ConfigError
from netmgr.radio.service import RadioService
from netmgr.runtime import DaemonContext, Service, Supervisor
from netmgr.sdnotify import Notifier
from netmgr.snmp.poller import PollerService
from netmgr.telemetry.hub import TelemetryHub
from netmgr.telemetry.service import TelemetryService

log = logging.getLogger(__name__)

# Every service of the daemon, in start order, with the config switch that enables it.
SERVICES: list[tuple[Callable[[Settings], bool], Callable[[DaemonContext], Service]]] = [
    (lambda s: s.api.enabled, ApiService),
    (lambda s: s.snmp.enabled, PollerService),
    (lambda s: True, TelemetryService),
    (lambda s: s.mqtt.enabled, RadioService),
    (lambda s: s.mqtt.enabled, SchedulerService),
]


def build_services(ctx: DaemonContext) -> list[Service]:
    """The services ``ctx.settings`` enables."""
    return [factory(ctx) for enabled, factory in SERVICES if enabled(ctx.settings)]


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

        store = await db.open_store(self.settings.database_url, echo=self.settings.database.echo)
        return store.engine, store.sessions

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
