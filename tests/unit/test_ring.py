"""The SQLite ring: batches in, history out by tag, pruned to its window, read-only readers."""

from __future__ import annotations

import math
import sqlite3
import threading

from netmgr.telemetry import ring as ringmod
from netmgr.telemetry.points import Point
from netmgr.telemetry.ring import Ring

H = 3600 * 10**9


def test_write_history_and_prune(tmp_path):
    r = Ring(tmp_path / "telemetry.db", hours=2).open()
    now = 100 * H
    pts = []
    for minute in range(0, 4 * 60, 10):  # four hours of points, every ten minutes
        ts = now - 4 * H + minute * 60 * 10**9
        pts.append(Point("ap", {"ap": "a1", "zone": "z"}, {"up": 1, "clients": minute, "nan": math.nan}, ts))
        pts.append(Point("ap", {"ap": "a2", "zone": "z"}, {"up": 0}, ts))
        pts.append(Point("ap_if", {"ap": "a1", "zone": "z", "ifname": "eth0"}, {"rx_bps": 1.5}, ts))
    assert r.write(pts) == len(pts)
    rows = r.history("ap", "ap", "a1", since=now - 1 * H, fields=["clients"])
    assert [x["fields"]["clients"] for x in rows] == list(range(180, 240, 10))
    assert all(x["tags"] == {"ap": "a1", "zone": "z"} for x in rows)
    full = r.history("ap", "ap", "a1", since=0)
    assert "nan" not in full[0]["fields"]  # strict JSON for the API
    assert r.history("ap_if", "ap", "a1", since=0)[0]["tags"]["ifname"] == "eth0"
    assert r.history("ap", "ap", "nope", since=0) == []
    latest = r.history("ap", "ap", "a1", since=0, limit=2)
    assert [x["fields"]["clients"] for x in latest] == [220, 230]  # the newest, oldest first
    pruned = r.prune(now_ns=now)
    assert pruned == 3 * 12 and r.count() == 3 * 12
    assert r.history("ap", "ap", "a1", since=0)[0]["ts"] >= now - 2 * H
    # A second process reads the same file read-only while this one writes.
    assert ringmod.history(tmp_path / "telemetry.db", "ap", "ap", "a2", since=0)[-1]["fields"] == {"up": 0}
    r.close()


def test_reopen_keeps_series_and_points(tmp_path):
    r = Ring(tmp_path / "t.db", hours=1).open()
    r.write([Point("speaker", {"node": "n1", "zone": "z", "net": ""}, {"online": 1}, 1)])
    r.close()
    r = Ring(tmp_path / "t.db", hours=1).open()
    r.write([Point("speaker", {"node": "n1", "zone": "z", "net": ""}, {"online": 0}, 2)])
    rows = r.history("speaker", "node", "n1", since=0)
    assert [x["fields"]["online"] for x in rows] == [1, 0]
    assert r._db.execute("SELECT count(*) FROM series").fetchone()[0] == 1
    assert rows[0]["tags"] == {"node": "n1", "zone": "z"}  # empty tags are left out, as in InfluxDB


def test_missing_database_reads_as_no_history(tmp_path):
    assert ringmod.history(tmp_path / "none.db", "ap", "ap", "x", since=0) == []
    sqlite3.connect(tmp_path / "empty.db").close()
    assert ringmod.history(tmp_path / "empty.db", "ap", "ap", "x", since=0) == []


def test_concurrent_writers_from_threads(tmp_path):
    r = Ring(tmp_path / "t.db", hours=1).open()

    def write(k: int) -> None:
        for j in range(20):
            r.write([Point("ap", {"ap": f"a{k}"}, {"up": 1}, j * 10 + k) for _ in range(5)])

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r.count("ap") == 4 * 20 * 5
