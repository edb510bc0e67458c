"""/api/v1/aps/{name}/history and /speakers/{id}/history over a real store and a real ring."""

from __future__ import annotations

import time

import httpx
import pytest

from netmgr.api.app import create_app
from netmgr.auth import create_user
from netmgr.config import Settings
from netmgr.store import db
from netmgr.telemetry.points import Point, speaker_point
from netmgr.telemetry.ring import Ring

ZONES = "- {path: bp, name: BP}\n- {path: bp/dx, name: DX}\n- {path: bp/dx/tp, name: TP}\n"


@pytest.fixture
async def api(tmp_path):
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'netmgr.db'}")
    await db.upgrade(engine)
    sessions = db.sessionmaker(engine)
    async with sessions() as s:
        _, admin = await create_user(s, "root", "admin", [], actor="local:test")
        _, viewer = await create_user(s, "vy", "viewer", [], actor="local:test")
        await s.commit()
    settings = Settings.model_validate({"daemon": {"state_dir": str(tmp_path)}})
    app = create_app(settings, sessions, lambda: {"status": "ok", "services": {}})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        h = {"Authorization": f"Bearer {admin}"}
        assert (await client.post("/api/v1/zones/import", json={"format": "yaml", "text": ZONES},
                                  headers=h)).status_code == 200
        assert (await client.post("/api/v1/aps", json={"name": "ap-1", "host": "192.0.2.1", "zone": "bp/dx/tp"},
                                  headers=h)).status_code == 201
        assert (await client.post("/api/v1/speakers", json={"id": "n-1", "name": "Loa 1", "zone": "bp/dx/tp"},
                                  headers=h)).status_code == 201
        yield client, {"Authorization": f"Bearer {viewer}"}
    await engine.dispose()


async def test_history_needs_a_token_and_names_what_is_missing(api, tmp_path):
    client, viewer = api
    r = await client.get("/api/v1/aps/ap-1/history")
    assert r.status_code == 401
    r = await client.get("/api/v1/aps/nope/history", headers=viewer)
    assert r.status_code == 404 and r.json()["error"] == "AP 'nope' not found"
    r = await client.get("/api/v1/speakers/nope/history", headers=viewer)
    assert r.status_code == 404 and r.json()["error"] == "speaker 'nope' not found"
    r = await client.get("/api/v1/aps/ap-1/history", headers=viewer, params={"minutes": 0})
    assert r.status_code == 422 and "minutes" in r.json()["error"]
    r = await client.get("/api/v1/aps/ap-1/history", headers=viewer)  # no ring yet: no rows, no error
    assert r.status_code == 200 and r.json()["items"] == []


async def test_a_viewer_reads_ap_and_speaker_history_from_the_ring(api, tmp_path):
    client, viewer = api
    ring = Ring(tmp_path / "telemetry.db", hours=6).open()
    now = time.time_ns()
    pts = []
    for k in range(8):
        ts = now - (8 - k) * 60 * 10**9
        pts.append(Point("ap", {"ap": "ap-1", "zone": "bp/dx/tp"},
                         {"up": 1, "response_ms": 10.0 + k, "clients": k}, ts))
        pts.append(Point("ap_if", {"ap": "ap-1", "zone": "bp/dx/tp", "ifname": "eth0"},
                         {"rx_bps": 1e6 * k, "tx_bps": 5e5 * k}, ts))
        pts.append(Point("ap_if", {"ap": "ap-1", "zone": "bp/dx/tp", "ifname": "wlan0"},
                         {"rx_bps": 1e3, "tx_bps": 1e3}, ts))
        pts.append(speaker_point("n-1", "bp/dx/tp", {"rssi_dbm": -70.0 - k, "volume": 60, "playing": False},
                                 k % 2 == 0, ts))
    pts.append(Point("ap", {"ap": "ap-1", "zone": "bp/dx/tp"}, {"up": 0}, now - 100 * 60 * 10**9))  # too old
    ring.write(pts)
    ring.close()
    r = await client.get("/api/v1/aps/ap-1/history", headers=viewer, params={"limit": 3})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["clients"] for i in items] == [5, 6, 7]
    assert items[-1]["response_ms"] == 17.0 and items[-1]["up"] == 1
    assert items[-1]["ifname"] == "eth0" and items[-1]["rx_bps"] == 7e6 and items[-1]["tx_bps"] == 3.5e6
    r = await client.get("/api/v1/aps/ap-1/history", headers=viewer, params={"minutes": 5})
    assert len(r.json()["items"]) == 4
    r = await client.get("/api/v1/speakers/n-1/history", headers=viewer)
    items = r.json()["items"]
    assert len(items) == 8 and items[0]["rssi_dbm"] == -70.0 and items[0]["online"] == 1
    assert items[1]["online"] == 0 and items[0]["playing"] == 0
