"""Province in a box (issue 7): the whole system on real services, a day of work and its faults.

One scenario: mosquitto with TLS and the password/ACL files `netmgr mqtt render` writes, net-snmp
snmpd and snmpsim serving 300 APs, VictoriaMetrics then (after a SIGHUP) Debian's influxdb 1.6 for
telemetry, PostgreSQL as the state store, `netmgr run` as a real process reporting to a
NOTIFY_SOCKET this test listens on, 1,000 simulated speaker nodes in 3 districts / 20 communes; an
admin, two commune operators and a viewer using the real CLI.

The day: daily programs for two communes (a conflict refused, a cross-commune attempt refused and
audited), a program every minute for the province, a district emergency, APs polled, telemetry
flowing. The faults, each followed by its check: 10% of the speakers offline and 5% of the APs
blackholed; the broker killed for 30 s while VictoriaMetrics is stopped for 60 s; `netmgr run`
SIGKILLed and restarted; SIGHUP with a changed config (poll interval, InfluxDB target). At the
end: no telemetry point lost or duplicated, every occurrence played once by every node and
reported, registry and AP states right, every refusal audited, READY after each start and the
watchdog kept.

``pytest tests/e2e/test_province.py --soak 60 -s`` runs the same day and then keeps the province
running for the given minutes, printing memory growth, late polls and delivery ratios (see
docs/operations.md, "Soak test").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from support import services
from support.broadcast_stack import POLL, cli
from support.services import free_port
from support.waiting import until

from netmgr.radio.acl import render_acl, render_passwd
from netmgr.radio.mqtt import Broker
from netmgr.sim.speakers import SimConfig, SpeakerSim

PROVINCE = "binh-phuoc"
DISTRICTS = {f"{PROVINCE}/dong-xoai": 7, f"{PROVINCE}/chon-thanh": 7, f"{PROVINCE}/loc-ninh": 6}
COMMUNES = [f"{d}/xa-{i:02d}" for d, n in DISTRICTS.items() for i in range(n)]
NODES = {f"spk-{i:04d}": COMMUNES[i % len(COMMUNES)] for i in range(1000)}
N_APS = 300
DAEMON_USER, DAEMON_PASS = "netmgr", "daemon-Pass-0123456"
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
SNMP_INTERVAL, SNMP_INTERVAL_AFTER_HUP = 15, 20
TELEMETRY_INTERVAL = 10
WATCHDOG_USEC = 10_000_000
MINUTE_SECOND = 30  # the per-minute program starts at hh:mm:30 (daily programs at hh:mm:00)


# ----------------------------------------------------------------------------- helpers


class Notify:
    """systemd's side of sd_notify: every datagram with its arrival time (monotonic)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.messages: list[tuple[float, str]] = []
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._read)

    def _read(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                self.messages.append((time.monotonic(), self.sock.recv(65536).decode()))

    def count(self, pred) -> int:
        return sum(1 for _, m in self.messages if pred(m))

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


class UdpRelay(asyncio.DatagramProtocol):
    """A UDP hop in front of snmpsim for the APs this test blackholes: drops everything when told."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.blackhole = False
        self.transport: asyncio.DatagramTransport | None = None
        self.links: dict[Any, asyncio.DatagramTransport] = {}
        self.opening: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(cls, upstream: tuple[str, int]) -> UdpRelay:
        relay = cls(upstream)
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: relay, local_addr=("127.0.0.1", 0))
        return relay

    @property
    def port(self) -> int:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[1]

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if self.blackhole:
            return
        link = self.links.get(addr)
        if link is not None:
            link.sendto(data)
        else:
            task = asyncio.ensure_future(self._open(addr, data))
            self.opening.add(task)
            task.add_done_callback(self.opening.discard)

    async def _open(self, addr, data: bytes) -> None:
        relay = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, reply: bytes, _a) -> None:
                if not relay.blackhole and relay.transport is not None:
                    relay.transport.sendto(reply, addr)

        link, _ = await asyncio.get_running_loop().create_datagram_endpoint(Back, remote_addr=self.upstream)
        self.links[addr] = link
        link.sendto(data)

    def close(self) -> None:
        for link in self.links.values():
            link.close()
        if self.transport:
            self.transport.close()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


async def sleep_until(t: float) -> None:
    """Wait for a moment of the test's own fault schedule (monotonic), not a synchronisation."""
    while (left := t - time.monotonic()) > 0:
        await asyncio.sleep(min(left, 0.5))


async def wall_second_in(lo: int, hi: int) -> None:
    """Wait until the wall clock's second is in [lo, hi): keeps the emergency clear of programs."""
    while not lo <= datetime.now(UTC).second < hi:
        await asyncio.sleep(0.2)


@dataclass
class Day:
    """What the scenario records as it goes, for the checks at the end (and the soak report)."""

    t0: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)
    kill_ns: int = 0
    hup_ns: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)

    def mark(self, what: str) -> None:
        self.events.append((time.monotonic() - self.t0, what))
        print(f"[province {time.monotonic() - self.t0:6.1f}s] {what}", flush=True)


class Province:
    """The servers, the daemon, the users and the fleet of one scenario."""

    def __init__(self, tmp: Path, mosquitto_factory, snmpd, snmpsim, postgres, influxdb1) -> None:
        self.tmp = tmp
        self.snmpd, self.snmpsim, self.influx1 = snmpd, snmpsim, influxdb1
        self.db_url = postgres.fresh_database()
        self.vm = services.VictoriaMetrics()
        self.influx_db = f"province{os.getpid()}"
        influxdb1.create_db(self.influx_db)
        boot = tmp / "boot"
        boot.mkdir()
        # The broker's first files: only the daemon's identity (what `netmgr mqtt render` writes
        # before any node has credentials); nodes are added by render + reload below.
        (boot / "passwd").write_text(render_passwd(DAEMON_USER, DAEMON_PASS, {}), encoding="utf-8")
        (boot / "acl").write_text(render_acl(DAEMON_USER, {}), encoding="utf-8")
        self.m = mosquitto_factory(tls=True, passwd_file=boot / "passwd", acl_file=boot / "acl")
        self.port = free_port()
        self.state = tmp / "state"
        self.cfg = tmp / "netmgr.toml"
        self.write_config(SNMP_INTERVAL, influx="vm")
        self.notify: Notify | None = None
        self.proc: subprocess.Popen | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("NETMGR_", "NOTIFY_", "WATCHDOG_"))}
        self.env.update(NETMGR_CONFIG=str(self.cfg), NETMGR_SERVER=f"http://127.0.0.1:{self.port}",
                        XDG_CONFIG_HOME=str(tmp))
        self.tokens: dict[str, str] = {}
        self.passwords: dict[str, str] = {}
        self.relays: list[UdpRelay] = []
        self.blackholed: list[str] = []

    def write_config(self, interval: int, influx: str) -> None:
        if influx == "vm":
            sink = f'[influxdb]\nurl = "{self.vm.url}"\norg = "dic"\nbucket = "netmgr"\ntoken = "vm-token-0123"\n'
        else:  # Debian's influxdb 1.6: the v1 /write API, bucket = database
            sink = f'[influxdb]\napi = "v1"\nurl = "{self.influx1.url}"\nbucket = "{self.influx_db}"\n'
        self.cfg.write_text(
            f'[daemon]\nstate_dir = "{self.state}"\ndrain_timeout = 8\n'
            f'[database]\nurl = "{self.db_url}"\n'
            f"[api]\nport = {self.port}\n"
            f"[snmp]\ninterval = {interval}\ntimeout = 3\nretries = 1\ndown_after = 2\n"
            f'[mqtt]\nport = {self.m.tls_port}\ntls = true\nca_file = "{self.m.ca_file}"\n'
            f'username = "{DAEMON_USER}"\npassword = "{DAEMON_PASS}"\n'
            f"telemetry_interval = {TELEMETRY_INTERVAL}\nack_timeout = 10\n"
            f"[broadcast]\ngrace = 90\n" + sink, encoding="utf-8")

    # -- the daemon

    def start_daemon(self) -> None:
        assert self.notify is not None
        env = dict(self.env, NOTIFY_SOCKET=self.notify.path, WATCHDOG_USEC=str(WATCHDOG_USEC))
        with (self.tmp / "daemon.log").open("a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "netmgr", "run"], env=env, stdout=log,
                                         stderr=subprocess.STDOUT)

    async def wait_ready(self, n: int) -> None:
        """The n-th READY=1 of this scenario (each start, each reload)."""
        assert self.notify is not None
        await until(lambda: self.notify.count(lambda m: "READY=1" in m) >= n, 60,
                    f"sd_notify READY=1 #{n}", interval=0.1)

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as c:
            r = await c.get(f"http://127.0.0.1:{self.port}/healthz")
            return r.json()

    async def services_health(self) -> dict[str, Any] | None:
        try:
            return (await self.health())["services"]
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    def log_text(self) -> str:
        return (self.tmp / "daemon.log").read_text(errors="replace")

    # -- the CLI as one of the users

    async def as_(self, user: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        return await cli({**self.env, "NETMGR_TOKEN": self.tokens[user]}, *args, ok=ok)

    async def as_json(self, user: str, *args: str) -> Any:
        return json.loads((await self.as_(user, *args, "--json")).stdout)

    # -- inventory

    async def onboard(self) -> None:
        """Zones, users, 1,000 speakers with MQTT credentials (rendered + broker reloaded), 300 APs."""
        tmp = self.tmp
        zones = tmp / "zones.yaml"
        zones.write_text(f"- {{path: {PROVINCE}, name: Bình Phước}}\n"
                         + "".join(f"- {{path: {d}, name: {d.rsplit('/', 1)[1]}}}\n" for d in DISTRICTS)
                         + "".join(f"- {{path: {c}, name: Xã {c[-2:]}}}\n" for c in COMMUNES), encoding="utf-8")
        await self.as_("admin", "zone", "import", str(zones))
        for name, args in (("op-a", ["--role", "operator", "--zone", COMMUNES[0]]),
                           ("op-b", ["--role", "operator", "--zone", COMMUNES[7]]),
                           ("viewer", ["--role", "viewer"])):
            self.tokens[name] = (await self.as_json("admin", "user", "add", name, *args))["token"]
        csv = tmp / "speakers.csv"
        csv.write_text("id,zone\n" + "".join(f"{n},{z}\n" for n, z in NODES.items()), encoding="utf-8")
        await self.as_("admin", "speaker", "import", str(csv))
        creds = tmp / "credentials.csv"
        await self.as_("admin", "speaker", "credentials", "--missing", "--out", str(creds))
        assert creds.stat().st_mode & 0o077 == 0
        lines = creds.read_text().splitlines()[1:]
        self.passwords = {n: pw for n, _u, pw in (line.split(",") for line in lines)}
        assert sorted(self.passwords) == sorted(NODES)
        passwd, acl = tmp / "render" / "passwd", tmp / "render" / "acl"
        r = await self.as_("admin", "mqtt", "render", "--passwd", str(passwd), "--acl", str(acl))
        assert "1000 nodes" in r.stdout, r.stdout
        assert DAEMON_PASS not in passwd.read_text() and not any(pw in passwd.read_text()
                                                                 for pw in list(self.passwords.values())[:5])
        self.m.reload_auth(passwd, acl)  # `systemctl reload mosquitto`

        # 5% of the APs reach their agent through a relay this test can blackhole.
        self.relays = [await UdpRelay.start(("127.0.0.1", self.snmpd.port)),
                       await UdpRelay.start(("127.0.0.1", self.snmpsim.port))]
        recs = self.snmpsim.communities
        aps = []
        for i in range(N_APS):
            ap: dict[str, Any] = {"name": f"ap-{i:03d}", "host": "127.0.0.1", "zone": COMMUNES[i % len(COMMUNES)]}
            # a fifth on the vendor recordings: snmpsim is Python, the slow agent (at a third of 300 APs
            # it timed out on a machine running two scenarios at once)
            on_sim = i % 5 == 1
            if on_sim:
                ap.update(port=self.snmpsim.port, community=recs[i % len(recs)])
            elif i % 2 == 0:  # net-snmp, SNMPv3 authPriv
                v3 = self.snmpd.v3
                ap.update(port=self.snmpd.port, version="3", v3_user=v3["user"], auth_proto=v3["auth_proto"],
                          auth_key=v3["auth_key"], priv_proto=v3["priv_proto"], priv_key=v3["priv_key"])
            else:
                ap.update(port=self.snmpd.port, community=self.snmpd.community)
            if i % 20 == 1:
                ap["port"] = self.relays[on_sim].port
                self.blackholed.append(ap["name"])
            aps.append(ap)
        f = tmp / "aps.json"
        f.write_text(json.dumps(aps), encoding="utf-8")
        await self.as_("admin", "ap", "import", str(f))  # the poller picks them up without a SIGHUP
        assert len(self.blackholed) == N_APS // 20

    # -- checks used during the day

    async def wait_health(self, service: str, pred, timeout: float, what: str) -> None:
        """Wait for ``pred(healthz of service)``; the failure shows the last answer."""
        last: dict[str, Any] = {}

        async def right():
            nonlocal last
            last = ((await self.services_health()) or {}).get(service, {})
            return pred(last)
        try:
            await until(right, timeout, what, interval=0.5)
        except AssertionError as e:
            raise AssertionError(f"{e}; last {service} health: {last}") from None

    async def wait_registry(self, online: int, offline: int, timeout: float, what: str) -> None:
        await self.wait_health("radio", lambda r: r.get("nodes", {}).get("online") == online
                               and r["nodes"].get("offline") == offline,
                               timeout, f"{what}: registry {online} online / {offline} offline")

    async def wait_aps(self, up: int, down: int, timeout: float, what: str) -> None:
        await self.wait_health("poller", lambda p: (p.get("aps"), p.get("up"), p.get("down")) == (N_APS, up, down),
                               timeout, f"{what}: {up} APs up / {down} down")


def occ_id(program: int, start: datetime) -> str:
    return f"p{program}-{start.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def plays(sim: SpeakerSim, node: str, oid: str) -> int:
    return sum(1 for e in sim.nodes[node].log if e[1] == oid and e[2] == "playing")


# ----------------------------------------------------------------------------- telemetry accounting


def ring_points(db: Path, since_ns: int) -> list[tuple[str, dict[str, str], int, dict[str, Any]]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        rows = c.execute("SELECT s.measurement, s.tags, p.ts, p.fields FROM points p JOIN series s "
                         "ON s.id = p.series_id WHERE p.ts >= ?", (since_ns,)).fetchall()
    return [(m, json.loads(t), ts, json.loads(f)) for m, t, ts, f in rows]


def first_numeric(fields: dict[str, Any]) -> str | None:
    for k in sorted(fields):
        v = fields[k]
        if isinstance(v, bool | int | float) and v == v and abs(v) != float("inf"):
            return k
    return None


def vm_samples(vm: services.VictoriaMetrics, names: set[str]) -> dict[tuple[str, frozenset], list[int]]:
    out: dict[tuple[str, frozenset], list[int]] = {}
    for series in vm.export('{__name__=~"' + "|".join(sorted(names)) + '"}'):
        metric = dict(series["metric"])
        name = metric.pop("__name__")
        out.setdefault((name, frozenset(metric.items())), []).extend(series["timestamps"])
    return out


def influx_samples(db: services.InfluxDB1, dbname: str, wanted: set[tuple[str, str]], since_ns: int
                   ) -> set[tuple[str, frozenset, int]]:
    out = set()
    for m, f in sorted(wanted):
        res = db.query(f'SELECT "{f}" FROM "{m}" WHERE time >= {since_ns} GROUP BY *', db=dbname)
        for r in res["results"]:
            for s in r.get("series", []):
                tags = frozenset((k, v) for k, v in (s.get("tags") or {}).items() if v)
                for ts, v in s["values"]:
                    if v is not None:
                        out.add((f"{m}_{f}", tags, ts))
    return out


def spooled_samples(spool_dir: Path, names: set[str]) -> set[tuple[str, frozenset, int]]:
    """What the daemon's spool still holds (read from a copy: reading commits)."""
    import shutil
    import tempfile

    from support.lineproto_reader import parse

    from netmgr.telemetry.spool import Spool

    out = set()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "spool"
        shutil.copytree(spool_dir, copy)
        spool = Spool(copy, 2**40).open()
        try:
            while (rec := spool.peek()) is not None:
                for line in rec.data.decode().splitlines():
                    m, tags, fields, ts = parse(line)
                    for f in fields:
                        if f"{m}_{f}" in names:
                            out.add((f"{m}_{f}", frozenset((k, v) for k, v in tags.items() if v), ts))
                spool.commit(rec)
        finally:
            spool.close()
    return out


def telemetry_accounting(p: Province, day: Day, since_ns: int) -> dict[str, Any]:
    """Every point the daemon kept in its ring, found in VictoriaMetrics or (after the SIGHUP)
    influxdb 1.6; none twice in VictoriaMetrics. The ring gets a batch only once it is written or
    spooled, so this holds across the SIGKILL too (``lost_at_sigkill`` counts any that did not)."""
    ring = ring_points(p.state / "telemetry.db", since_ns)
    want: list[tuple[str, frozenset, int, int]] = []
    names: set[str] = set()
    mf: set[tuple[str, str]] = set()
    for m, tags, ts, fields in ring:
        f = first_numeric(fields)
        if f is None:
            continue
        labels = frozenset((k, v) for k, v in tags.items() if v)
        want.append((f"{m}_{f}", labels, ts // 10**6, ts))
        names.add(f"{m}_{f}")
        mf.add((m, f))
    vm = vm_samples(p.vm, names)
    vm_set = {(n, lab, t) for (n, lab), tss in vm.items() for t in tss}
    # A broadcast point is rewritten at the occurrence's start time as its outcome changes (InfluxDB
    # keeps the last write); every other series gets each timestamp once.
    dup = {k: len(v) - len(set(v)) for k, v in vm.items()
           if len(v) != len(set(v)) and not k[0].startswith("broadcast_")}
    inf = influx_samples(p.influx1, p.influx_db, mf, max(since_ns, day.hup_ns - 120 * 10**9))
    spooled = spooled_samples(p.state / "telemetry-spool", names)
    missing = [w for w in want if (w[0], w[1], w[2]) not in vm_set and (w[0], w[1], w[3]) not in inf
               and (w[0], w[1], w[3]) not in spooled]
    at_kill = [w for w in missing if day.kill_ns - 3 * 10**9 <= w[3] <= day.kill_ns]
    return {"ring_points": len(ring), "checked": len(want), "in_vm": sum(1 for w in want if w[:3] in vm_set),
            "in_influx1": sum(1 for w in want if (w[0], w[1], w[3]) in inf),
            "in_spool": sum(1 for w in want if (w[0], w[1], w[3]) in spooled), "missing": missing[:20],
            "missing_count": len(missing), "lost_at_sigkill": len(at_kill), "vm_duplicates": dup}


# ----------------------------------------------------------------------------- the scenario


async def province_day(tmp: Path, mosquitto_factory, snmpd, snmpsim, postgres, influxdb1,
                       soak_minutes: float | None = None) -> dict[str, Any]:
    p = Province(tmp, mosquitto_factory, snmpd, snmpsim, postgres, influxdb1)
    day = Day()
    p.notify = Notify(tmp / "notify.sock")
    since_ns = time.time_ns()
    admin = json.loads((await cli(p.env, "user", "add", "admin", "--role", "admin", "--json")).stdout)
    p.tokens["admin"] = admin["token"]
    p.start_daemon()
    sim: SpeakerSim | None = None
    try:
        await p.wait_ready(1)
        day.mark("READY: netmgr run started on PostgreSQL")
        await p.onboard()
        day.mark("onboarded: 20 communes, 1,000 speakers with credentials, broker reloaded, 300 APs")
        sim = SpeakerSim(Broker(port=p.m.tls_port, tls=True, ca_file=p.m.ca_file, protocol="3.1.1"),
                         list(NODES.items()), SimConfig(telemetry_interval=TELEMETRY_INTERVAL, reconnect_max=3.0,
                                                         seed=7), p.passwords)
        await sim.__aenter__()
        await sim.wait_connected(timeout=90)
        await p.wait_registry(1000, 0, 90, "fleet connected")
        await p.wait_aps(N_APS, 0, 3 * SNMP_INTERVAL + 10, "first polls")
        day.mark("1,000 speakers online, 300 APs up")

        # ---- the day's programs
        now = datetime.now(UTC)
        daily_at = (now + timedelta(seconds=105)).replace(second=0, microsecond=0)
        hhmm = daily_at.astimezone(TZ).strftime("%H:%M")
        daily = {}
        for user, commune in (("op-a", COMMUNES[0]), ("op-b", COMMUNES[7])):
            r = await p.as_json(user, "broadcast", "schedule", f"Bản tin sáng {commune[-5:]}", "--zone", commune,
                                "--url", "http://127.0.0.1:9/morning.mp3", "--daily", hhmm, "--duration", "20s")
            assert r["next_utc"] == daily_at.isoformat(), r
            daily[commune] = occ_id(r["id"], daily_at)
        clash = await p.as_("op-a", "broadcast", "schedule", "Thông báo", "--zone", COMMUNES[0], "--url",
                            "http://127.0.0.1:9/x.mp3", "--daily", hhmm, "--duration", "1m", ok=False)
        assert clash.returncode != 0 and "Bản tin sáng" in clash.stderr and hhmm in clash.stderr, clash.stderr
        cross = await p.as_("op-a", "broadcast", "schedule", "Bản tin", "--zone", COMMUNES[7], "--url",
                            "http://127.0.0.1:9/x.mp3", "--daily", hhmm, "--duration", "20s", ok=False)
        assert cross.returncode != 0 and COMMUNES[7] in cross.stderr, cross.stderr
        peek = await p.as_("viewer", "broadcast", "now", "--zone", COMMUNES[3], "--url", "http://127.0.0.1:9/x.mp3",
                           "--duration", "5s", ok=False)
        assert peek.returncode != 0, peek.stdout
        no_perm = await p.as_("op-b", "broadcast", "now", "--zone", COMMUNES[7], "--url",
                              "http://127.0.0.1:9/x.mp3", "--duration", "5s", "--emergency", ok=False)
        assert no_perm.returncode != 0 and "emergency" in no_perm.stderr, no_perm.stderr
        minute = await p.as_json("admin", "broadcast", "schedule", "Phát thanh mỗi phút", "--zone", PROVINCE,
                                 "--url", "http://127.0.0.1:9/minute.mp3", "--rrule",
                                 # COUNT: a minutely rule over the nodes' 48 h horizon would be 2,880
                                 # items in every node's schedule document
                                 f"FREQ=MINUTELY;BYSECOND={MINUTE_SECOND};COUNT={15 + int(soak_minutes or 0)}",
                                 "--duration", "8s", "--volume", "60")
        first_minute = datetime.fromisoformat(minute["next_utc"])
        assert first_minute.second == MINUTE_SECOND
        await until(lambda: all(n.schedule is not None and len(n.schedule.items) >= 2
                                for n in sim.nodes.values()), 60,
                    "every node holding its schedule", interval=POLL)
        day.mark(f"programs: daily {hhmm} for two communes, every minute at :{MINUTE_SECOND} for the province")

        # ---- fault 1: 10% of the speakers offline, 5% of the APs blackholed
        offline = sorted(random.Random(11).sample(sorted(NODES), 100))
        await sim.set_offline(offline)
        for relay in p.relays:
            relay.blackhole = True
        await p.wait_registry(900, 100, 2 * TELEMETRY_INTERVAL, "speakers cut off")
        day.mark("100 speakers offline in the registry")
        # ---- the district emergency (clear of the programs' seconds)
        # 15 s long, from hh:mm:40-44: over before the daily programs' :00. (A 5 s alert on a loaded
        # machine had nodes it reached after its end: `expired`, rightly.)
        await wall_second_in(40, 44)
        d1 = list(DISTRICTS)[1]
        em = await p.as_json("admin", "broadcast", "now", "--zone", d1, "--url", "http://127.0.0.1:9/bao.mp3",
                             "--emergency", "--duration", "15s", "--wait", "--timeout", "60")
        states = {d["node"]: d["state"] for d in em["deliveries"]}
        in_d1 = {n for n, z in NODES.items() if z.startswith(d1 + "/")}
        assert set(states) == in_d1
        assert {n for n, s in states.items() if s == "offline"} == in_d1 & set(offline)
        assert {s for n, s in states.items() if n not in offline} == {"done"}, em["summary"]
        day.mark(f"district emergency: {len(in_d1 - set(offline))} done, {len(in_d1 & set(offline))} offline")
        await p.wait_aps(N_APS - len(p.blackholed), len(p.blackholed), 3 * SNMP_INTERVAL + 10, "blackholed APs")
        day.mark("15 blackholed APs down")

        # ---- fault 2: the broker killed for 30 s, VictoriaMetrics stopped for 60 s
        p.vm.stop()
        p.m.kill()
        down = time.monotonic()
        day.mark("broker killed, VictoriaMetrics stopped")
        await until(lambda: sim.online_count() == 0, 30, "the nodes losing the broker", interval=POLL)
        await sleep_until(down + 30)
        p.m.start()
        day.mark("broker back")
        await until(lambda: sim.online_count() == 900, 60, "900 nodes reconnected", interval=POLL)
        await p.wait_registry(900, 100, TELEMETRY_INTERVAL + 15, "after the broker outage")
        day.mark("registry right after the broker outage")
        h = await p.services_health()
        assert h is not None and h["telemetry"]["spool_points"] > 0, h and h["telemetry"]
        await sleep_until(down + 60)
        p.vm.start()
        day.mark("VictoriaMetrics back")

        async def spool_empty():
            t = (await p.services_health() or {}).get("telemetry", {})
            return t.get("spool_points") == 0 and t.get("queue_depth", 1) < 20_000 and t.get("points_dropped") == 0
        await until(spool_empty, 90, "the spool replayed to VictoriaMetrics", interval=POLL)
        day.mark("spool replayed")

        # ---- fault 3: SIGKILL and restart
        assert p.proc is not None
        day.rss.append((time.monotonic(), rss_kb(p.proc.pid)))
        p.proc.send_signal(signal.SIGKILL)
        day.kill_ns = time.time_ns()
        p.proc.wait(10)
        day.mark("netmgr run SIGKILLed")
        p.start_daemon()
        await p.wait_ready(2)
        await p.wait_registry(900, 100, TELEMETRY_INTERVAL + 20, "after the restart")
        day.mark("READY again; registry right after the restart")

        # ---- fault 4: SIGHUP with a changed config (poll interval, InfluxDB target)
        p.write_config(SNMP_INTERVAL_AFTER_HUP, influx="influx1")
        day.hup_ns = time.time_ns()
        p.proc.send_signal(signal.SIGHUP)
        await until(lambda: p.notify.count(lambda m: "STATUS=reloaded" in m) >= 1, 20,
                    "READY after the reload", interval=POLL)
        h = await p.services_health()
        assert h is not None and p.influx_db in h["telemetry"]["influxdb"], h and h["telemetry"]
        assert f"poller reloaded aps={N_APS} interval={SNMP_INTERVAL_AFTER_HUP}s" in p.log_text()

        async def influx_filling():
            r = await asyncio.to_thread(p.influx1.query, "SELECT count(rssi_dbm) FROM speaker", p.influx_db)
            series = r["results"][0].get("series")
            return series and series[0]["values"][0][1] > 0
        await until(influx_filling, 30, "speaker telemetry in influxdb 1.6", interval=POLL)
        day.mark("SIGHUP: interval 20 s, telemetry to influxdb 1.6")

        # ---- back to normal
        for relay in p.relays:
            relay.blackhole = False
        sim.set_online(offline)
        await p.wait_registry(1000, 0, 60, "everyone back")
        await p.wait_aps(N_APS, 0, 2 * SNMP_INTERVAL_AFTER_HUP + 10, "blackholed APs back")
        day.mark("1,000 online, 300 APs up")

        # One more whole per-minute occurrence with everybody back, then (soak) the long run.
        end = datetime.now(UTC) + timedelta(seconds=5)
        soak: dict[str, Any] = {}
        if soak_minutes:
            soak = await soak_run(p, sim, day, soak_minutes)
            end = datetime.now(UTC)
        last = max(s for s in minute_starts(first_minute, end + timedelta(minutes=1)) if s > end)
        await until(lambda: all(plays(sim, n, occ_id(minute["id"], last)) == 1 and any(
            e[1] == occ_id(minute["id"], last) and e[2] == "done" for e in sim.nodes[n].log) for n in NODES),
            120, "the last per-minute occurrence done on every node", interval=POLL)
        day.mark("last per-minute occurrence done on 1,000 nodes")
        return await final_checks(p, sim, day, since_ns, minute["id"], first_minute, last, daily, daily_at,
                                  offline, soak)
    finally:
        if sim is not None:
            await sim.__aexit__(None, None, None)
        if p.proc is not None and p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.proc.wait(20)
            if p.proc.poll() is None:
                p.proc.kill()
        for relay in p.relays:
            relay.close()
        p.notify.close()
        p.vm.stop()


def minute_starts(first: datetime, until_t: datetime) -> list[datetime]:
    out, t = [], first
    while t <= until_t:
        out.append(t)
        t += timedelta(minutes=1)
    return out


async def final_checks(p: Province, sim: SpeakerSim, day: Day, since_ns: int, minute_id: int,
                       first_minute: datetime, last: datetime, daily: dict[str, str], daily_at: datetime,
                       offline: list[str], soak: dict[str, Any]) -> dict[str, Any]:
    # The report accounts for every occurrence (read while the daemon runs: the API).
    async def report_has_last():
        rep = await p.as_json("admin", "broadcast", "report", "--from", "yesterday", "--to", "tomorrow")
        rows = {i["id"]: i for i in rep["items"]}
        return rep if rows.get(occ_id(minute_id, last), {}).get("played") == len(NODES) else None
    rep = await until(report_has_last, 30, "the report to show the last occurrence played", interval=POLL)
    rows = {i["id"]: i for i in rep["items"]}
    starts = minute_starts(first_minute, last)
    log = p.log_text()
    for s in starts:
        oid = occ_id(minute_id, s)
        assert oid in rows, f"occurrence {oid} not in the report (dropped silently?)"
        if rows[oid]["missed"]:
            assert "occurrence missed" in log and oid in log, oid
        for n in NODES:  # every node, online or cut off, played it once (command or cached schedule)
            assert plays(sim, n, oid) == 1, (n, oid, [e for e in sim.nodes[n].log if e[1] == oid])
    for commune, oid in daily.items():
        assert oid in rows and rows[oid]["targets"] == 50, rows.get(oid)
        for n, z in NODES.items():
            assert plays(sim, n, oid) == (1 if z == commune else 0), (n, oid)
    day.mark(f"{len(starts)} per-minute occurrences and 2 daily programs: each played once by every node")

    # Every refused action audited, with who and what.
    denied = await p.as_json("admin", "audit", "list", "--outcome", "denied", "--limit", "1000")
    by_actor = {(d["actor"], d["action"]) for d in denied}
    assert {("op-a", "program.add"), ("op-b", "program.add"), ("viewer", "program.add")} <= by_actor, denied
    assert any(d["actor"] == "op-a" and d["zone"] == COMMUNES[7] for d in denied), denied  # cross-commune
    assert any(d["actor"] == "op-b" and "emergency" in json.dumps(d) for d in denied), denied

    # AP states and their history: the blackholed ones went down and came back, nobody else moved.
    aps = {a["name"]: a for a in await p.as_json("admin", "ap", "list")}
    assert len(aps) == N_APS and {a["status"] for a in aps.values()} == {"up"}
    for name in p.blackholed[:3]:
        shown = await p.as_json("admin", "ap", "show", name)
        assert [e["status"] for e in shown["events"]][-2:] in (["down", "up"], ["up", "down"]), shown["events"]
    h = await p.services_health()
    assert h is not None
    poller = h["poller"]

    # sd_notify: READY after each start and after the reload; the watchdog never starved.
    assert p.notify is not None
    readies = [t for t, m in p.notify.messages if "READY=1" in m]
    assert len(readies) >= 3, p.notify.messages[:10]
    dogs = [t for t, m in p.notify.messages if m == "WATCHDOG=1"]
    kill_mono = readies[1]  # the restart's READY: the gap before it is the SIGKILL
    gaps = [b - a for a, b in itertools.pairwise(dogs) if not (a < kill_mono <= b)]
    assert gaps and max(gaps) < WATCHDOG_USEC / 1e6, max(gaps)

    # Stop as systemd would (SIGTERM: drains telemetry), then account for every point.
    assert p.proc is not None
    day.rss.append((time.monotonic(), rss_kb(p.proc.pid)))
    p.proc.send_signal(signal.SIGTERM)
    assert p.proc.wait(30) == 0
    acct = await asyncio.to_thread(telemetry_accounting, p, day, since_ns)

    day.mark(f"telemetry: {acct['checked']} ring points checked, {acct['in_vm']} in VictoriaMetrics, "
             f"{acct['in_influx1']} in influxdb 1.6, {acct['in_spool']} still in the spool, "
             f"{acct['missing_count']} missing "
             f"({acct['lost_at_sigkill']} caught by the SIGKILL)")
    # ~1,000 speakers every 10 s and 300 APs for ~4 minutes: well over 20,000 points.
    assert acct["checked"] > 20_000 and acct["in_vm"] > 0 and acct["in_influx1"] > 0, acct
    assert acct["missing_count"] == 0, acct
    assert not acct["vm_duplicates"], acct["vm_duplicates"]
    return {"telemetry": acct, "poller": poller, "occurrences": len(starts), "soak": soak,
            "delivery": delivery_ratios(sim, minute_id, starts), "events": day.events}


async def soak_run(p: Province, sim: SpeakerSim, day: Day, minutes: float) -> dict[str, Any]:
    """Keep the province running; sample the daemon's RSS and the poller's and radio's counters."""
    assert p.proc is not None
    t_end = day.t0 + minutes * 60
    start = time.monotonic()
    h0 = await p.services_health() or {}
    samples: list[tuple[float, int]] = []
    while time.monotonic() < t_end:
        samples.append((time.monotonic() - start, rss_kb(p.proc.pid)))
        if len(samples) % 10 == 1:
            day.mark(f"soak: rss {samples[-1][1] / 1024:.1f} MiB")
        await asyncio.sleep(min(30.0, max(0.1, t_end - time.monotonic())))
    h1 = await p.services_health() or {}
    warm = [s for s in samples if s[0] >= min(600.0, (samples[-1][0]) / 6)] or samples
    base = warm[0][1]
    polls = h1["poller"]["polls"] - h0.get("poller", {}).get("polls", 0)
    late = h1["poller"]["late_polls"] - h0.get("poller", {}).get("late_polls", 0)
    return {"minutes": round((time.monotonic() - start) / 60, 1), "rss_baseline_kb": base,
            "rss_end_kb": samples[-1][1], "rss_max_kb": max(s[1] for s in samples),
            "rss_growth_pct": round(100 * (samples[-1][1] - base) / base, 2),
            "polls": polls, "late_polls": late, "late_pct": round(100 * late / max(1, polls), 3),
            "radio_messages": h1["radio"]["messages"], "rss_samples": samples[::10]}


def delivery_ratios(sim: SpeakerSim, minute_id: int, starts: list[datetime]) -> dict[str, Any]:
    per = []
    for s in starts:
        oid = occ_id(minute_id, s)
        per.append(sum(1 for n in sim.nodes.values() if any(e[1] == oid and e[2] == "done" for e in n.log)))
    return {"occurrences": len(starts), "min_nodes_done": min(per), "nodes": len(sim.nodes),
            "ratio": round(sum(per) / (len(per) * len(sim.nodes)), 5)}


async def test_province_in_a_box(tmp_path: Path, mosquitto_factory, snmpd, snmpsim, postgres, influxdb1) -> None:
    t0 = time.monotonic()
    out = await province_day(tmp_path, mosquitto_factory, snmpd, snmpsim, postgres, influxdb1)
    print(json.dumps({"scenario": "province", "seconds": round(time.monotonic() - t0, 1),
                      "telemetry": {k: v for k, v in out["telemetry"].items() if k != "missing"},
                      "poller": out["poller"], "occurrences": out["occurrences"], "delivery": out["delivery"]}))


@pytest.mark.soak
async def test_province_soak(request, tmp_path: Path, mosquitto_factory, snmpd, snmpsim, postgres,
                             influxdb1) -> None:
    minutes = float(request.config.getoption("--soak"))
    out = await province_day(tmp_path, mosquitto_factory, snmpd, snmpsim, postgres, influxdb1, minutes)
    soak = out["soak"]
    print(json.dumps({"soak": {k: v for k, v in soak.items() if k != "rss_samples"}, "delivery": out["delivery"],
                      "telemetry": {k: v for k, v in out["telemetry"].items() if k != "missing"}}))
    print(f"soak {soak['minutes']} min: RSS {soak['rss_baseline_kb'] / 1024:.1f} -> {soak['rss_end_kb'] / 1024:.1f} MiB "
          f"({soak['rss_growth_pct']:+.1f}%), late polls {soak['late_polls']}/{soak['polls']} "
          f"({soak['late_pct']}%), per-minute occurrences {out['occurrences']} each played once by all 1,000 nodes")
    assert soak["rss_growth_pct"] < 10, soak
    assert soak["late_pct"] < 1, soak
    assert out["delivery"]["ratio"] == 1.0, out["delivery"]
