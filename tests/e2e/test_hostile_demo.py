"""Issue 12's hostile run, repeated against `netmgr demo`: an operator of one commune, a second
operator, a viewer and a disabled user try what broke before. Afterwards the daemon is healthy,
no service restarted, its RSS is within 50 MB of where it started, and every refused write is in
the audit log. (Store outages need PostgreSQL and the rendered mosquitto ACL needs mosquitto: they
are tested in tests/integration/test_hardening.py; the demo's own broker is tried here.)"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest
from support.services import free_port
from support.waiting import read_until

TAN_PHU = "binh-phuoc/dong-xoai/tan-phu"
TAN_TIEN = "binh-phuoc/dong-phu/tan-tien"


async def test_hostile_run_leaves_the_demo_healthy(tmp_path):
    import aiomqtt

    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "netmgr", "demo", "--api-port", str(free_port())],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = read_until(proc, "curl -s", 90)
        exports = dict(kv.split("=", 1) for kv in next(x for x in lines if "export NETMGR_SERVER=" in x).split()[1:])
        mqtt_port = int(re.search(r"mqtt://127\.0\.0\.1:(\d+)", "".join(lines)).group(1))
        url, admin = exports["NETMGR_SERVER"], exports["NETMGR_TOKEN"]
        rss0 = psutil.Process(proc.pid).memory_info().rss
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            async def as_(token, method, path, **kw):
                headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **kw.pop("headers", {})}
                return await http.request(method, path, headers=headers, **kw)

            tokens = {}
            for name, role, zones, em in [("op", "operator", [TAN_PHU], False), ("op2", "operator", [TAN_TIEN], False),
                                          ("eye", "viewer", [], False), ("gone", "viewer", [], False)]:
                r = await as_(admin, "POST", "/api/v1/users", json={"name": name, "role": role, "zones": zones,
                                                                      "can_emergency": em})
                assert r.status_code == 201, r.text
                tokens[name] = r.json()["token"]
            assert (await as_(admin, "POST", "/api/v1/users/gone/disable")).status_code == 200
            op, op2, eye, gone = (tokens[n] for n in ("op", "op2", "eye", "gone"))
            refused_writes = 0

            async def expect(status, token, method, path, **kw):
                nonlocal refused_writes
                r = await as_(token, method, path, **kw)
                assert r.status_code == status, (method, path, r.status_code, r.text[:300])
                if status in (401, 403) and method != "GET":
                    refused_writes += 1
                return r

            # 1. zone strings in commands
            for z in (TAN_PHU + "/#", "\x00", "../../x"):
                await expect(422, op, "POST", "/api/v1/commands",
                             json={"method": "ping", "ttl_s": 900, "zones": [z], "nodes": ["loa-tan-phu-03"]})
            # 2. an import moving another commune's speaker
            await expect(403, op, "POST", "/api/v1/speakers/import", json={
                "format": "csv", "text": f"id,name,zone\nloa-tan-tien-01,hijack,{TAN_PHU}\n"})
            # 3. a refused broadcast with text
            await expect(403, eye, "POST", "/api/v1/broadcast/now", json={"zones": [TAN_PHU], "text": "Xin chào"})
            # 4. big bodies: refused before parsing, capped, the 413 telling the limit
            big = {"format": "csv", "text": "path,name\n" + "binh-phuoc/x,X\n" * 330_000}  # ~5 MB
            rs = await asyncio.gather(*(as_(eye, "POST", "/api/v1/zones/import", json=big) for _ in range(4)),
                                      http.get("/healthz"))
            assert [r.status_code for r in rs] == [403, 403, 403, 403, 200]
            refused_writes += 4

            async def chunks(n, size=1024 * 1024):
                for _ in range(n):
                    yield b"\0" * size

            r = await as_(op, "POST", "/api/v1/media", params={"filename": "big.mp3"}, content=chunks(100),
                          headers={"Content-Type": "application/octet-stream"})
            assert r.status_code == 413 and "100.0 MB is over the 50 MB limit" in r.json()["error"], r.text
            r = await as_(op, "POST", "/api/v1/zones/import", content=chunks(20),
                          headers={"Content-Type": "application/json"})
            assert r.status_code == 413 and "8 MB limit" in r.json()["error"], r.text
            # 5. overflow
            await expect(422, op, "GET", "/api/v1/programs/9223372036854775808")
            await expect(422, op, "DELETE", "/api/v1/programs/99999999999999999999999")
            await expect(422, op, "POST", "/api/v1/programs", json={
                "title": "x", "content": {"kind": "url", "url": "http://127.0.0.1/a.mp3"},
                "targets": {"zones": [TAN_PHU]}, "when": {"kind": "once", "start": "9999-12-31T23:59:59Z"},
                "duration": "1m"})
            # 6. control characters in names
            await expect(422, admin, "POST", "/api/v1/zones", json={
                "path": TAN_PHU + "/ap-x", "name": "A\x00\x07\x1b[31m\u202eB"})
            await expect(422, op, "POST", "/api/v1/speakers", json={
                "id": "loa-x", "zone": TAN_PHU, "name": "\x1b]0;pwned\x07"})
            # 8. a write with no token; a disabled user's
            await expect(401, None, "POST", "/api/v1/zones", json={"path": "x", "name": "X"})
            await expect(401, gone, "POST", "/api/v1/zones", json={"path": "x", "name": "X"})
            # 9. a dangling media reference: well formed, naming what the store does not have (409)
            await expect(409, op, "POST", "/api/v1/programs", json={
                "title": "x", "content": {"kind": "media", "media_id": "ab" * 32}, "targets": {"zones": [TAN_PHU]},
                "when": {"kind": "daily", "at": "06:00"}, "duration": "1m"})
            # 10. the demo's emergency (dong-phu) cancelled by a dong-phu commune's operator without the right
            emergency = next(p for p in (await as_(admin, "GET", "/api/v1/programs")).json()["items"]
                             if p["priority"] == "emergency")
            await expect(403, op2, "DELETE", f"/api/v1/programs/{emergency['id']}")
            # 11. a bogus session; 12. 3,000 spoofed node ids
            async with aiomqtt.Client("127.0.0.1", mqtt_port, identifier="hostile",
                                      protocol=aiomqtt.ProtocolVersion.V311) as c:
                await c.publish("netmgr/v1/node/loa-tan-phu-02/status",
                                json.dumps({"state": "offline", "session": 9007199254740992}), qos=1, retain=True)
                for i in range(3000):
                    await c.publish(f"netmgr/v1/node/spoof-{i}/telemetry", b'{"ts": 1}', qos=0)
                await c.publish("netmgr/v1/node/loa-tan-phu-02/status", b"", qos=1, retain=True)

                async def counted():
                    bad = (await http.get("/healthz")).json()["services"]["radio"].get("bad_messages") or {}
                    return sum(bad.values()) >= 3001 if isinstance(bad, dict) else bad >= 3001
                # Connected until counted: a run that disconnected at once once saw a few hundred of
                # the QoS 0 messages never reach the daemon (lost on the way through amqtt).
                deadline = time.monotonic() + 30
                while not await counted():
                    assert time.monotonic() < deadline, "the spoofed messages were not all counted"
                    await asyncio.sleep(0.2)
            st = (await as_(admin, "GET", "/api/v1/speakers/loa-tan-phu-02/status")).json()
            assert st["status"] == "online", st
            # 13. the daemon's client ids (and user name) are refused to anyone without its password,
            # so no one takes its persistent session over; the daemon stays connected
            for ident, user in (("netmgr-demo-in", None), ("netmgr-demo", None),
                                ("netmgr-demo-in", "netmgr-demo"), ("mine", "netmgr-demo")):
                with pytest.raises(aiomqtt.MqttError):
                    async with aiomqtt.Client("127.0.0.1", mqtt_port, identifier=ident, username=user,
                                              password="guess" if user else None,
                                              protocol=aiomqtt.ProtocolVersion.V311):
                        pass
            radio = (await http.get("/healthz")).json()["services"]["radio"]
            assert radio["connected"] is True and radio["restarts"] == 0, radio

            # The daemon afterwards.
            health = (await http.get("/healthz")).json()
            assert health["status"] == "ok", health
            assert all(s["restarts"] == 0 for s in health["services"].values()), health
            rss1 = psutil.Process(proc.pid).memory_info().rss
            assert rss1 - rss0 < 50 * 1024 * 1024, f"RSS grew {(rss1 - rss0) / 2**20:.0f} MB"
            audit = (await as_(admin, "GET", "/api/v1/audit", params={"outcome": "denied", "limit": 10000})).json()
            assert audit["count"] >= refused_writes, (audit["count"], refused_writes)
            print(json.dumps({"rss_start_mb": round(rss0 / 2**20), "rss_end_mb": round(rss1 / 2**20),
                              "refused_writes": refused_writes, "denied_in_audit": audit["count"]}))
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, rest[-3000:]
        spoof_lines = [x for x in rest.splitlines() if "kind=unknown_node" in x]
        assert len(spoof_lines) <= 20, len(spoof_lines)
    finally:
        if proc.poll() is None:
            proc.kill()
