"""The SNMP client against real net-snmp snmpd (v2c, v3 authPriv), and against misbehaving peers."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time

import pytest

from netmgr.errors import SnmpBadResponse, SnmpError, SnmpTimeout
from netmgr.snmp import ber
from netmgr.snmp.client import SnmpClient, Target
from netmgr.snmp.types import Tag, VarBind, parse_oid

IF_COLS = [parse_oid(f"1.3.6.1.2.1.2.2.1.{c}") for c in (2, 8, 10, 16)] + [
    parse_oid("1.3.6.1.2.1.31.1.1.1.6")]


def snmpwalk(port, community, oid):
    r = subprocess.run(["snmpwalk", "-v2c", "-c", community, "-On", "-Oe", "-Ot", "-Ox",
                        f"127.0.0.1:{port}", oid], capture_output=True, text=True, env={"MIBS": ""},
                       check=True)
    return [line.split(" = ")[0].lstrip(".") for line in r.stdout.splitlines() if " = " in line]


@pytest.fixture
async def client():
    async with SnmpClient() as c:
        yield c


def v2(snmpd, **kw):
    return Target("ap-test", "127.0.0.1", snmpd.port, community=snmpd.community, **kw)


def v3(snmpd, **kw):
    u = snmpd.v3
    return Target("ap-v3", "127.0.0.1", snmpd.port, version="3", v3_user=u["user"], auth_proto="SHA",
                  auth_key=u["auth_key"], priv_proto="AES", priv_key=u["priv_key"], **kw)


async def test_get_v2c_and_v3_agree(client, snmpd):
    oids = [parse_oid("1.3.6.1.2.1.1.5.0"), parse_oid("1.3.6.1.2.1.1.2.0"), parse_oid("1.3.6.1.2.1.1.99.0")]
    a = await client.get(v2(snmpd), oids)
    b = await client.get(v3(snmpd), oids)
    assert a[0].value == b"netmgr-test-agent" == b[0].value
    assert a[1].tag == Tag.OBJECT_IDENTIFIER and a[1].value == b[1].value
    assert a[2].tag == b[2].tag == Tag.NO_SUCH_OBJECT


@pytest.mark.parametrize("bulk", [True, False])
async def test_walk_matches_snmpwalk(client, snmpd, bulk):
    got = await client.walk_columns(v2(snmpd, bulk=bulk, max_repetitions=3), IF_COLS)
    for col in IF_COLS:
        expected = snmpwalk(snmpd.port, snmpd.community, ".".join(map(str, col)))
        assert [".".join(map(str, vb.oid)) for vb in got[col]] == expected
        assert expected
    got3 = await client.walk_columns(v3(snmpd), IF_COLS)
    assert {c: [v.oid for v in vs] for c, vs in got3.items()} == {c: [v.oid for v in vs]
                                                                  for c, vs in got.items()}


async def test_v3_wrong_key_is_a_clear_error(client, snmpd):
    t = Target("ap-v3", "127.0.0.1", snmpd.port, version="3", v3_user=snmpd.v3["user"], auth_proto="SHA",
               auth_key="wrong-key-123", priv_proto="AES", priv_key=snmpd.v3["priv_key"], timeout=0.5,
               retries=0)
    with pytest.raises((SnmpBadResponse, SnmpTimeout)) as ei:
        await client.get(t, [parse_oid("1.3.6.1.2.1.1.5.0")])
    assert f"ap-v3 (127.0.0.1:{snmpd.port})" in str(ei.value)


def dead_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]  # bound but never read: a blackhole


async def test_timeout_is_bounded_and_named(client):
    sock, port = dead_port()
    try:
        t = Target("ap-dead", "127.0.0.1", port, timeout=0.3, retries=2)
        t0 = time.monotonic()
        with pytest.raises(SnmpTimeout, match=r"ap-dead \(127.0.0.1:\d+\): no SNMP response within 0.3s after 2"):
            await client.get(t, [parse_oid("1.3.6.1.2.1.1.3.0")])
        assert 0.85 < time.monotonic() - t0 < 2.0
        assert client.transport.pending == 0
    finally:
        sock.close()


async def test_dead_target_does_not_delay_live_ones(client, snmpd):
    sock, port = dead_port()
    try:
        live = v2(snmpd)
        oids = [parse_oid("1.3.6.1.2.1.1.3.0")]
        t0 = time.monotonic()
        await asyncio.gather(*(client.get(live, oids) for _ in range(50)))
        alone = time.monotonic() - t0
        dead = asyncio.gather(*(client.get(Target(f"dead{i}", "127.0.0.1", port, timeout=3, retries=0), oids)
                                for i in range(20)), return_exceptions=True)
        t0 = time.monotonic()
        await asyncio.gather(*(client.get(live, oids) for _ in range(50)))
        beside_dead = time.monotonic() - t0
        assert beside_dead < max(1.0, alone * 5)
        results = await dead
        assert all(isinstance(r, SnmpTimeout) for r in results)
    finally:
        sock.close()


async def test_cancelled_requests_leave_nothing_pending(client):
    sock, port = dead_port()
    try:
        tasks = [asyncio.create_task(client.get(Target("d", "127.0.0.1", port, timeout=5), [(1, 3, 6)]))
                 for _ in range(100)]
        await asyncio.sleep(0)
        assert client.transport.pending == 100
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert client.transport.pending == 0
    finally:
        sock.close()


class FakeAgent(asyncio.DatagramProtocol):
    """A misbehaving agent: answers each request with what ``reply(request_bytes)`` returns."""

    def __init__(self, reply):
        self.reply = reply
        self.requests = 0

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.requests += 1
        for out in self.reply(data):
            self.transport.sendto(out, addr)


async def fake_agent(reply):
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(lambda: FakeAgent(reply), local_addr=("127.0.0.1", 0))
    return transport, proto, transport.get_extra_info("sockname")[1]


def rid_of(data):
    return ber.peek_request_id(data)


async def test_wrong_ids_and_garbage_are_dropped_not_fatal(client):
    def reply(data):
        rid = rid_of(data)
        vb = [VarBind((1, 3, 6, 1, 2, 1, 1, 3, 0), Tag.TIMETICKS, 42)]
        return [b"\x30\x03garbage", ber.encode_response(rid + 1000, b"public", vb),
                ber.encode_response(rid, b"wrong-community", vb), ber.encode_response(rid, b"public", vb)]

    transport, _, port = await fake_agent(reply)
    try:
        vbs = await client.get(Target("ap-odd", "127.0.0.1", port, timeout=1), [(1, 3, 6, 1, 2, 1, 1, 3, 0)])
        assert vbs[0].value == 42
        st = client.transport.stats
        assert st.malformed >= 1 and st.unknown_id >= 1 and st.by_reason.get("wrong community", 0) >= 1
    finally:
        transport.close()


async def test_malformed_answer_is_a_named_error(client):
    def reply(data):
        good = ber.encode_response(rid_of(data), b"public", [VarBind((1, 3, 6, 1), Tag.INTEGER, 1)])
        return [good[:-1] + b"\x99\x99"]  # right id, broken body

    transport, _, port = await fake_agent(reply)
    try:
        with pytest.raises(SnmpBadResponse, match=r"ap-bad \(127.0.0.1:\d+\): malformed response"):
            await client.get(Target("ap-bad", "127.0.0.1", port, timeout=1), [(1, 3, 6, 1)])
    finally:
        transport.close()


async def test_non_increasing_walk_is_an_error_not_a_loop(client):
    col = parse_oid("1.3.6.1.2.1.2.2.1.2")

    def reply(data):  # always answers with the same row
        return [ber.encode_response(rid_of(data), b"public", [VarBind(col + (1,), Tag.OCTET_STRING, b"eth0")])]

    transport, proto, port = await fake_agent(reply)
    try:
        with pytest.raises(SnmpBadResponse, match=r"non-increasing OID 1\.3\.6\.1\.2\.1\.2\.2\.1\.2\.1"):
            await client.walk_columns(Target("ap-loop", "127.0.0.1", port, timeout=1), [col])
        assert proto.requests == 2
    finally:
        transport.close()


async def test_too_big_halves_max_repetitions(client):
    col = parse_oid("1.3.6.1.2.1.2.2.1.2")
    seen = []

    def reply(data):
        # Decode the request's max-repetitions with pysnmp's decoder: answer tooBig above 4.
        from pyasn1.codec.ber import decoder
        from pysnmp.proto.api import v2c

        msg, _ = decoder.decode(data, asn1Spec=v2c.Message())
        pdu = v2c.apiMessage.get_pdu(msg)
        mr = int(v2c.apiBulkPDU.get_max_repetitions(pdu))
        seen.append(mr)
        rid = rid_of(data)
        if mr > 4:
            return [ber.encode_response(rid, b"public", [], error_status=1)]
        return [ber.encode_response(rid, b"public", [VarBind(col + (i,), Tag.OCTET_STRING, b"x")
                                                     for i in range(1, 3)] + [
            VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 3, 1), Tag.INTEGER, 6)])]

    transport, _, port = await fake_agent(reply)
    try:
        got = await client.walk_columns(Target("ap-big", "127.0.0.1", port, timeout=1, max_repetitions=25), [col])
        assert [v.oid[-1] for v in got[col]] == [1, 2]
        assert seen == [25, 12, 6, 3]
    finally:
        transport.close()


def test_no_leaked_sockets_or_fds():
    async def cycle():
        for _ in range(20):
            async with SnmpClient() as c:
                assert c.transport.pending == 0

    before = len(os.listdir("/proc/self/fd"))
    asyncio.run(cycle())
    assert len(os.listdir("/proc/self/fd")) <= before + 1


async def test_agent_that_mishandles_bulk_is_walked_with_getnext(client):
    col = parse_oid("1.3.6.1.2.1.2.2.1.2")
    kinds = []

    def reply(data):
        rid = rid_of(data)
        # The PDU tag follows version and community: find it after the community TLV.
        kind = data[data.index(b"public") + len(b"public")]
        kinds.append(kind)
        if kind == ber.GETBULK:
            return [ber.encode_response(rid, b"public", [], error_status=5)]  # genErr
        from pyasn1.codec.ber import decoder
        from pysnmp.proto.api import v2c

        msg, _ = decoder.decode(data, asn1Spec=v2c.Message())
        asked = tuple(v2c.apiPDU.get_varbinds(v2c.apiMessage.get_pdu(msg))[0][0])
        nxt = col + (1,) if asked == col else asked[:-1] + (asked[-1] + 1,)
        if nxt[-1] > 3:
            nxt = (1, 3, 6, 1, 2, 1, 2, 2, 1, 3, 1)
        return [ber.encode_response(rid, b"public", [VarBind(nxt, Tag.OCTET_STRING, b"x")])]

    transport, _, port = await fake_agent(reply)
    try:
        got = await client.walk_columns(Target("ap-nobulk", "127.0.0.1", port, timeout=1), [col])
        assert [v.oid[-1] for v in got[col]] == [1, 2, 3]
        assert kinds[0] == ber.GETBULK and set(kinds[1:]) == {ber.GETNEXT}
    finally:
        transport.close()


async def test_host_names_are_resolved(client, snmpd):
    vbs = await client.get(Target("ap-named", "localhost", snmpd.port, community=snmpd.community),
                           [parse_oid("1.3.6.1.2.1.1.5.0")])
    assert vbs[0].value == b"netmgr-test-agent"
    with pytest.raises(SnmpError, match=r"ap-nx \(no-such-host\.invalid:161\): cannot resolve no-such-host\.invalid"):
        await client.get(Target("ap-nx", "no-such-host.invalid"), [parse_oid("1.3.6.1.2.1.1.5.0")])
