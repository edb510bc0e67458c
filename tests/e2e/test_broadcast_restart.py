"""Restart safety (issue 5): a program recurring every minute for 5 minutes while `netmgr run` is
SIGKILLed twice. Nothing already sent is sent again, nothing that fell into a gap is dropped
silently: within the grace period it goes out late, past it it is recorded missed — and every
node plays every occurrence exactly once (from its cached schedule while the daemon is down)."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.broadcast_stack import NODES, POLL, A, api_up, cli, seed, setup_env, start_daemon
from support.services import free_port
from support.waiting import until

from netmgr.radio.mqtt import Broker
from netmgr.sim.speakers import SimConfig, SpeakerSim

GRACE = 25


def occurrences(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as c:
        return dict(c.execute("select id, state from occurrences"))


async def sleep_until(t: datetime) -> None:
    """Wait for a wall-clock instant: the test's own schedule of faults, not a synchronisation."""
    while (left := (t - datetime.now(UTC)).total_seconds()) > 0:
        await asyncio.sleep(min(left, 0.5))


async def test_sigkill_and_restart_never_repeat_nor_drop(tmp_path: Path, mosquitto_factory) -> None:
    mosquitto = mosquitto_factory()

    port = free_port()
    env = setup_env(tmp_path, mosquitto, port)
    cfg = Path(env["NETMGR_CONFIG"])
    cfg.write_text(cfg.read_text() + f"[broadcast]\ngrace = {GRACE}\n", encoding="utf-8")
    env["NETMGR_TOKEN"] = json.loads((await cli(env, "user", "add", "root", "--role", "admin", "--json")).stdout)["token"]
    db = tmp_path / "state" / "netmgr.db"
    proc = start_daemon(tmp_path, mosquitto, env)
    try:
        await until(lambda: api_up(port), 30, "the API", interval=POLL)
        await seed(env, tmp_path)
        nodes_a = [n for n, z in NODES.items() if z == A]
        async with SpeakerSim(Broker(port=mosquitto.port, protocol="3.1.1"), list(NODES.items()),
                              SimConfig(telemetry_interval=2)) as sim:
            await sim.wait_connected()
            r = json.loads((await cli(env, "broadcast", "schedule", "Mỗi phút", "--zone", A, "--url",
                                      "http://127.0.0.1:9/minute.mp3", "--rrule", "FREQ=MINUTELY;COUNT=5",
                                      "--duration", "12s", "--json")).stdout)
            first = datetime.fromisoformat(r["next_utc"])
            starts = [first + timedelta(minutes=i) for i in range(5)]
            ids = [f"p{r['id']}-{s:%Y%m%dT%H%M%SZ}" for s in starts]

            # 1 and 2 go out normally; kill the daemon as soon as 2 is recorded.
            async def recorded(i: int):
                return occurrences(db).get(ids[i]) in ("sent", "late", "missed")
            await until(lambda: recorded(1), 200, "occurrence 2 recorded", interval=0.2)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            # Back 10 s after occurrence 3 started: within the grace period, so it goes out late.
            await sleep_until(starts[2] + timedelta(seconds=10))
            proc = start_daemon(tmp_path, mosquitto, env)
            await until(lambda: api_up(port), 30, "the API after the first restart", interval=POLL)
            await until(lambda: recorded(2), 30, "occurrence 3 handled after the restart", interval=POLL)
            assert occurrences(db)[ids[2]] == "late"
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            # Back after the grace period of occurrence 4: it is recorded missed.
            await sleep_until(starts[3] + timedelta(seconds=GRACE + 8))
            proc = start_daemon(tmp_path, mosquitto, env)
            await until(lambda: api_up(port), 30, "the API after the second restart", interval=POLL)
            await until(lambda: recorded(3), 30, "occurrence 4 handled after the restart", interval=POLL)
            await until(lambda: recorded(4), 90, "occurrence 5 recorded", interval=POLL)

            occ = occurrences(db)
            assert [occ.get(i) for i in ids] == ["sent", "sent", "late", "missed", "sent"], occ

            async def all_played():
                return all(sum(1 for e in sim.nodes[n].log if e[1] == ids[4] and e[2] == "done") == 1
                           for n in nodes_a)
            await until(all_played, 40, "occurrence 5 done on every node", interval=POLL)
            for n in nodes_a:
                for oid in ids:  # every occurrence played exactly once, from the cache or by command
                    plays = [e for e in sim.nodes[n].log if e[1] == oid and e[2] == "playing"]
                    assert len(plays) == 1, (n, oid, sim.nodes[n].log)

            async def report_flushed():  # the report reads the store, written every second
                rep = json.loads((await cli(env, "broadcast", "report", "--from", "yesterday", "--to", "tomorrow",
                                            "--zone", A, "--json")).stdout)
                last = {i["id"]: i for i in rep["items"]}.get(ids[4], {})
                return rep if last.get("played") == len(nodes_a) else None
            rep = await until(report_flushed, 20, "the report to show the last occurrence played", interval=POLL)
            rows = {i["id"]: i for i in rep["items"]}
            assert [rows[i]["late"] for i in ids] == [False, False, True, False, False]
            assert [rows[i]["missed"] for i in ids] == [False, False, False, True, False]
            assert rep["totals"]["missed"] == 1 and rep["totals"]["late"] == 1
            assert rows[ids[4]]["played"] == len(nodes_a)
        log = (tmp_path / "daemon.log").read_text()
        assert "occurrence missed" in log and ids[3] in log  # reported, not silent
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
