"""Run the real TelemetryService in the test's event loop, read VictoriaMetrics and InfluxDB 1.6
back, and a province's points to write (one run's names apart from the others')."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from netmgr.config import Settings
from netmgr.runtime import DaemonContext
from netmgr.sdnotify import Notifier
from netmgr.snmp.points import ap_points
from netmgr.telemetry.hub import TelemetryHub
from netmgr.telemetry.lineproto import MAX_TAG
from netmgr.telemetry.points import Point, broadcast_point, netmgr_point, speaker_point
from netmgr.telemetry.service import TelemetryService

from . import fleet
from .waiting import until


def settings_for(state_dir: Path, url: str = "", **influx: Any) -> Settings:
    return Settings.model_validate({"daemon": {"state_dir": str(state_dir), "drain_timeout": 8.0},
                                    "influxdb": {"url": url, "flush_interval": 0.2, **influx}})


@contextlib.asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[TelemetryService]:
    """The service running (ready) in a task; drained and cancelled on exit."""
    ctx = DaemonContext(settings, None, None, None, Notifier(),
                        telemetry=TelemetryHub(settings.influxdb.batch_size))
    svc = TelemetryService(ctx)
    task = asyncio.create_task(svc.run(), name="test:telemetry")
    try:
        await until(lambda: svc.ready.is_set() or task.done(), 30, "the telemetry service to be ready")
        if task.done():
            task.result()
        yield svc
    finally:
        if not task.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(svc.drain(), settings.daemon.drain_timeout)
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def idle(svc: TelemetryService) -> bool:
    """Everything submitted was written: nothing queued, in the outbox or in the spool, no backoff."""
    assert svc.spool is not None
    return svc.hub.depth == 0 and not svc.outbox and svc.spool.pending_bytes == 0 and svc._failures == 0


def expected_samples(points: list[Point]) -> set[tuple[str, frozenset[tuple[str, str]], int, float]]:
    """What VictoriaMetrics must hold for ``points``: one sample per numeric field,
    ``{measurement}_{field}`` with the tags as labels, timestamps in ms."""
    out = set()
    for p in points:
        labels = frozenset((k, v[:MAX_TAG]) for k, v in p.tags.items() if v)
        for k, v in p.fields.items():
            if isinstance(v, bool):
                v = int(v)
            if isinstance(v, int | float) and math.isfinite(v):
                out.add((f"{p.measurement}_{k}", labels, p.ts_ns // 10**6, float(v)))
    return out


def exported_samples(vm: Any, match: str) -> set[tuple[str, frozenset[tuple[str, str]], int, float]]:
    out = set()
    for series in vm.export(match):
        metric = dict(series["metric"])
        name = metric.pop("__name__")
        labels = frozenset(metric.items())
        for ts, v in zip(series["timestamps"], series["values"], strict=True):
            out.add((name, labels, ts, float(v)))
    return out


def export_counts(vm: Any, match: str) -> dict[tuple[str, frozenset[tuple[str, str]]], list[int]]:
    """Per series, every stored timestamp (duplicates included)."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], list[int]] = {}
    for series in vm.export(match):
        metric = dict(series["metric"])
        name = metric.pop("__name__")
        out.setdefault((name, frozenset(metric.items())), []).extend(series["timestamps"])
    return out


def vm_series_count(vm: Any, match: str) -> int:
    vm.force_flush()
    q = urllib.parse.urlencode({"match[]": match})
    from .services import http_get

    status, body = http_get(f"{vm.url}/api/v1/series?{q}")
    assert status == 200, body
    return len(json.loads(body)["data"])


def http_post(url: str, data: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"), timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def rows(influxdb1, db: str, q: str) -> list[dict]:
    out = []
    for series in influxdb1.query(q, db=db)["results"][0].get("series", []):
        for values in series["values"]:
            out.append({"tags": series.get("tags", {}), **dict(zip(series["columns"], values, strict=True))})
    return out


def run_id(tag: str) -> str:
    return f"{tag}{os.getpid()}x{time.time_ns() % 10**9}"


def province_points(run: str, ts: int) -> list[Point]:
    pts: list[Point] = []
    for ap in fleet.ap_fleet(30):
        ap.name = f"{run}-{ap.name}"
        pts += ap_points(ap, ts)
    for i in range(20):
        node = f"{run}-spk-{i:02d}"
        pts.append(speaker_point(node, f"binh-phuoc/d{i % 3}/c{i}", fleet.speaker_telemetry(i), True, ts))
    pts.append(broadcast_point(f"{run}/dong-xoai/tan-phu", "emergency", 7, "2024-05-01T05:00:00+07:00", "Bão số 5",
                               targets=20, accepted=19, played=18, failed=1, offline=1, late=2, latency_ms=812.5,
                               ts_ns=ts))
    pts.append(netmgr_point("telemetry", {"queue_depth": 3, "points_written": 10}, ts, host=run))
    return pts
