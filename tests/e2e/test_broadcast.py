"""Broadcasts end to end: `netmgr run` (scheduler + radio) on mosquitto, simulated nodes in two
communes, and commune officials using `netmgr broadcast` — a scheduled program played from the
nodes' cached schedules and confirmed per node, a refused conflict, a refused cross-commune
attempt (audited), an emergency `now --wait` with offline nodes, the plan, the report, iCalendar."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.broadcast_stack import NODES, POLL, A, B, api_up, cli, seed, setup_env, start_daemon
from support.services import free_port, http_get
from support.waiting import until

from netmgr.radio.mqtt import Broker
from netmgr.sim.speakers import SimConfig, SpeakerSim


async def test_broadcast_day(tmp_path: Path, mosquitto_factory) -> None:
    mosquitto = mosquitto_factory()  # its own broker: no retained messages of other tests' nodes
    port = free_port()
    env = setup_env(tmp_path, mosquitto, port)
    env["NETMGR_TOKEN"] = json.loads((await cli(env, "user", "add", "root", "--role", "admin", "--json")).stdout)["token"]
    proc = start_daemon(tmp_path, mosquitto, env)
    try:
        await until(lambda: api_up(port), 30, "the API", interval=POLL)
        tokens = await seed(env, tmp_path)
        op_a = {**env, "NETMGR_TOKEN": tokens["op-a"]}
        op_b = {**env, "NETMGR_TOKEN": tokens["op-b"]}
        chief = {**env, "NETMGR_TOKEN": tokens["chief"]}
        async with SpeakerSim(Broker(port=mosquitto.port, protocol="3.1.1"), list(NODES.items()),
                              SimConfig(telemetry_interval=2)) as sim:
            await sim.wait_connected()

            # A program 15 s ahead for commune A: the nodes get it in their schedule first.
            at = (datetime.now(UTC) + timedelta(seconds=15)).replace(microsecond=0)
            r = json.loads((await cli(op_a, "broadcast", "schedule", "Bản tin thử", "--zone", A, "--url",
                                      "http://127.0.0.1:9/news.mp3", "--at", at.isoformat(), "--duration", "4s",
                                      "--json")).stdout)
            pid = r["id"]
            occ = f"p{pid}-{at:%Y%m%dT%H%M%SZ}"
            await until(lambda: all(sim.nodes[n].schedule and sim.nodes[n].schedule.items
                                    for n in NODES if NODES[n] == A), 15,
                        "the schedule on every node of commune A", interval=POLL)
            assert all(sim.nodes[n].schedule is None or not sim.nodes[n].schedule.items
                       for n in NODES if NODES[n] == B)

            # An overlapping program of the same priority is refused, naming the other one.
            r = await cli(op_a, "broadcast", "schedule", "Trùng giờ", "--zone", A, "--url",
                          "http://127.0.0.1:9/x.mp3", "--at", (at + timedelta(seconds=2)).isoformat(),
                          "--duration", "60s", ok=False)
            assert r.returncode == 1 and "Bản tin thử" in r.stderr and f"id {pid}" in r.stderr, r.stderr
            # An official of commune B may not schedule for commune A.
            r = await cli(op_b, "broadcast", "schedule", "Sai xã", "--zone", A, "--url", "http://127.0.0.1:9/x.mp3",
                          "--daily", "05:00", "--duration", "1h", ok=False)
            assert r.returncode == 1 and A in r.stderr
            # Nor send an emergency without the permission.
            r = await cli(op_b, "broadcast", "now", "--zone", B, "--url", "http://127.0.0.1:9/x.mp3",
                          "--emergency", ok=False)
            assert r.returncode == 1 and "emergency" in r.stderr

            async def played_everywhere():
                c = await cli(env, "speaker", "command", occ, "--json", ok=False)
                if c.returncode:
                    return None
                d = json.loads(c.stdout)
                return d if d["summary"] == {"done": 6} else None
            cmd = await until(played_everywhere, 40, "the scheduled occurrence done on commune A's 6 nodes", interval=POLL)
            assert all(e["data"].get("outcome") == "completed" for e in cmd["deliveries"])
            for n in NODES:
                plays = [e for e in sim.nodes[n].log if e[1] == occ and e[2] == "playing"]
                assert len(plays) == (1 if NODES[n] == A else 0), (n, sim.nodes[n].log)

            # Emergency for the district with two nodes cut off: delivered to the rest, offline reported.
            await sim.set_offline(["tp-5", "tt-3"])

            async def two_offline():
                r = await cli(env, "speaker", "list", "--status", "offline", "--json")
                return len(json.loads(r.stdout)) == 2
            await until(two_offline, 20, "two nodes offline", interval=POLL)
            r = await cli(chief, "broadcast", "now", "--zone", "binh-phuoc/dong-xoai", "--url",
                          "http://127.0.0.1:9/storm.mp3", "--emergency", "--duration", "3s", "--wait", "--json",
                          "--timeout", "40")
            state = json.loads(r.stdout)
            by = {d["node"]: d["state"] for d in state["deliveries"]}
            assert by.pop("tp-5") == "offline" and by.pop("tt-3") == "offline"
            assert set(by.values()) == {"done"}, by
            assert all(sim.nodes[n].volume == 60 for n in NODES)  # the emergency forced 100 for its play only

            # Text is spoken offline (espeak-ng, Vietnamese) and served to the nodes over HTTP.
            r = json.loads((await cli(op_b, "broadcast", "now", "--zone", B, "--text",
                                      "Thông báo: lịch tiêm phòng cho trẻ em vào sáng thứ bảy.", "--wait",
                                      "--json", "--timeout", "60")).stdout)
            states = {d["node"]: d["state"] for d in r["deliveries"]}
            assert states.pop("tt-3") == "offline" and set(states.values()) == {"done"}, states
            url = r["params"]["url"]
            assert url.startswith(f"http://127.0.0.1:{port}/media/")
            status, body = http_get(url)
            assert status == 200 and body[:4] == b"RIFF"  # real audio, served without a token
            media_id = url.rsplit("/", 1)[1].split(".")[0]
            r = await cli(env, "media", "rm", media_id, ok=False)  # still used by the program
            assert r.returncode == 1 and "program" in r.stderr, r.stderr

            # Unknown targets are refused and nothing is stored; cancelling is scoped like scheduling.
            r = await cli(op_a, "broadcast", "schedule", "Không có", "--zone", A + "/ap-9", "--url",
                          "http://127.0.0.1:9/x.mp3", "--daily", "06:00", "--duration", "1h", ok=False)
            assert r.returncode != 0 and "unknown zone" in r.stderr, r.stderr
            r = await cli(env, "broadcast", "schedule", "Không có", "--speaker", "no-such-node", "--url",
                          "http://127.0.0.1:9/x.mp3", "--daily", "06:00", "--duration", "1h", ok=False)
            assert r.returncode != 0 and "unknown speaker no-such-node" in r.stderr, r.stderr
            later = json.loads((await cli(op_a, "broadcast", "schedule", "Sẽ huỷ", "--zone", A, "--url",
                                          "http://127.0.0.1:9/y.mp3", "--daily", "21:00", "--duration", "10m",
                                          "--json")).stdout)
            r = await cli(op_b, "broadcast", "cancel", str(later["id"]), ok=False)
            assert r.returncode == 1 and A in r.stderr
            await cli(op_a, "broadcast", "cancel", str(later["id"]))
            listed = json.loads((await cli(op_a, "broadcast", "list", "--json")).stdout)
            assert later["id"] not in {p["id"] for p in listed}

            # The outcome went to telemetry too (the Broadcast audit dashboard reads it).
            from netmgr.telemetry.ring import history

            async def emergency_point():
                pts = history(tmp_path / "state" / "telemetry.db", "broadcast", "priority", "emergency", 0)
                return pts and pts[-1]["fields"]["played"] == 8 and pts[-1]
            pt = await until(emergency_point, 20, "the emergency's outcome in the telemetry ring", interval=POLL)
            assert pt["fields"]["offline"] == 2 and pt["fields"]["targets"] == 10
            assert pt["tags"]["zone"] == "binh-phuoc/dong-xoai" and pt["fields"]["latency_ms"] > 0

            plan = json.loads((await cli(op_a, "broadcast", "plan", "--zone", A, "--json")).stdout)
            titles = {it["title"] for g in plan["groups"] for it in g["items"]}
            assert "Bản tin thử" in titles

            today = datetime.now(UTC).astimezone().date().isoformat()
            async def report_flushed():  # the report reads the store, written every second
                rep = json.loads((await cli(env, "broadcast", "report", "--from", "yesterday", "--to", "tomorrow",
                                            "--json")).stdout)
                emerg = [i for i in rep["items"] if i["priority"] == "emergency"]
                done = {i["id"]: i for i in rep["items"]}.get(occ, {}).get("played") == 6
                return rep if done and emerg and emerg[0]["played"] + emerg[0]["offline"] == 10 else None
            rep = await until(report_flushed, 20, "the report to show both broadcasts' outcomes", interval=POLL)
            rows = {i["id"]: i for i in rep["items"]}
            assert rows[occ]["played"] == 6 and rows[occ]["targets"] == 6 and rows[occ]["state"] == "sent"
            emerg = [i for i in rep["items"] if i["priority"] == "emergency"]
            assert len(emerg) == 1 and emerg[0]["played"] == 8 and emerg[0]["offline"] == 2
            csv_out = (await cli(env, "broadcast", "report", "--from", "yesterday", "--to", "tomorrow", "--csv")).stdout
            assert csv_out.splitlines()[0].startswith("start_local,program,title")
            assert len(csv_out.splitlines()) == 1 + rep["count"]
            cal = (await cli(env, "broadcast", "ics", "--zone", A)).stdout
            assert cal.startswith("BEGIN:VCALENDAR\r\n") and "SUMMARY:Bản tin thử" in cal
            assert today  # (local day used above)

            audit = json.loads((await cli(env, "audit", "list", "--outcome", "denied", "--json")).stdout)
            assert {e["actor"] for e in audit} == {"op-b"}  # op-a's conflict is an error, not a refusal
            assert sum(1 for e in audit if e["action"] == "program.add") == 2
            assert sum(1 for e in audit if e["action"] == "program.cancel") == 1
        health = json.loads(http_get(f"http://127.0.0.1:{port}/healthz")[1])
        assert health["services"]["scheduler"]["missed"] == 0
        assert health["services"]["radio"]["bad_messages"] == {}, health["services"]["radio"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    assert "Traceback" not in (tmp_path / "daemon.log").read_text()
