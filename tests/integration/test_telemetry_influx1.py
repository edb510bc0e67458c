"""The telemetry pipeline against Debian's InfluxDB 1.6 through its own v1 ``/write`` (``api = "v1"``).

Points built by netmgr's own builders go through the real TelemetryService and
are read back with InfluxQL, value by value. A missing database keeps every
point in the spool until it is created; a field type conflict costs that field
only; the password never reaches a log line or ``where``. Every status and
message is the real engine's.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import math
import time

import pytest
from aiohttp import web
from support import fleet
from support.services import free_port
from support.telemetry import idle, province_points, rows, run_id, running_service, settings_for
from support.waiting import until

from netmgr.errors import SinkRetryable
from netmgr.telemetry.lineproto import MAX_TAG, Encoder
from netmgr.telemetry.points import Point, netmgr_point, speaker_point
from netmgr.telemetry.sink import InfluxSink


def stored(influxdb1, db: str, measurement: str, where: str) -> dict[tuple[frozenset, int], dict]:
    """(tags, timestamp) -> the fields InfluxDB holds (tags and fields that are absent left out)."""
    out = {}
    for r in rows(influxdb1, db, f'SELECT * FROM "{measurement}" WHERE {where} GROUP BY *'):
        tags = frozenset((k, v) for k, v in r.pop("tags").items() if v)
        ts = r.pop("time")
        out[(tags, ts)] = {k: v for k, v in r.items() if v is not None}
    return out


def expected(pts: list[Point], measurement: str) -> dict[tuple[frozenset, int], dict]:
    """What InfluxDB must hold for the builders' points: tags as given (empty left out), every finite field."""
    out = {}
    for p in pts:
        if p.measurement != measurement:
            continue
        tags = frozenset((k, v[:MAX_TAG]) for k, v in p.tags.items() if v)
        fields = {k: int(v) if isinstance(v, bool) else v for k, v in p.fields.items()
                  if v is not None and not (isinstance(v, float) and not math.isfinite(v))}
        out[(tags, p.ts_ns)] = fields
    return out


def compare(influxdb1, db: str, measurement: str, where: str, pts: list[Point]) -> int:
    want = expected(pts, measurement)
    assert len(want) == sum(p.measurement == measurement for p in pts) > 0
    got = stored(influxdb1, db, measurement, where)
    assert set(got) == set(want), (measurement, sorted(set(want) - set(got), key=str)[:3],
                                   sorted(set(got) - set(want), key=str)[:3])
    for key, fields in want.items():
        assert set(got[key]) == set(fields), (measurement, key, got[key], fields)
        for k, v in fields.items():
            g = got[key][k]
            if isinstance(v, str):
                assert g == v, (measurement, k, g, v)
            else:
                # InfluxQL answers JSON numbers: int64 beyond 2^53 would come back rounded.
                assert math.isclose(g, v, rel_tol=1e-12, abs_tol=1e-12), (measurement, key, k, g, v)
    return len(want)


def speakers(run: str, n: int, ts: int) -> list[Point]:
    return [speaker_point(f"{run}-{i:03d}", "binh-phuoc/dong-xoai/tan-phu", fleet.speaker_telemetry(i), True,
                          ts + i * 10**6) for i in range(n)]


def v1(tmp_path, influxdb1, db: str, **influx):
    return settings_for(tmp_path, influxdb1.url, api="v1", bucket=db, **influx)


# --------------------------------------------------------------------------- through the service


async def test_points_from_the_builders_arrive_in_influxdb_16(influxdb1, tmp_path):
    run = run_id("rb")
    db = f"netmgr_{run}"
    influxdb1.create_db(db)
    ts = time.time_ns() - 60 * 10**9
    pts = province_points(run, ts)
    async with running_service(v1(tmp_path, influxdb1, db)) as svc:
        assert svc.sink is not None and svc.sink.where == f"InfluxDB 1.x {influxdb1.url} (database '{db}')"
        svc.hub.submit(pts)
        await until(lambda: svc.points_written >= len(pts) and idle(svc), 30, "the points to be written")
        health = svc.health()
    assert health["points_dropped"] == 0 and health["write_errors"] == 0 and health["last_error"] is None
    enc = health["encoder"]
    assert enc["type_conflicts"] == 0 and enc["nonfinite"] == 0 and enc["bad_values"] == 0
    assert {p.measurement for p in pts} == {"ap", "ap_if", "ap_radio", "speaker", "broadcast", "netmgr"}
    n = 0
    for measurement in ("ap", "ap_if", "ap_radio"):
        n += compare(influxdb1, db, measurement, f"ap =~ /^{run}-/", pts)
    n += compare(influxdb1, db, "speaker", f"node =~ /^{run}-/", pts)
    n += compare(influxdb1, db, "broadcast", f"zone = '{run}/dong-xoai/tan-phu'", pts)
    n += compare(influxdb1, db, "netmgr", f"host = '{run}'", pts)
    assert n == len(pts)
    # Field types as the schema says (InfluxDB 1.x keeps the first type it saw per shard).
    types = {(r["fieldKey"], r["fieldType"]) for r in rows(influxdb1, db, 'SHOW FIELD KEYS FROM "speaker"')}
    assert {("volume", "integer"), ("rssi_dbm", "float"), ("firmware", "string")} <= types


async def test_a_missing_database_keeps_every_point_until_it_is_created(influxdb1, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="netmgr")
    run = run_id("nodb")
    db = f"netmgr_{run}"
    pts = speakers(run, 40, time.time_ns() - 30 * 10**9)
    async with running_service(v1(tmp_path, influxdb1, db)) as svc:
        svc.hub.submit(pts)
        await until(lambda: svc.spool.points >= len(pts) and svc.hub.depth == 0 and not svc.outbox, 30,
                    "every point in the spool")
        health = svc.health()
        assert health["points_written"] == 0 and health["points_dropped"] == 0 and health["write_errors"] >= 1
        err = health["last_error"]
        assert f"InfluxDB 1.x {influxdb1.url} (database '{db}') answered HTTP 404" in err
        assert f"the database '{db}' does not exist: create it (CREATE DATABASE \"{db}\")" in err
        assert "check [influxdb] bucket" in err and f'database not found: "{db}"' in err
        assert "kept in the spool" in err
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert any("HTTP 404" in m and "CREATE DATABASE" in m for m in warnings)

        influxdb1.create_db(db)
        await until(lambda: idle(svc) and svc.points_written >= len(pts), 60,
                    "the spool to drain into the new database")
        health = svc.health()
    assert health["points_dropped"] == 0 and health["spool_points"] == 0
    assert any("writes again" in r.getMessage() for r in caplog.records)
    assert compare(influxdb1, db, "speaker", f"node =~ /^{run}-/", pts) == len(pts)


async def test_a_field_type_conflict_drops_only_that_field(influxdb1, tmp_path):
    run = run_id("tc")
    db = f"netmgr_{run}"
    influxdb1.create_db(db)
    now = time.time_ns()
    # Someone stored volume as a float in this shard: 1.6 refuses integer volumes from now on.
    influxdb1.write(db, f"speaker,node={run}-old volume=55.5 {now - 10**9}".encode())
    pts = [speaker_point(f"{run}-{i:02d}", "z/a", {"volume": 40 + i, "rssi_dbm": -70.0 - i, "net": "4g"}, True,
                         now + i) for i in range(30)]
    neighbours = [netmgr_point("telemetry", {"queue_depth": i}, now + i, host=run) for i in range(10)]
    async with running_service(v1(tmp_path, influxdb1, db)) as svc:
        svc.hub.submit(pts + neighbours)
        await until(lambda: svc.points_written >= 40 and idle(svc), 30, "the batch to be written")
        health = svc.health()
        assert health["fields_dropped_by_server"] == 30
        assert health["points_dropped"] == 0 and health["write_errors"] == 0
        # The encoder learned the stored type: the next integer volume is written as a float.
        svc.hub.submit([speaker_point(f"{run}-next", "z/a", {"volume": 41}, True, now + 500)])
        await until(lambda: svc.points_written >= 41 and idle(svc), 30, "the next point to be written")
        assert svc.sink is not None and svc.sink.fields_dropped == 30
    got = stored(influxdb1, db, "speaker", f"node =~ /^{run}-\\d/")
    assert len(got) == 30
    want = expected(pts, "speaker")
    for key, fields in want.items():
        assert "volume" in fields
        assert got[key] == {k: v for k, v in fields.items() if k != "volume"}  # that field, nothing else
    assert len(stored(influxdb1, db, "netmgr", f"host = '{run}'")) == 10
    assert rows(influxdb1, db, f"SELECT volume FROM speaker WHERE node = '{run}-next'")[0]["volume"] == 41.0
    assert rows(influxdb1, db, f"SELECT volume FROM speaker WHERE node = '{run}-old'")[0]["volume"] == 55.5


async def test_the_password_never_reaches_a_log_line_or_where(influxdb1, tmp_path, caplog):
    """influxdb1 runs without auth (it ignores the credentials); every message that names the
    server is produced: the start, a 404, a type conflict, writing again, the drain."""
    caplog.set_level(logging.DEBUG)
    password = "pw-SECRET-never-logged-456"
    run = run_id("pw")
    db = f"netmgr_{run}"
    settings = v1(tmp_path, influxdb1, f"{db}/autogen", username="netmgr", token=password)
    assert settings.influxdb.token.get_secret_value() == password
    now = time.time_ns()
    pts = [speaker_point(f"{run}-{i}", "z/a", {"volume": i, "net": "wifi"}, True, now + i) for i in range(5)]
    async with running_service(settings) as svc:
        assert svc.sink is not None
        where = svc.sink.where
        assert where == f"InfluxDB 1.x {influxdb1.url} (database '{db}', retention policy 'autogen')"
        svc.hub.submit(pts)
        await until(lambda: svc.spool.points >= len(pts), 30, "the points in the spool")
        assert "HTTP 404" in svc.health()["last_error"]
        influxdb1.create_db(db)
        influxdb1.write(db, f"speaker,node={run}-old volume=1.5 {now - 10**9}".encode())
        await until(lambda: idle(svc) and svc.points_written >= len(pts), 60, "the spool to drain")
        health = svc.health()
    messages = [r.getMessage() for r in caplog.records]
    assert any("HTTP 404" in m for m in messages) and any("writes again" in m for m in messages)
    assert any("stores speaker.volume as f" in m for m in messages) and any("drained" in m for m in messages)
    assert sum(where in m for m in messages) >= 3
    for text in (caplog.text, "\n".join(messages), where, json.dumps(health, default=str), str(svc.last_error)):
        assert password not in text
        assert base64.b64encode(f"netmgr:{password}".encode()).decode() not in text
    assert len(stored(influxdb1, db, "speaker", f"node =~ /^{run}-\\d/")) == len(pts)


async def test_reload_from_v2_to_v1_switches_the_sink_and_the_spool_follows(influxdb1, tmp_path):
    """1.6 has no /api/v2/write (404): points wait in the spool; a reload to api v1 writes them."""
    run = run_id("rl")
    db = f"netmgr_{run}"
    influxdb1.create_db(db)
    pts = speakers(run, 20, time.time_ns() - 20 * 10**9)
    async with running_service(settings_for(tmp_path, influxdb1.url, bucket=db)) as svc:
        svc.hub.submit(pts)
        await until(lambda: svc.spool.points >= len(pts), 30, "points spooled while the API is wrong")
        assert "HTTP 404" in svc.health()["last_error"]
        await svc.reload(v1(tmp_path, influxdb1, db))
        assert svc.sink is not None and svc.sink.api == "v1"
        assert svc.health()["influxdb"] == f"InfluxDB 1.x {influxdb1.url} (database '{db}')"
        await until(lambda: idle(svc) and svc.points_written >= len(pts), 60, "the spool replayed over v1")
        first = svc.sink
        await svc.reload(v1(tmp_path, influxdb1, db, username="netmgr"))  # a new user is a new sink
        assert svc.sink is not first and svc.sink.username == "netmgr"
        same = svc.sink
        await svc.reload(v1(tmp_path, influxdb1, db, username="netmgr", batch_size=10))
        assert svc.sink is same
    assert compare(influxdb1, db, "speaker", f"node =~ /^{run}-/", pts) == len(pts)


# --------------------------------------------------------------------------- the sink alone


async def test_bisect_over_v1_drops_exactly_the_refused_lines(influxdb1):
    db = f"ret_{run_id('bi')}"
    influxdb1.query(f'CREATE DATABASE "{db}" WITH DURATION 1h', method="POST")
    now = time.time_ns()
    old = now - 3 * 86400 * 10**9  # beyond the 1 h retention: "partial write: points beyond retention policy"
    bad_at = {3, 250, 251, 600, 999}
    pts = [Point("netmgr", {"component": "poller", "host": f"h{i}"}, {"polls": i}, old if i in bad_at else now)
           for i in range(1000)]
    payload, _ = Encoder().encode(pts)
    async with InfluxSink(influxdb1.url, "", db, "", api="v1") as sink:
        assert await sink.write(payload) == len(bad_at)
        assert sink.lines_dropped == len(bad_at)
        assert sink.requests < 1 + 2 * len(bad_at) * 10  # halving, not line by line
    hosts = {r["tags"]["host"] for r in rows(influxdb1, db, 'SELECT * FROM "netmgr" GROUP BY *')}
    assert hosts == {f"h{i}" for i in range(1000) if i not in bad_at}


class Decompressing:
    """The sink's session behind a proxy that decompresses the body but keeps saying it is gzip."""

    def __init__(self, session) -> None:
        self.session = session

    def post(self, url, *, data, **kw):
        return self.session.post(url, data=gzip.decompress(data), **kw)

    async def close(self) -> None:
        await self.session.close()


async def test_unknown_retention_policy_and_a_broken_body_are_configuration(influxdb1):
    db = f"rp_{run_id('rp')}"
    influxdb1.create_db(db)
    async with InfluxSink(influxdb1.url, "", f"{db}/nope", "", api="v1") as sink:
        with pytest.raises(SinkRetryable) as e:
            await sink.write(b"m v=1i 1")
    assert e.value.kind == "config" and sink.lines_dropped == 0
    msg = str(e.value)
    assert f"(database '{db}', retention policy 'nope') answered HTTP 500" in msg
    assert "retention policy 'nope' does not exist" in msg and "check [influxdb] bucket" in msg

    async with InfluxSink(influxdb1.url, "", db, "", api="v1") as sink:
        sink._session = Decompressing(sink._session)
        payload, _ = Encoder().encode([Point("netmgr", {"host": f"h{i}"}, {"polls": i}, 1 + i) for i in range(50)])
        with pytest.raises(SinkRetryable) as e:
            await sink.write(payload)
        assert sink.requests == 1 and sink.lines_dropped == 0
    assert e.value.kind == "config" and "refused the request itself (HTTP 400" in str(e.value)


class Recorder:
    """A stand-in /write that records each request and answers what the test queued."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: list[dict] = []
        self.answers: list[web.Response] = []

    async def write(self, request: web.Request) -> web.Response:
        self.seen.append({"path": request.path, "query": dict(request.query), "raw_url": str(request.rel_url),
                          "headers": dict(request.headers), "body": await request.read()})
        return self.answers.pop(0) if self.answers else web.Response(status=204)

    async def __aenter__(self) -> Recorder:
        app = web.Application()
        app.router.add_post("/write", self.write)
        self.runner = web.AppRunner(app, auto_decompress=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


async def test_the_request_is_v1_write_gzip_and_basic_auth():
    password = "pw-in-the-header-only"
    async with Recorder() as rec:
        async with InfluxSink(rec.url + "/", "ignored-org", "netmgr/weekly", password, api="v1",
                              username="noc") as sink:
            assert await sink.write(b"m v=1i 1\nm v=2i 2") == 0
            req = rec.seen[0]
            assert req["path"] == "/write"
            assert req["query"] == {"db": "netmgr", "rp": "weekly", "precision": "ns"}
            assert req["headers"]["Content-Encoding"] == "gzip"
            assert gzip.decompress(req["body"]) == b"m v=1i 1\nm v=2i 2"
            auth = "Basic " + base64.b64encode(f"noc:{password}".encode()).decode()
            assert req["headers"]["Authorization"] == auth
            assert password not in req["raw_url"] and "org" not in req["raw_url"]

            rec.answers = [web.json_response({"error": "authorization failed"}, status=401),
                           web.json_response({"error": "overloaded"}, status=503, headers={"Retry-After": "7"}),
                           web.Response(status=404, text="404 page not found")]
            kinds = []
            for _ in range(3):
                with pytest.raises(SinkRetryable) as e:
                    await sink.write(b"m v=1i 3")
                kinds.append((e.value.kind, e.value.retry_after, str(e.value)))
        async with InfluxSink(rec.url, "", "netmgr", "", api="v1") as sink:  # no user: no auth header
            assert await sink.write(b"m v=1i 4") == 0
        assert "Authorization" not in rec.seen[-1]["headers"]
        assert rec.seen[-1]["query"] == {"db": "netmgr", "precision": "ns"}
    assert kinds[0][0] == "config" and "check [influxdb] username and token" in kinds[0][2]
    assert kinds[0][2].endswith("HTTP 401 (the user name or password was refused: check [influxdb] username "
                                "and token): authorization failed; points are kept in the spool")
    assert kinds[1][:2] == ("server", 7.0) and "HTTP 503: overloaded" in kinds[1][2]
    assert kinds[2][0] == "config" and "no InfluxDB 1.x /write there: check [influxdb] url and api" in kinds[2][2]
    assert all(password not in k[2] for k in kinds)
