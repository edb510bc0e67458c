"""The telemetry service's own rules: a full queue overflows to the spool, reload swaps the sink,
the ``netmgr`` points of every service."""

from __future__ import annotations

import time

from support.services import free_port
from support.telemetry import idle, running_service, settings_for
from support.waiting import until

from netmgr.runtime import Service
from netmgr.telemetry.hub import TelemetryHub
from netmgr.telemetry.points import INTERNAL_METRICS, Point, netmgr_point


def test_submit_never_blocks_and_counts_what_it_cannot_hold():
    hub = TelemetryHub(batch_size=10, queue_max=100, overflow_max=50)
    pts = [Point("m", {}, {"v": i}, i) for i in range(230)]
    t0 = time.perf_counter()
    hub.submit(pts[:80])
    assert not hub.overflow and not hub.overflow_wake.is_set() and hub.wake.is_set()
    hub.submit(pts[80:])
    assert time.perf_counter() - t0 < 0.05
    assert len(hub.queue) == 100 and len(hub.overflow) == 50 and hub.dropped == 80
    assert hub.submitted == 230 and hub.overflowed == 50 and hub.overflow_wake.is_set()
    assert [p.ts_ns for p in hub.queue] == list(range(100)) and hub.overflow[0].ts_ns == 100


async def test_overflow_goes_to_the_spool_when_the_server_is_down(tmp_path):
    settings = settings_for(tmp_path, f"http://127.0.0.1:{free_port()}", flush_interval=60, batch_size=100)
    async with running_service(settings) as svc:
        svc.hub.queue_max = svc.hub.overflow_max = 1_000
        svc.hub.submit([netmgr_point("poller", {"polls": i}, i + 1, host="h") for i in range(2_500)])
        assert svc.hub.dropped == 500
        # The collector takes batches of 100 (ring and outbox); the overflow is encoded at once;
        # the server refuses connections, so all of it ends up in the spool.
        await until(lambda: svc.spool.points == 2_000 and svc.hub.depth == 0, 30, "2,000 points spooled")
        health = svc.health()
    assert health["points_dropped"] == 500 and health["dropped"]["queue_full"] == 500
    assert health["ring_skipped"] == 1_000 and health["ring_points"] >= 1_000
    assert health["write_errors"] >= 1 and "cannot write" in health["last_error"]


async def test_reload_points_the_sink_elsewhere_and_the_spool_follows(tmp_path, victoriametrics):
    settings = settings_for(tmp_path, f"http://127.0.0.1:{free_port()}")
    async with running_service(settings) as svc:
        svc.hub.submit([netmgr_point("api", {"queue_depth": i}, time.time_ns() - 10**9 + i, host="reload-t")
                        for i in range(10)])
        await until(lambda: svc.spool.points == 10, 30, "points spooled while the url is wrong")
        await svc.reload(settings_for(tmp_path, victoriametrics.url))
        assert victoriametrics.url in svc.health()["influxdb"]
        await until(lambda: idle(svc) and svc.points_written >= 10, 30, "the spool replayed to the new url")
        await svc.reload(settings_for(tmp_path, ""))
        assert svc.sink is None and svc.health()["influxdb"].startswith("off")


class Radioish(Service):
    name = "radio"

    def stats_fields(self):
        return {"nodes_online": 3, "nodes_total": 5, "messages": 10, "bad_messages": 1, "commands_inflight": 0}


class Broken(Service):
    name = "scheduler"

    def stats_fields(self):
        raise RuntimeError("boom")


async def test_netmgr_points_of_every_service(tmp_path):
    async with running_service(settings_for(tmp_path)) as svc:
        svc.ctx.services = {"telemetry": svc, "radio": Radioish(svc.ctx), "scheduler": Broken(svc.ctx),
                            "demo-extra": Radioish(svc.ctx)}
        pts = {p.tags["component"]: p for p in svc.stats_points(123)}
    assert set(pts) == {"telemetry", "radio"}
    assert pts["radio"].fields["nodes_online"] == 3 and pts["radio"].ts_ns == 123
    assert set(pts["telemetry"].fields) == {"queue_depth", "points_written", "points_dropped", "write_errors",
                                            "spool_bytes", "spool_points"}
    declared = {f for f, (component, _, _) in INTERNAL_METRICS.items() if component == "telemetry"}
    assert set(pts["telemetry"].fields) == declared
