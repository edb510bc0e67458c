"""Supervision: a failing service is restarted with backoff; the others keep running."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from netmgr.runtime import Service, Supervisor
from netmgr.sdnotify import Notifier


class Flaky(Service):
    name = "flaky"

    def __init__(self, fail_times: int) -> None:
        self.ready = asyncio.Event()
        self.fail_times = fail_times
        self.starts = 0
        self.healthy = asyncio.Event()

    async def run(self) -> None:
        self.starts += 1
        if self.starts <= self.fail_times:
            raise RuntimeError(f"boom {self.starts}")
        self.ready.set()
        self.healthy.set()
        await asyncio.Event().wait()


class Steady(Service):
    name = "steady"

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.ticks = 0
        self.drained = False

    async def run(self) -> None:
        self.ready.set()
        while True:
            self.ticks += 1
            await asyncio.sleep(0.001)

    async def drain(self) -> None:
        self.drained = True


async def test_failing_service_restarts_others_unaffected(caplog):
    caplog.set_level(logging.ERROR, logger="netmgr.runtime")
    flaky, steady = Flaky(fail_times=3), Steady()
    sup = Supervisor([flaky, steady], backoff_max=0.05)
    async with asyncio.TaskGroup() as tg:
        sup.start(tg)
        async with asyncio.timeout(5):
            await flaky.healthy.wait()
        ticks_before = steady.ticks
        async with asyncio.timeout(5):
            while steady.ticks <= ticks_before:
                await asyncio.sleep(0.001)
        health = sup.health()
        await sup.stop(drain_timeout=1)
    assert flaky.starts == 4
    assert health["flaky"]["restarts"] == 3 and health["flaky"]["state"] == "running"
    assert health["flaky"]["last_error"] == "RuntimeError: boom 3"
    assert health["steady"]["restarts"] == 0
    assert steady.drained
    failures = [r for r in caplog.records if "service failed" in r.getMessage()]
    assert len(failures) == 3 and all("service=flaky" in r.getMessage() for r in failures)


def test_backoff_is_capped_and_jittered():
    sup = Supervisor([], backoff_max=4.0)
    for n in range(1, 20):
        d = sup.backoff(n)
        cap = min(4.0, 0.5 * 2 ** (n - 1))
        assert cap / 2 <= d <= cap
    assert len({round(sup.backoff(10), 6) for _ in range(20)}) > 1


async def test_drain_is_bounded():
    class Stuck(Steady):
        name = "stuck"

        async def drain(self) -> None:
            await asyncio.Event().wait()

    stuck = Stuck()
    sup = Supervisor([stuck])
    loop = asyncio.get_running_loop()
    async with asyncio.TaskGroup() as tg:
        sup.start(tg)
        await stuck.ready.wait()
        t0 = loop.time()
        await sup.stop(drain_timeout=0.2)
    assert loop.time() - t0 < 2


def test_sd_notify_noop_without_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled
    n.ready("x")  # must not raise


def test_sd_notify_sends_datagrams(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(2)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    n = Notifier(path)
    assert n.watchdog_interval() == 2.0
    n.ready("up")
    assert srv.recv(4096) == b"READY=1\nSTATUS=up"
    n.watchdog()
    assert srv.recv(4096) == b"WATCHDOG=1"
    n.stopping()
    assert srv.recv(4096) == b"STOPPING=1"
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert n.watchdog_interval() is None
    n.close()
    srv.close()
