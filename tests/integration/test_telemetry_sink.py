"""The InfluxDB sink against the real InfluxDB 1.6 engine, and the encoder with it as oracle.

Debian's influxdb 1.6 has no /api/v2/write (1.8 added it as a thin mapping onto
/write: bucket "db/rp", token "user:password"). ``V2Shim`` is that mapping and
nothing else: the request body (gzip and all) goes to the real /write, and the
engine's own status and message come back, so partial writes, field type
conflicts, retention and unknown databases are the engine's decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time

import pytest
from aiohttp import ClientSession, web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.lineproto_reader import parse
from support.services import free_port
from support.telemetry import rows

from netmgr.errors import SinkRetryable
from netmgr.telemetry.lineproto import Encoder
from netmgr.telemetry.points import Point, speaker_point
from netmgr.telemetry.sink import InfluxSink

_n = itertools.count()


class V2Shim:
    """/api/v2/write -> influxdb 1.x /write, as InfluxDB 1.8 does it."""

    def __init__(self, influx_url: str, *, broken_proxy: bool = False) -> None:
        self.influx_url = influx_url
        self.broken_proxy = broken_proxy  # decompress the body but keep saying it is gzip
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests = 0

    async def write(self, request: web.Request) -> web.Response:
        self.requests += 1
        db, _, rp = request.query.get("bucket", "").partition("/")
        params = {"db": db, "precision": request.query.get("precision", "ns"), **({"rp": rp} if rp else {})}
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-encoding", "content-type")}
        async with self.http.post(f"{self.influx_url}/write", params=params, data=await request.read(),
                                  headers=headers) as r:
            return web.Response(status=r.status, body=await r.read(), content_type="application/json")

    async def __aenter__(self) -> V2Shim:
        self.http = ClientSession()
        app = web.Application()
        app.router.add_post("/api/v2/write", self.write)
        self.runner = web.AppRunner(app, auto_decompress=self.broken_proxy)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()
        await self.http.close()


def fresh_db(influxdb1, duration: str | None = None) -> str:
    name = f"t{next(_n)}_{time.time_ns() % 10**8}"
    influxdb1.query(f'CREATE DATABASE "{name}"' + (f" WITH DURATION {duration}" if duration else ""),
                    method="POST")
    return name


async def test_server_side_type_conflict_loses_only_that_field(influxdb1):
    db = fresh_db(influxdb1)
    now = time.time_ns()
    # Someone stored volume as a float in this shard (types are per shard: same week).
    influxdb1.write(db, f"speaker,node=old volume=55.5 {now - 10**9}".encode())
    enc = Encoder()
    pts = [speaker_point(f"n{i}", "z", {"volume": 40 + i, "rssi_dbm": -70.0, "net": "4g"}, True, now + i)
           for i in range(100)]
    neighbours = [Point("netmgr", {"component": "telemetry", "host": "h"}, {"queue_depth": i}, now + i)
                  for i in range(20)]
    async with V2Shim(influxdb1.url) as shim:
        sink = await InfluxSink(shim.url, "org", db, "", learn=enc.learn).open()
        try:
            payload, _ = enc.encode(pts + neighbours)
            assert await sink.write(payload) == 0  # nothing dropped: the field went, not the points
            assert sink.fields_dropped == 100
            got = rows(influxdb1, db, 'SELECT * FROM "speaker" WHERE node != \'old\' GROUP BY *')
            assert len(got) == 100 and all(r["volume"] is None and r["rssi_dbm"] == -70.0 for r in got)
            assert len(rows(influxdb1, db, 'SELECT * FROM "netmgr" GROUP BY *')) == 20
            # The encoder learned the stored type: the next ints are written as floats, nothing lost.
            payload, _ = enc.encode([speaker_point("n-next", "z", {"volume": 41}, True, now + 500)])
            assert await sink.write(payload) == 0
            assert rows(influxdb1, db, "SELECT volume FROM speaker WHERE node = 'n-next'")[0]["volume"] == 41.0
            assert sink.requests == 3
        finally:
            await sink.close()


async def test_bisect_drops_exactly_the_refused_lines(influxdb1):
    db = fresh_db(influxdb1, duration="1h")
    now = time.time_ns()
    old = now - 3 * 86400 * 10**9  # beyond the 1 h retention: refused by the engine
    bad_at = {3, 250, 251, 600, 999}
    pts = [Point("netmgr", {"component": "poller", "host": f"h{i}"}, {"polls": i}, old if i in bad_at else now)
           for i in range(1000)]
    payload, _ = Encoder().encode(pts)
    async with V2Shim(influxdb1.url) as shim, InfluxSink(shim.url, "org", db, "") as sink:
        assert await sink.write(payload) == len(bad_at)
        assert sink.lines_dropped == len(bad_at)
        assert sink.requests < 1 + 2 * len(bad_at) * 10  # halving, not line by line
    hosts = {r["tags"]["host"] for r in rows(influxdb1, db, 'SELECT * FROM "netmgr" GROUP BY *')}
    assert hosts == {f"h{i}" for i in range(1000) if i not in bad_at}


async def test_a_request_refused_as_a_whole_is_never_bisected_away(influxdb1):
    db = fresh_db(influxdb1)
    payload, _ = Encoder().encode([Point("netmgr", {"host": f"h{i}"}, {"polls": i}, 1 + i) for i in range(50)])
    async with V2Shim(influxdb1.url, broken_proxy=True) as shim, InfluxSink(shim.url, "o", db, "") as sink:
        with pytest.raises(SinkRetryable) as e:
            await sink.write(payload)
        assert shim.requests == 1 and sink.lines_dropped == 0
    assert e.value.kind == "config" and "gzip: invalid header" in str(e.value)
    assert "refused the request itself" in str(e.value)


async def test_unknown_bucket_names_url_org_bucket_and_keeps_the_batch(influxdb1):
    async with V2Shim(influxdb1.url) as shim, InfluxSink(shim.url, "noc", "no-such-db", "sekrit-token") as sink:
        with pytest.raises(SinkRetryable) as e:
            await sink.write(b"m v=1i 1")
    assert e.value.kind == "config"
    msg = str(e.value)
    assert f"InfluxDB {shim.url} (org 'noc', bucket 'no-such-db') answered HTTP 404" in msg
    assert "org or bucket does not exist" in msg and "database not found" in msg
    assert "sekrit-token" not in msg


@pytest.mark.parametrize("api", ["v2", "v1"])
async def test_refused_connection_and_silence_are_retryable(api: str):
    """Both write APIs: nobody listening and a server that never answers are retryable; a closed
    sink refuses (config) instead of writing nowhere."""
    org, bucket = ("o", "b") if api == "v2" else ("", "db")
    async with InfluxSink(f"http://127.0.0.1:{free_port()}", org, bucket, "", api=api) as sink:
        with pytest.raises(SinkRetryable) as e:
            await sink.write(b"m v=1i 1")
        assert e.value.kind == "unavailable" and "cannot write" in str(e.value)
    await sink.close()  # closing twice is harmless
    with pytest.raises(SinkRetryable) as e:
        await sink.write(b"m v=1i 1")
    assert e.value.kind == "config" and "closed" in str(e.value)

    accepted = asyncio.Event()

    async def never_answer(reader, writer):
        accepted.set()
        with contextlib.suppress(Exception):
            await reader.read()  # hold the connection, say nothing
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with InfluxSink(f"http://127.0.0.1:{port}", org, bucket, "", api=api, timeout=0.5) as sink:
            t0 = time.monotonic()
            with pytest.raises(SinkRetryable) as e:
                await sink.write(b"m v=1i 1")
            assert e.value.kind == "timeout" and "no answer within 0.5s" in str(e.value)
            assert accepted.is_set() and time.monotonic() - t0 < 5
    finally:
        server.close()
        await server.wait_closed()
    with pytest.raises(ValueError, match="unknown InfluxDB API"):
        InfluxSink("http://x", "", "db", "", api="v3")


# --------------------------------------------------------------------------- the engine as oracle

ORACLE_DB: list[str] = []
text = st.text(min_size=1, max_size=30)
values = st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=40), st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.tuples(st.dictionaries(text, st.text(max_size=30), max_size=4),
                                st.dictionaries(text, values, min_size=1, max_size=5)), min_size=1, max_size=5))
def test_the_engine_accepts_every_line_and_stores_what_it_says(influxdb1, batch):
    """Whatever the input, InfluxDB 1.6 accepts the encoded batch (HTTP 204) and stores each
    line's tags and fields exactly as the line says (read back with InfluxQL)."""
    if not ORACLE_DB:
        ORACLE_DB.append(fresh_db(influxdb1))
    db = ORACLE_DB[0]
    m = f"fuzz{next(_n)}"
    base = 1_700_000_000_000_000_000
    # Tag and field keys apart (InfluxQL renames a field that shares a tag's name).
    pts = [Point(m, {f"t_{k}": v for k, v in tags.items()}, {f"f_{k}": v for k, v in fields.items()}, base + i)
           for i, (tags, fields) in enumerate(batch)]
    payload, n = Encoder(schema={}).encode(pts)
    if not n:
        return
    influxdb1.write(db, payload)
    want = {}
    for line in payload.decode().split("\n"):
        _, tags, fields, ts = parse(line)
        want[ts] = (tags, {k: (int(v) if isinstance(v, bool) else v) for k, v in fields.items()})
    got = {}
    for r in rows(influxdb1, db, f'SELECT * FROM "{m}" GROUP BY *'):
        tags = {k: v for k, v in r.pop("tags").items() if v != ""}
        ts = r.pop("time")
        got[ts] = (tags, {k: v for k, v in r.items() if v is not None})
    assert set(got) == set(want)
    for ts, (tags, fields) in want.items():
        assert got[ts][0] == tags
        assert set(got[ts][1]) == set(fields)
        for k, v in fields.items():
            g = got[ts][1][k]
            if isinstance(v, float):
                assert math.isclose(g, v, rel_tol=1e-15) or g == v
            elif isinstance(v, int):
                # InfluxQL answers JSON numbers: int64 beyond 2^53 come back rounded.
                assert g == v or abs(g - v) <= abs(v) * 2**-52
            else:
                assert g == v

