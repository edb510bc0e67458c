"""Each test server really serves: the fixtures other tests build on."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time

import aiomqtt
import asyncpg


async def test_postgres_answers(postgres):
    url = postgres.fresh_database()
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("select 40 + 2") == 42
    finally:
        await conn.close()


async def test_mosquitto_round_trip(mosquitto):
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
        await c.subscribe("t/x", qos=1)
        await c.publish("t/x", b"ping", qos=1)
        async with asyncio.timeout(5):
            async for m in c.messages:
                assert m.payload == b"ping"
                break


async def test_mosquitto_tls(mosquitto_factory):
    m = mosquitto_factory(tls=True)
    ctx = ssl.create_default_context(cafile=str(m.ca_file))
    async with aiomqtt.Client("127.0.0.1", m.tls_port, tls_context=ctx) as c:
        await c.subscribe("t/tls", qos=1)
        await c.publish("t/tls", b"secure", qos=1)
        async with asyncio.timeout(5):
            async for msg in c.messages:
                assert msg.payload == b"secure"
                break


def snmpget(args, port):
    return subprocess.run(["snmpget", "-On", "-t", "1", "-r", "1", *args, f"127.0.0.1:{port}",
                           "1.3.6.1.2.1.1.5.0"], capture_output=True, text=True, env={"MIBS": ""})


def test_snmpd_v2c_and_v3(snmpd):
    r = snmpget(["-v2c", "-c", snmpd.community], snmpd.port)
    assert "netmgr-test-agent" in r.stdout, r.stderr
    v3 = snmpd.v3
    r = snmpget(["-v3", "-l", "authPriv", "-u", v3["user"], "-a", "SHA", "-A", v3["auth_key"],
                 "-x", "AES", "-X", v3["priv_key"]], snmpd.port)
    assert "netmgr-test-agent" in r.stdout, r.stderr
    r = snmpget(["-v3", "-l", "authPriv", "-u", v3["user"], "-a", "SHA", "-A", "wrong-password",
                 "-x", "AES", "-X", v3["priv_key"]], snmpd.port)
    assert "netmgr-test-agent" not in r.stdout


def test_snmpsim_serves_a_recording(tmp_path, snmpsim_factory):
    (tmp_path / "tiny.snmprec").write_text(
        "1.3.6.1.2.1.1.1.0|4|tiny test agent\n1.3.6.1.2.1.1.5.0|4|tiny-ap\n")
    sim = snmpsim_factory(tmp_path)
    r = snmpget(["-v2c", "-c", "tiny"], sim.port)
    assert "tiny-ap" in r.stdout, r.stderr


def test_victoriametrics_write_and_read(victoriametrics):
    import urllib.request

    ts = int(time.time()) * 10**9
    req = urllib.request.Request(f"{victoriametrics.url}/api/v2/write?bucket=x&org=y",
                                 data=f"svc_test,ap=a1 clients=7i {ts}\n".encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 204
    series = victoriametrics.export('{__name__="svc_test_clients"}')
    assert series and series[0]["values"] == [7] and series[0]["metric"]["ap"] == "a1"


def test_influxdb1_write_and_query(influxdb1):
    influxdb1.create_db("svc")
    influxdb1.write("svc", b"ap,ap=a1 clients=3i 1700000000000000000\n")
    data = influxdb1.query('SELECT last("clients") FROM "ap"', db="svc")
    assert data["results"][0]["series"][0]["values"][0][1] == 3
