"""bench/telemetry: netmgr's points to line protocol on the wire (VictoriaMetrics on loopback), against
influxdb-client's own Point serializer over the same client and server; the spool's replay rate; the
poller listener's cost per poll.

    .venv/bin/python bench/telemetry.py [--aps 2000] [--speakers 500] [--rounds 10] [--spool-points 500000]

The points are a province's, made by the real builders from the vendor recordings
(tests/support/fleet.py): per round one ``ap`` per AP plus its ``ap_if`` and ``ap_radio``,
and speaker, broadcast and netmgr points. Both encoders send the same points, in
batches of 5,000, gzip on, one request in flight, to one VictoriaMetrics; CPU is
this process's own (user + system): the server's work is not in either figure.

Prints one JSON line per result, then a human summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

BATCH = 5000


def vm_rows(vm) -> int:
    """Samples VictoriaMetrics has ingested over the InfluxDB protocol so far."""
    from support import services

    status, body = services.http_get(f"{vm.url}/metrics")
    assert status == 200
    m = re.search(rb'^vm_rows_inserted_total\{type="influx"\} (\d+)', body, re.M)
    return int(m.group(1)) if m else 0


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def province_rounds(aps: int, speakers: int, rounds: int) -> list[list]:
    from support import fleet

    from netmgr.telemetry.points import Point

    t0 = time.time_ns() - 86400 * 10**9
    one = fleet.province(aps, speakers, t0)
    out = []
    for r in range(rounds):
        dt = r * 60 * 10**9
        out.append([Point(p.measurement, p.tags, p.fields, p.ts_ns + dt) for p in one])
    return out


async def netmgr_send(url: str, rounds: list[list]) -> dict:
    from netmgr.telemetry.lineproto import Encoder
    from netmgr.telemetry.sink import InfluxSink

    enc = Encoder()
    fields = 0
    enc_cpu = 0.0
    async with InfluxSink(url, "bench", "bench", "") as sink:
        await sink.write(enc.encode(rounds[0][:100])[0])  # connect, warm caches
        warm_fields = sum(len(p.fields) for p in rounds[0][:100])
        c0, w0 = cpu(), time.monotonic()
        points = 0
        for pts in rounds:
            for i in range(0, len(pts), BATCH):
                batch = pts[i:i + BATCH]
                e0 = cpu()
                payload, n = enc.encode(batch)
                enc_cpu += cpu() - e0
                points += n
                dropped = await sink.write(payload)
                assert dropped == 0
        c, w = cpu() - c0, time.monotonic() - w0
    for pts in rounds:
        fields += sum(len(p.fields) for p in pts)
    return {"points": points, "fields": fields, "warm_fields": warm_fields, "cpu_s": c, "wall_s": w,
            "encode_cpu_s": enc_cpu, "requests": sink.requests, "stats": enc.stats()}


async def client_send(url: str, rounds: list[list]) -> dict:
    """The same points through influxdb-client's Point and write API (the peer)."""
    from influxdb_client import Point as IPoint
    from influxdb_client import WritePrecision
    from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

    def convert(p) -> IPoint:
        ip = IPoint(p.measurement)
        for k, v in p.tags.items():
            if v:
                ip.tag(k, v)
        for k, v in p.fields.items():
            ip.field(k, v)
        return ip.time(p.ts_ns, WritePrecision.NS)

    converted = [[convert(p) for p in pts] for pts in rounds]  # the peer's own internal points
    async with InfluxDBClientAsync(url=url, org="bench", timeout=30_000, enable_gzip=True) as client:
        api = client.write_api()
        await api.write(bucket="bench", record=converted[0][:100])
        c0, w0 = cpu(), time.monotonic()
        points = 0
        for pts in converted:
            for i in range(0, len(pts), BATCH):
                batch = pts[i:i + BATCH]
                await api.write(bucket="bench", record=batch)
                points += len(batch)
        c, w = cpu() - c0, time.monotonic() - w0
    return {"points": points, "cpu_s": c, "wall_s": w}


async def replay(url: str, total_points: int, state: Path, rounds: list[list]) -> dict:
    """Fill the spool (fsync on, as in production), then let the real service replay it."""
    from netmgr.config import Settings
    from netmgr.runtime import DaemonContext
    from netmgr.sdnotify import Notifier
    from netmgr.telemetry.hub import TelemetryHub
    from netmgr.telemetry.lineproto import Encoder
    from netmgr.telemetry.service import SPOOL_DIR, TelemetryService
    from netmgr.telemetry.spool import Spool

    enc = Encoder()
    spool = Spool(state / SPOOL_DIR, 4096 * 2**20).open()
    flat = [p for pts in rounds for p in pts]
    filled = 0
    f0 = time.monotonic()
    while filled < total_points:
        for i in range(0, len(flat), BATCH):
            payload, n = enc.encode(flat[i:i + BATCH])
            spool.append(payload, n)
            filled += n
            if filled >= total_points:
                break
    fill_s = time.monotonic() - f0
    spool_bytes = spool.bytes
    spool.close()
    settings = Settings.model_validate({"daemon": {"state_dir": str(state)},
                                        "influxdb": {"url": url, "flush_interval": 1.0}})
    ctx = DaemonContext(settings, None, None, None, Notifier(), telemetry=TelemetryHub(BATCH))
    svc = TelemetryService(ctx)
    c0, w0 = cpu(), time.monotonic()
    task = asyncio.create_task(svc.run())
    while not (svc.ready.is_set() and svc.spool is not None and svc.spool.pending_bytes == 0):
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    c, w = cpu() - c0, time.monotonic() - w0
    written = svc.points_written
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    return {"points": filled, "written": written, "wall_s": w, "cpu_s": c, "spool_bytes": spool_bytes,
            "fill_s": fill_s, "write_errors": svc.write_errors}


def listener_cost(n_aps: int) -> dict:
    """The poller's listener (ap_points + submit) and what the pipeline then does per poll."""
    from support import fleet

    from netmgr.snmp.points import ap_points
    from netmgr.telemetry.hub import TelemetryHub
    from netmgr.telemetry.lineproto import Encoder
    from netmgr.telemetry.ring import Ring

    aps = fleet.ap_fleet(n_aps)
    now = time.time_ns()
    with tempfile.TemporaryDirectory() as d:
        ring = Ring(Path(d) / "t.db", 6).open()
        enc = Encoder()
        # The first minute opens every series (ring and encoder caches); the second is the steady state.
        for minute in range(2):
            hub = TelemetryHub(BATCH, queue_max=10**7)
            c0 = cpu()
            for ap in aps:
                hub.submit(ap_points(ap, now + minute * 60 * 10**9))
            listener = cpu() - c0
            pts = list(hub.queue)
            c0 = cpu()
            for i in range(0, len(pts), BATCH):
                enc.encode(pts[i:i + BATCH])
                ring.write(pts[i:i + BATCH])
            pipeline = cpu() - c0
        ring.close()
    return {"polls": n_aps, "points": len(pts), "listener_us_per_poll": listener / n_aps * 1e6,
            "pipeline_us_per_poll": pipeline / n_aps * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aps", type=int, default=2000)
    ap.add_argument("--speakers", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--spool-points", type=int, default=500_000)
    ap.add_argument("--listener-aps", type=int, default=10_000)
    args = ap.parse_args()

    from support import services

    vm = services.VictoriaMetrics()
    try:
        rounds = province_rounds(args.aps, args.speakers, args.rounds)
        r0 = vm_rows(vm)
        nm = asyncio.run(netmgr_send(vm.url, rounds))
        want = r0 + nm["warm_fields"] + nm["fields"]
        deadline = time.monotonic() + 30
        while (r1 := vm_rows(vm)) < want and time.monotonic() < deadline:
            time.sleep(0.2)  # the server counts what it ingested a moment after answering
        peer = asyncio.run(client_send(vm.url, rounds))
        with tempfile.TemporaryDirectory() as d:
            rp = asyncio.run(replay(vm.url, args.spool_points, Path(d), rounds))
        lc = listener_cost(args.listener_aps)
    finally:
        vm.stop()

    results = []
    for name, r in (("netmgr", nm), ("influxdb_client.Point", peer)):
        line = {"bench": "telemetry", "encoder": name, "points": r["points"],
                "points_per_cpu_s": round(r["points"] / r["cpu_s"]), "points_per_s": round(r["points"] / r["wall_s"]),
                "cpu_us_per_point": round(r["cpu_s"] / r["points"] * 1e6, 2)}
        if name == "netmgr":
            line |= {"encode_us_per_point": round(nm["encode_cpu_s"] / nm["points"] * 1e6, 2),
                     "fields_per_point": round(nm["fields"] / nm["points"], 2), "requests": nm["requests"],
                     "vm_rows_inserted": r1 - r0 - nm["warm_fields"], "fields_sent": nm["fields"],
                     "target_points_per_cpu_s": ">= 100000"}
        results.append(line)
        print(json.dumps(line))
    ratio = results[0]["points_per_cpu_s"] / results[1]["points_per_cpu_s"]
    print(json.dumps({"bench": "telemetry", "result": "cpu_ratio_peer_over_netmgr", "value": round(ratio, 2)}))
    replay_line = {"bench": "telemetry", "result": "spool_replay", "points": rp["points"], "written": rp["written"],
                   "points_per_s": round(rp["points"] / rp["wall_s"]),
                   "points_per_cpu_s": round(rp["points"] / rp["cpu_s"]),
                   "spool_mb": round(rp["spool_bytes"] / 2**20, 1),
                   "bytes_per_point_on_disk": round(rp["spool_bytes"] / rp["points"], 1),
                   "spool_fill_points_per_s": round(rp["points"] / rp["fill_s"]),
                   "write_errors": rp["write_errors"], "target_points_per_s": ">= 50000"}
    print(json.dumps(replay_line))
    at_10k = (lc["listener_us_per_poll"] + lc["pipeline_us_per_poll"]) * 10_000 / 60 / 1e6
    listener_line = {"bench": "telemetry", "result": "poller_listener", "polls": lc["polls"],
                     "points_per_poll": round(lc["points"] / lc["polls"], 2),
                     "listener_us_per_poll": round(lc["listener_us_per_poll"], 1),
                     "pipeline_us_per_poll": round(lc["pipeline_us_per_poll"], 1),
                     "core_fraction_at_10000_aps_per_min": round(at_10k, 4)}
    print(json.dumps(listener_line))

    n, p = results
    print(f"\ntelemetry: {n['points']} points ({args.aps} APs + {args.speakers} speakers x {args.rounds} rounds, "
          f"{n['fields_per_point']} fields/point) to VictoriaMetrics on loopback, batches of {BATCH}, gzip")
    print(f"  netmgr              {n['points_per_cpu_s']:>8} points/CPU-s ({n['cpu_us_per_point']} µs/point, "
          f"of which encode {n['encode_us_per_point']} µs), {n['points_per_s']} points/s "
          f"(target >= 100000 points/CPU-s)")
    print(f"  influxdb_client     {p['points_per_cpu_s']:>8} points/CPU-s ({p['cpu_us_per_point']} µs/point), "
          f"{p['points_per_s']} points/s; netmgr uses 1/{ratio:.1f} of its CPU")
    print(f"  VictoriaMetrics took {n['vm_rows_inserted']} samples for {n['fields_sent']} fields sent")
    print(f"  spool replay        {replay_line['points_per_s']:>8} points/s ({rp['points']} points, "
          f"{replay_line['spool_mb']} MB on disk, {replay_line['bytes_per_point_on_disk']} B/point) "
          f"(target >= 50000 points/s)")
    print(f"  poller listener     {listener_line['listener_us_per_poll']} µs/poll + pipeline "
          f"{listener_line['pipeline_us_per_poll']} µs/poll (encode + ring) = "
          f"{listener_line['core_fraction_at_10000_aps_per_min']:.3f} of a core at 10,000 APs/min")


if __name__ == "__main__":
    os.environ.setdefault("MIBS", "")
    main()
