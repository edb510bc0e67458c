"""Issue 5's scenario at scale: 1,000 simulated nodes in 20 communes, a daily program for the whole
province and an emergency `now` in one district, with 5% of the nodes cut off. The nodes cut off play
the daily program from their cached schedule (and report it when they are back), and are reported
offline for the emergency; the report accounts for every node."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from support.broadcast_stack import POLL, api_up, cli, setup_env, start_daemon
from support.services import free_port
from support.waiting import until

from netmgr.radio.mqtt import Broker
from netmgr.sim.speakers import SimConfig, SpeakerSim

COMMUNES = [f"binh-phuoc/district-{d}/commune-{c}" for d in range(2) for c in range(10)]
NODES = {f"n{i:04d}": COMMUNES[i % 20] for i in range(1000)}


async def test_province_daily_program_and_district_emergency(tmp_path: Path, mosquitto_factory) -> None:
    m = mosquitto_factory()
    port = free_port()
    env = setup_env(tmp_path, m, port)
    env["NETMGR_TOKEN"] = json.loads((await cli(env, "user", "add", "root", "--role", "admin", "--json")).stdout)["token"]
    proc = start_daemon(tmp_path, m, env)
    try:
        await until(lambda: api_up(port), 30, "the API", interval=POLL)
        zones = tmp_path / "zones.yaml"
        zones.write_text("- {path: binh-phuoc, name: Bình Phước}\n"
                         + "".join(f"- {{path: binh-phuoc/district-{d}, name: D{d}}}\n" for d in range(2))
                         + "".join(f"- {{path: {z}, name: {z[-9:]}}}\n" for z in COMMUNES), encoding="utf-8")
        await cli(env, "zone", "import", str(zones))
        csv = tmp_path / "speakers.csv"
        csv.write_text("id,zone\n" + "".join(f"{n},{z}\n" for n, z in NODES.items()), encoding="utf-8")
        await cli(env, "speaker", "import", str(csv))
        async with SpeakerSim(Broker(port=m.port, protocol="3.1.1"), list(NODES.items()),
                              SimConfig(telemetry_interval=5)) as sim:
            await sim.wait_connected(timeout=60)

            # The daily program at the next whole minute at least 25 s away (local time, Asia/Ho_Chi_Minh).
            tz = ZoneInfo("Asia/Ho_Chi_Minh")
            start = (datetime.now(UTC) + timedelta(seconds=25 + 60)).replace(second=0, microsecond=0)
            at = start.astimezone(tz).strftime("%H:%M")
            r = json.loads((await cli(env, "broadcast", "schedule", "Bản tin chiều", "--zone", "binh-phuoc",
                                      "--url", "http://127.0.0.1:9/evening.mp3", "--daily", at,
                                      "--duration", "8s", "--json")).stdout)
            daily = f"p{r['id']}-{start:%Y%m%dT%H%M%SZ}"
            assert r["next_utc"] == start.isoformat()
            await until(lambda: _all(sim, lambda n: n.schedule is not None and n.schedule.items), 60,
                        "every node holding the daily program", interval=POLL)

            cut = [f"n{i:04d}" for i in range(0, 1000, 20)]  # 50 nodes, spread over every commune
            await sim.set_offline(cut)
            cut_d0 = [n for n in cut if NODES[n].startswith("binh-phuoc/district-0/")]

            async def offline_seen():
                r = await cli(env, "speaker", "list", "--status", "offline", "--json")
                return len(json.loads(r.stdout)) == len(cut)
            await until(offline_seen, 30, "the 50 cut-off nodes offline", interval=POLL)

            r = await cli(env, "broadcast", "now", "--zone", "binh-phuoc/district-0", "--url",
                          "http://127.0.0.1:9/flood.mp3", "--emergency", "--duration", "5s", "--wait", "--json",
                          "--timeout", "60")
            em = json.loads(r.stdout)
            states = {d["node"]: d["state"] for d in em["deliveries"]}
            assert len(states) == 500
            assert sorted(n for n, s in states.items() if s == "offline") == sorted(cut_d0)
            assert {s for n, s in states.items() if n not in cut_d0} == {"done"}

            # The daily occurrence: the cut-off nodes play it from their cache.
            async def daily_done_online():
                c = await cli(env, "speaker", "command", daily, "--json", ok=False)
                if c.returncode:
                    return None
                d = json.loads(c.stdout)
                return d if d["summary"].get("done", 0) == 1000 - len(cut) else None
            await until(daily_done_online, 150, "the daily program done on every connected node", interval=POLL)
            await until(lambda: _all(sim, lambda n: any(e[1] == daily and e[2] == "done"
                                                      for e in n.log)), 30,
                        "the daily program played on every node, cut off or not", interval=POLL)
            sim.set_online(cut)

            async def reported_after_reconnect():
                d = json.loads((await cli(env, "speaker", "command", daily, "--json")).stdout)
                return d if d["summary"] == {"done": 1000} else None
            await until(reported_after_reconnect, 60, "the cut-off nodes reporting their offline playback", interval=POLL)

            # The report reads the store, which the radio service writes every second.
            async def report_complete():
                rep = json.loads((await cli(env, "broadcast", "report", "--from", "yesterday", "--to", "tomorrow",
                                            "--json")).stdout)
                rows = {i["id"]: i for i in rep["items"]}
                return rep if daily in rows and rows[daily]["played"] == 1000 else None
            rep = await until(report_complete, 20, "the report to show the daily program played 1,000 times", interval=POLL)
            rows = {i["id"]: i for i in rep["items"]}
            assert rows[daily]["targets"] == 1000 and rows[daily]["played"] == 1000
            emerg = next(i for i in rep["items"] if i["priority"] == "emergency")
            assert emerg["targets"] == 500 and emerg["offline"] == len(cut_d0)
            assert emerg["played"] == 500 - len(cut_d0)
            assert emerg["played"] + emerg["offline"] + emerg["failed"] == emerg["targets"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def _all(sim: SpeakerSim, pred) -> bool:
    return all(pred(n) for n in sim.nodes.values())
