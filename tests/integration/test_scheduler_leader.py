"""The scheduler leader lock (netmgr.store.leader) on a real PostgreSQL: exactly one of the daemons
sharing a database schedules; when its session dies (backend terminated, process killed) another
takes over within a bounded time, and never two at once. SQLite: always leader. And two real
`netmgr run` daemons on one database: every occurrence is sent by exactly one of them, and after
the leader is SIGKILLed the other sends the next."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from support.waiting import until

from netmgr.store import leader as lk
from netmgr.store.leader import HELD, LEADER, UNREACHABLE, LeaderLock


def asyncpg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


class Watch:
    """Records every status change of a set of locks and the most leaders there ever were at once."""

    def __init__(self) -> None:
        self.locks: list[LeaderLock] = []
        self.most = 0
        self.log: list[tuple[float, str, str]] = []

    def lock(self, url: str, name: str, **kw) -> LeaderLock:
        def changed(lock: LeaderLock) -> None:
            self.log.append((time.monotonic(), name, lock.status))
            self.most = max(self.most, sum(x.is_leader for x in self.locks))
        lock = LeaderLock(url, on_change=changed, **kw)
        self.locks.append(lock)
        return lock


async def test_one_leader_and_failover_when_its_backend_is_terminated(postgres) -> None:
    url = postgres.fresh_database()
    w = Watch()
    a, b = w.lock(asyncpg_url(url), "a"), w.lock(asyncpg_url(url), "b")
    async with a, b:
        await until(lambda: {a.status, b.status} == {LEADER, HELD}, 15, "one leader and one standby")
        leader, standby = (a, b) if a.is_leader else (b, a)
        assert standby.status == "standby: another daemon holds the scheduler lock"
        assert leader.where == f"postgresql://127.0.0.1:{postgres.port}/{url.rsplit('/', 1)[1]}"
        # It stays so: the standby keeps retrying and keeps failing.
        await asyncio.sleep(lk.RETRY_EVERY * 1.5)  # a span to observe, not a synchronisation
        assert leader.is_leader and standby.status == HELD

        # The realistic failure: the leader's session dies on the server (what an admin's
        # pg_terminate_backend, a server restart or a dead network link does).
        conn = await asyncpg.connect(url)
        try:
            pid = leader.backend_pid
            held = await conn.fetchval(  # the query docs/operations.md gives
                "select count(*) from pg_locks where locktype = 'advisory' and granted and pid = $1 "
                "and classid = 3763546600 and objid = 3393356959 and objsubid = 1", pid)
            assert held == 1, "the advisory lock in pg_locks, as docs/operations.md shows it"
            app = await conn.fetchval("select application_name from pg_stat_activity where pid = $1", pid)
            assert app.startswith("netmgr netmgr.scheduler ")
            t0 = time.monotonic()
            assert await conn.fetchval("select pg_terminate_backend($1)", pid)
            await until(lambda: not leader.is_leader, 2, "the old leader to step down")
            stepped_down = time.monotonic() - t0
            await until(lambda: standby.is_leader, lk.RETRY_EVERY + lk.TIMEOUT + 2, "the standby to take over")
            took_over = time.monotonic() - t0
        finally:
            await conn.close()
        print(f"failover after pg_terminate_backend: old leader stepped down in {stepped_down:.3f}s, "
              f"the standby led after {took_over:.2f}s")
        # The old leader reconnects and waits as a standby.
        await until(lambda: leader.status == HELD, lk.RETRY_EVERY * 2 + lk.TIMEOUT, "the old leader back as standby")
        assert standby.is_leader
    assert w.most == 1, w.log  # never two leaders at once
    assert a.status == b.status == "standby: not running"


async def test_failover_when_the_leader_stops_and_locks_are_per_database(postgres) -> None:
    url = postgres.fresh_database()
    other = postgres.fresh_database()
    w = Watch()
    a, b = w.lock(asyncpg_url(url), "a"), w.lock(asyncpg_url(url), "b")
    c = LeaderLock(asyncpg_url(other))  # another province's database on the same server
    async with c:
        await a.start()
        await until(lambda: a.is_leader, 10, "a to lead")
        await b.start()
        await until(lambda: b.status == HELD, 10, "b to wait")
        await until(lambda: c.is_leader, 10, "the other database's lock to be independent")
        t0 = time.monotonic()
        await a.stop()  # a planned stop frees the lock at once
        await until(lambda: b.is_leader, lk.RETRY_EVERY + 2, "b to take over after a stops")
        print(f"failover after a clean stop: {time.monotonic() - t0:.2f}s")
        await b.stop()
    assert w.most == 1, w.log


async def test_a_process_killed_while_leading_frees_the_lock(postgres, tmp_path: Path) -> None:
    """A leader in another process is SIGKILLed: the kernel closes its socket, the server frees
    the lock, the standby leads within a retry interval."""
    url = postgres.fresh_database()
    script = tmp_path / "hold.py"
    script.write_text(
        "import asyncio, sys\nfrom netmgr.store.leader import LeaderLock\n"
        "async def main():\n"
        "    async with LeaderLock(sys.argv[1]) as lock:\n"
        "        await lock.wait_leader()\n        print('leader', flush=True)\n"
        "        await asyncio.Event().wait()\n"
        "asyncio.run(main())\n", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script), asyncpg_url(url)], stdout=subprocess.PIPE, text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert line.strip() == "leader"
        async with LeaderLock(asyncpg_url(url)) as b:
            await until(lambda: b.status == HELD, 10, "the standby to see the lock held")
            t0 = time.monotonic()
            proc.send_signal(signal.SIGKILL)
            await until(lambda: b.is_leader, lk.RETRY_EVERY + lk.TIMEOUT + 2, "the standby to take over")
            print(f"failover after SIGKILL of the leading process: {time.monotonic() - t0:.2f}s")
    finally:
        proc.kill()
        proc.wait(10)


HOLDER = """
import asyncio, sys
from netmgr.store.leader import LeaderLock

async def main():
    lock = LeaderLock(sys.argv[1], on_change=lambda l: print(l.status, flush=True))
    async with lock:
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_frozen_leader_loses_the_lock(postgres, tmp_path: Path) -> None:
    """A leader whose process stops answering (SIGSTOP: its kernel still keeps the TCP connection
    up) is cut off by the server after LOST_AFTER (idle_session_timeout); the standby leads; the
    old one, resumed, finds its session gone and does not believe it still leads."""
    url = postgres.fresh_database()
    script = tmp_path / "holder.py"
    script.write_text(HOLDER, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script), asyncpg_url(url)], stdout=subprocess.PIPE, text=True)
    lines: list[str] = []

    async def read() -> None:
        while line := await asyncio.to_thread(proc.stdout.readline):
            lines.append(line.strip())
    reader = asyncio.create_task(read())
    try:
        await until(lambda: LEADER in lines, 30, "the process to lead")
        async with LeaderLock(asyncpg_url(url)) as b:
            await until(lambda: b.status == HELD, 10, "the standby to see the lock held")
            proc.send_signal(signal.SIGSTOP)
            t0 = time.monotonic()
            await until(lambda: b.is_leader, lk.LOST_AFTER + lk.RETRY_EVERY + 5, "the standby to take over")
            print(f"failover from a frozen leader: {time.monotonic() - t0:.2f}s")
            proc.send_signal(signal.SIGCONT)
            await until(lambda: lines[-1] != LEADER, 10, "the resumed process to step down")
            await until(lambda: lines[-1] == HELD, lk.RETRY_EVERY * 2 + lk.TIMEOUT, "it to wait as a standby")
            assert b.is_leader
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(10)
        await asyncio.wait_for(reader, 10)


async def test_unreachable_database_means_standby() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with LeaderLock(f"postgresql+asyncpg://netmgr:secret@127.0.0.1:{port}/netmgr") as lock:
        await until(lambda: lock.status == UNREACHABLE, 10, "standby: database unreachable")
        assert not lock.is_leader and lock.error
        assert "secret" not in lock.where and lock.where == f"postgresql://127.0.0.1:{port}/netmgr"


async def test_sqlite_is_always_leader(tmp_path: Path) -> None:
    changes = []
    lock = LeaderLock(f"sqlite+aiosqlite:///{tmp_path / 'netmgr.db'}", on_change=lambda x: changes.append(x.status))
    async with lock:
        assert lock.is_leader and lock.status == LEADER and not lock.shared
        await asyncio.wait_for(lock.wait_leader(), 1)
    assert changes == [LEADER, "standby: not running"]
    assert not (tmp_path / "netmgr.db").exists()  # no connection at all


def test_lock_key_is_fixed() -> None:
    # Daemons of different versions must agree on it, and docs/operations.md queries pg_locks by it.
    assert lk.SCHEDULER_KEY == lk.lock_key("netmgr.scheduler") == -2282434506344201057
    assert (lk.SCHEDULER_KEY & 0xFFFFFFFFFFFFFFFF) >> 32 == 3763546600  # pg_locks.classid
    assert lk.SCHEDULER_KEY & 0xFFFFFFFF == 3393356959                  # pg_locks.objid


# ------------------------------------------------------------------------- two daemons, one database


def daemon_env(root: Path, mosquitto, port: int, url: str, client_id: str) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "netmgr.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{root / "state"}"\n[database]\nurl = "{url}"\n[api]\nport = {port}\n'
                   f'[snmp]\nenabled = false\n[mqtt]\nport = {mosquitto.port}\nclient_id = "{client_id}"\n'
                   "telemetry_interval = 2\nack_timeout = 3\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env.update(NETMGR_CONFIG=str(cfg), NETMGR_SERVER=f"http://127.0.0.1:{port}", XDG_CONFIG_HOME=str(root))
    return env


def scheduler_health(port: int) -> dict:
    from support.services import http_get

    try:
        status, body = http_get(f"http://127.0.0.1:{port}/healthz")
    except OSError:
        return {}
    return json.loads(body).get("services", {}).get("scheduler", {}) if status in (200, 503) else {}


async def test_two_daemons_one_database_each_occurrence_sent_once(postgres, mosquitto_factory, tmp_path: Path):
    import aiomqtt
    from support.broadcast_stack import NODES, A, B, api_up, cli, seed, start_daemon
    from support.services import free_port

    from netmgr.radio import protocol as p
    from netmgr.radio.mqtt import Broker
    from netmgr.sim.speakers import SimConfig, SpeakerSim

    mosquitto = mosquitto_factory()
    url = postgres.fresh_database()
    ports = [free_port(), free_port()]
    roots = [tmp_path / "d1", tmp_path / "d2"]
    envs = [daemon_env(r, mosquitto, port, url, f"netmgr-{i + 1}")
            for i, (r, port) in enumerate(zip(roots, ports, strict=True))]
    await cli(envs[0], "db", "upgrade")  # once, before the daemons (docs/operations.md)
    token = json.loads((await cli(envs[0], "user", "add", "root", "--role", "admin", "--json")).stdout)["token"]
    for env in envs:
        env["NETMGR_TOKEN"] = token
    db = await asyncpg.connect(url)

    async def occurrence(oid: str) -> str | None:
        return await db.fetchval("select state from occurrences where id = $1", oid)

    async def handled(oid: str) -> bool:  # `sending` is committed before the publish, `sent` after it
        return await occurrence(oid) in ("sent", "late", "missed")

    procs = [start_daemon(roots[0], mosquitto, envs[0])]
    try:
        await until(lambda: api_up(ports[0]), 30, "daemon 1's API")
        await until(lambda: scheduler_health(ports[0]).get("role") == "leader", 15, "daemon 1 leading")
        procs.append(start_daemon(roots[1], mosquitto, envs[1]))
        await until(lambda: api_up(ports[1]), 30, "daemon 2's API")
        await until(lambda: scheduler_health(ports[1]).get("leadership") == HELD, 15, "daemon 2 standing by")
        assert scheduler_health(ports[1])["role"] == "standby"
        await seed(envs[0], roots[0])
        nodes_a = [n for n, z in NODES.items() if z == A]
        nodes_b = [n for n, z in NODES.items() if z == B]

        sent: dict[str, int] = {}  # command id -> publishes seen on the broker (zone and node topics)

        async def count_commands(ready: asyncio.Event) -> None:
            async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="leader-test-watch") as c:
                await c.subscribe(f"{p.ROOT}/zone/#", qos=1)  # zone commands: .../zone/{path}/cmd
                await c.subscribe(p.node_topic_filter("cmd"), qos=1)
                ready.set()
                async for m in c.messages:
                    if not m.topic.value.endswith("/cmd"):
                        continue
                    cid = json.loads(m.payload).get("id")
                    sent[cid] = sent.get(cid, 0) + 1

        watching = asyncio.Event()
        watcher = asyncio.create_task(count_commands(watching))
        await until(lambda: watching.is_set() or watcher.done(), 10, "the command watcher")
        assert not watcher.done(), watcher
        async with SpeakerSim(Broker(port=mosquitto.port, protocol="3.1.1"), list(NODES.items()),
                              SimConfig(telemetry_interval=2)) as sim:
            await sim.wait_connected()

            def plays(n: str, oid: str) -> int:
                return sum(1 for e in sim.nodes[n].log if e[1] == oid and e[2] == "playing")

            # Through the standby's API: the leader hears of it (NOTIFY) and sends it on time.
            t_call = time.time()
            now = json.loads((await cli(envs[1], "broadcast", "now", "--zone", B, "--url",
                                        "http://127.0.0.1:9/now.mp3", "--duration", "3s", "--json")).stdout)
            oid_now = now["occurrence"]
            await until(lambda: sent.get(oid_now), 10, "the leader to send the standby's `broadcast now`")
            print(f"`broadcast now` through the standby's API published after {time.time() - t_call:.2f}s")
            await until(lambda: all(plays(n, oid_now) for n in nodes_b), 20, "commune B playing it")
            await until(lambda: handled(oid_now), 10, "the `broadcast now` recorded")
            assert await occurrence(oid_now) == "sent"

            # Two programs for commune A, one through each API; the first goes out from daemon 1.
            t1 = (datetime.now(UTC) + timedelta(seconds=15)).replace(microsecond=0)
            t2 = t1 + timedelta(seconds=25)
            ids = []
            for env, at, title in ((envs[1], t1, "Một"), (envs[0], t2, "Hai")):
                r = json.loads((await cli(env, "broadcast", "schedule", title, "--zone", A, "--url",
                                          "http://127.0.0.1:9/a.mp3", "--at", at.isoformat(), "--duration", "4s",
                                          "--json")).stdout)
                ids.append(f"p{r['id']}-{at:%Y%m%dT%H%M%SZ}")
            await until(lambda: handled(ids[0]), 30, "occurrence 1 recorded")
            await until(lambda: all(plays(n, ids[0]) for n in nodes_a), 20, "occurrence 1 playing in commune A")
            assert await occurrence(ids[0]) == "sent"
            assert scheduler_health(ports[0])["sent"] == 2 and scheduler_health(ports[1])["sent"] == 0

            # The leader dies; the standby takes over and sends occurrence 2.
            procs[0].send_signal(signal.SIGKILL)
            t0 = time.monotonic()
            procs[0].wait(10)
            await until(lambda: scheduler_health(ports[1]).get("role") == "leader", 10, "daemon 2 leading")
            print(f"failover after SIGKILL of the leading daemon: {time.monotonic() - t0:.2f}s")
            assert datetime.now(UTC) < t2 - timedelta(seconds=5)  # the test's own timeline held
            await until(lambda: handled(ids[1]), 40, "occurrence 2 recorded")
            await until(lambda: all(plays(n, ids[1]) for n in nodes_a), 20, "occurrence 2 playing in commune A")
            assert await occurrence(ids[1]) == "sent"
            assert scheduler_health(ports[1])["sent"] == 1

            async def done_everywhere():
                c = await cli(envs[1], "speaker", "command", ids[1], "--json", ok=False)
                return c.returncode == 0 and json.loads(c.stdout)["summary"] == {"done": len(nodes_a)}
            await until(done_everywhere, 30, "occurrence 2 done on every node of commune A", interval=0.5)

            # Each occurrence's command went out once (one daemon, one zone publish), and played once.
            for oid in (oid_now, *ids):
                assert sent.get(oid) == 1, (oid, sent)
            for n in nodes_a:
                assert [plays(n, oid) for oid in ids] == [1, 1], (n, sim.nodes[n].log)
            for n in nodes_b:
                assert plays(n, oid_now) == 1, (n, sim.nodes[n].log)
        watcher.cancel()

        # Daemon 1 comes back as a standby; daemon 2 stops (systemctl stop): it gives the lock up in
        # its drain, and daemon 1 leads again.
        procs[0] = start_daemon(roots[0], mosquitto, envs[0])
        await until(lambda: scheduler_health(ports[0]).get("leadership") == HELD, 30, "daemon 1 back as standby")
        procs[1].send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        await until(lambda: scheduler_health(ports[0]).get("role") == "leader", 10, "daemon 1 leading again")
        print(f"failover after SIGTERM of the leading daemon: {time.monotonic() - t0:.2f}s")
        assert procs[1].wait(timeout=15) == 0
        log1 = (roots[0] / "daemon.log").read_text()
        log2 = (roots[1] / "daemon.log").read_text()
        where = f"postgresql://127.0.0.1:{postgres.port}/{url.rsplit('/', 1)[1]}"
        assert f"scheduler: leader (lock on {where})" in log1
        assert f"scheduler: standby (another daemon holds the scheduler lock on {where})" in log2
        assert f"scheduler: leader (lock on {where})" in log2
        assert f"scheduler: stopped; the scheduler lock on {where} is free for another daemon" in log2
        assert log1.count(f"scheduler: leader (lock on {where})") == 2
        assert "netmgr@" not in log1 + log2  # the URL's user (and any password) never in the log
    finally:
        await db.close()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=15) == 0
