"""Each test server really serves: the fixtures every other integration test builds on."""

from __future__ import annotations

import asyncio
import os
import platform
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import aiomqtt
import asyncpg
import pytest
from support import services
from support.services import require
from support.waiting import wait_for

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SIM_DIR = Path(__file__).resolve().parents[2] / "devices" / "sim"


# --------------------------------------------------------------------------- the harness


def test_a_server_that_dies_at_start_fails_with_its_log_tail():
    d = services.workdir("dies")
    services.chown(d)
    proc = services.ServerProcess("dies", ["sh", "-c", "echo cannot bind the port >&2; exit 3"],
                                  lambda: False, cwd=d, start_timeout=10)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError) as e:
        proc.start()
    assert time.monotonic() - t0 < 5  # noticed at once, not at the deadline
    assert "dies exited with 3" in str(e.value) and "cannot bind the port" in str(e.value)


def test_a_missing_binary_says_to_run_setup():
    with pytest.raises(RuntimeError, match="scripts/setup"):
        require("netmgr-no-such-server")


def test_wait_for_names_what_it_waited_for():
    with pytest.raises(TimeoutError, match="the moon to rise"):
        wait_for(lambda: False, 0.1, "the moon to rise")


# --------------------------------------------------------------------------- PostgreSQL


async def test_postgres_main_and_fresh_databases(postgres):
    assert postgres.url.startswith("postgresql://netmgr@127.0.0.1:") and postgres.url.endswith("/netmgr")
    main = await asyncpg.connect(postgres.url)
    try:
        assert await main.fetchval("select current_database()") == "netmgr"
    finally:
        await main.close()
    a, b = postgres.fresh_database(), postgres.fresh_database()
    assert a != b
    conn = await asyncpg.connect(a)
    try:
        assert await conn.fetchval("select 40 + 2") == 42
        await conn.execute("create table t (x int)")
        assert await conn.fetchval("select current_setting('fsync')") == "off"
    finally:
        await conn.close()
    conn = await asyncpg.connect(b)
    try:  # a fresh database shares nothing with the previous one
        assert await conn.fetchval("select count(*) from pg_tables where tablename = 't'") == 0
    finally:
        await conn.close()


# --------------------------------------------------------------------------- mosquitto


async def round_trip(client: aiomqtt.Client, topic: str, payload: bytes) -> None:
    await client.subscribe(topic, qos=1)
    await client.publish(topic, payload, qos=1)
    async with asyncio.timeout(5):
        async for m in client.messages:
            assert m.payload == payload
            return


async def test_mosquitto_round_trip(mosquitto):
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
        await round_trip(c, "t/x", b"ping")


async def test_mosquitto_tls_verifies_against_the_test_ca(mosquitto_factory):
    m = mosquitto_factory(tls=True)
    ctx = ssl.create_default_context(cafile=str(m.ca_file))
    async with aiomqtt.Client("127.0.0.1", m.tls_port, tls_context=ctx) as c:
        await round_trip(c, "t/tls", b"secure")
    # A client that does not trust the test CA is refused at the handshake.
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", m.tls_port, tls_context=ssl.create_default_context(),
                                  timeout=5):
            pass


async def test_mosquitto_password_file_and_restart_on_same_port(mosquitto_factory, tmp_path):
    passwd = tmp_path / "passwd"
    subprocess.run([require("mosquitto_passwd"), "-b", "-c", str(passwd), "node-1", "s3cret"],
                   check=True, capture_output=True)
    m = mosquitto_factory(passwd_file=passwd)
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", m.port, timeout=5):
            pass
    port = m.port
    m.stop()
    m.start()
    assert m.port == port
    async with aiomqtt.Client("127.0.0.1", m.port, username="node-1", password="s3cret") as c:
        await round_trip(c, "t/auth", b"hello")


# --------------------------------------------------------------------------- SNMP


def snmpget(port: int, *args: str, oid: str = SYS_DESCR) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("snmpget"), "-On", "-Oqv", "-t", "1", "-r", "1", *args,
                           f"127.0.0.1:{port}", oid],
                          capture_output=True, text=True, env=dict(os.environ, MIBS=""), check=False)


def test_snmpd_sysdescr_v2c_and_v3_authpriv(snmpd):
    r = snmpget(snmpd.port, "-v2c", "-c", snmpd.community)
    assert r.returncode == 0 and platform.uname().release in r.stdout, r.stderr
    v3 = snmpd.v3
    r = snmpget(snmpd.port, "-v3", "-l", "authPriv", "-u", v3["user"], "-a", "SHA", "-A", v3["auth_key"],
                "-x", "AES", "-X", v3["priv_key"])
    assert r.returncode == 0 and platform.uname().release in r.stdout, r.stderr
    r = snmpget(snmpd.port, "-v3", "-l", "authPriv", "-u", v3["user"], "-a", "SHA", "-A", "wrong-password",
                "-x", "AES", "-X", v3["priv_key"])
    assert r.returncode != 0 and platform.uname().release not in r.stdout
    r = snmpget(snmpd.port, "-v2c", "-c", "not-the-community")
    assert r.returncode != 0


def test_snmpd_factory_takes_extra_config(snmpd_factory):
    agent = snmpd_factory(extra_config="sysDescr factory agent")
    assert snmpget(agent.port, "-v2c", "-c", agent.community).stdout.strip().strip('"') == "factory agent"


def test_snmpsim_serves_a_written_recording(tmp_path, snmpsim_factory):
    (tmp_path / "tiny.snmprec").write_text(f"{SYS_DESCR}|4|tiny test agent\n1.3.6.1.2.1.1.5.0|4|tiny-ap\n")
    sim = snmpsim_factory(tmp_path)
    r = snmpget(sim.port, "-v2c", "-c", "tiny", oid="1.3.6.1.2.1.1.5.0")
    assert r.stdout.strip().strip('"') == "tiny-ap", r.stderr


def test_snmpsim_serves_the_project_recordings(snmpsim):
    recordings = sorted(SIM_DIR.glob("*.snmprec"))
    assert recordings and sorted(p.stem for p in recordings) == snmpsim.communities
    for rec in recordings[:3]:
        line = next(x for x in rec.read_text().splitlines() if x.startswith(f"{SYS_DESCR}|"))
        _, tag, value = line.split("|", 2)
        r = snmpget(snmpsim.port, "-v2c", "-c", rec.stem)
        assert r.returncode == 0, r.stderr
        if tag == "4":  # plain text (4x would be hex)
            assert r.stdout.strip().strip('"') == value


# --------------------------------------------------------------------------- telemetry stores


def post(url: str, body: bytes) -> int:
    req = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status


def test_victoriametrics_write_read_and_restart(victoriametrics):
    ts = int(time.time()) * 10**9
    assert post(f"{victoriametrics.url}/api/v2/write?bucket=x&org=y",
                f"svc_test,ap=a1 clients=7i {ts}\n".encode()) == 204
    series = victoriametrics.export('{__name__="svc_test_clients"}')
    assert len(series) == 1 and series[0]["values"] == [7] and series[0]["metric"]["ap"] == "a1"
    url = victoriametrics.url
    victoriametrics.stop()
    victoriametrics.start()
    assert victoriametrics.url == url  # same port: clients reconnect to the same address
    # What was written before the restart is still there; new writes work.
    assert post(f"{url}/api/v2/write", f"svc_test,ap=a2 clients=9i {ts}\n".encode()) == 204
    victoriametrics.force_flush()

    def both() -> list:
        got = victoriametrics.query("svc_test_clients", at=ts / 1e9)
        return got if len(got) == 2 else []

    got = wait_for(both, 10, "both svc_test_clients series after a restart")
    assert {r["metric"]["ap"]: r["value"][1] for r in got} == {"a1": "7", "a2": "9"}


def test_influxdb1_write_and_query(influxdb1):
    influxdb1.create_db("svc")
    influxdb1.write("svc", b"ap,ap=a1 clients=3i 1700000000000000000\nap,ap=a1 clients=5i 1700000060000000000\n")
    data = influxdb1.query('SELECT max("clients"), count("clients") FROM "ap"', db="svc")
    assert data["results"][0]["series"][0]["values"][0][1:] == [5, 2]
