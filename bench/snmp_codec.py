"""Micro-benchmark: the lean v2c codec against pysnmp's (pyasn1) codec, in the same run.

    .venv/bin/python bench/snmp_codec.py [--varbinds 30] [--seconds 1.0] [--snmpd]

Encodes a GETBULK request and decodes a Response of ~30 varbinds (a mix of ifTable
counters, strings and sysUpTime) with each codec; prints one JSON line and a summary.
With ``--snmpd`` it also starts a net-snmp agent (tests/support/services.py) and measures the
client's CPU per simulated AP poll: one GET of 6 scalars + one GETBULK walk of 8 ifTable
columns, through the real socket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from pyasn1.codec.ber import decoder as pdecoder
from pyasn1.codec.ber import encoder as pencoder
from pysnmp.proto.api import v2c

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netmgr.snmp import ber
from netmgr.snmp.types import Tag, VarBind

IF = (1, 3, 6, 1, 2, 1, 2, 2, 1)
COLUMNS = [IF + (c,) for c in (2, 8, 10, 14, 16, 20)] + [(1, 3, 6, 1, 2, 1, 31, 1, 1, 1, c) for c in (6, 10)]
SCALARS = [(1, 3, 6, 1, 2, 1, 1, c, 0) for c in (1, 2, 3, 4, 5, 6)]


def sample_varbinds(n: int) -> list[VarBind]:
    out = [VarBind((1, 3, 6, 1, 2, 1, 1, 3, 0), Tag.TIMETICKS, 123456789)]
    row = 1
    while len(out) < n:
        out += [VarBind(IF + (2, row), Tag.OCTET_STRING, b"wlan%d" % row),
                VarBind(IF + (10, row), Tag.COUNTER32, 3_000_000_000 + row),
                VarBind((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, row), Tag.COUNTER64, 2**40 + row)]
        row += 1
    return out[:n]


def rate(fn, seconds: float) -> float:
    """Microseconds per call, best of three timed batches."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.05:
        fn()
        n += 1
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        k = 0
        while time.process_time() - t0 < seconds / 3:
            for _ in range(n):
                fn()
            k += n
        best = min(best, (time.process_time() - t0) / k * 1e6)
    return best


def py_bulk_request(rid: int) -> bytes:
    pdu = v2c.GetBulkRequestPDU()
    v2c.apiBulkPDU.set_defaults(pdu)
    v2c.apiBulkPDU.set_request_id(pdu, rid)
    v2c.apiBulkPDU.set_non_repeaters(pdu, 0)
    v2c.apiBulkPDU.set_max_repetitions(pdu, 10)
    v2c.apiBulkPDU.set_varbinds(pdu, [(v2c.ObjectIdentifier(o), v2c.null) for o in COLUMNS])
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, b"public")
    v2c.apiMessage.set_pdu(msg, pdu)
    return pencoder.encode(msg)


def py_decode(wire: bytes) -> list:
    msg, _ = pdecoder.decode(wire, asn1Spec=v2c.Message())
    pdu = v2c.apiMessage.get_pdu(msg)
    return [(tuple(o), v) for o, v in v2c.apiPDU.get_varbinds(pdu)]


async def poll_cpu(polls: int) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from support.services import Snmpd  # type: ignore[import-not-found]

    from netmgr.snmp.client import SnmpClient, Target

    agent = Snmpd()  # started by its constructor
    try:
        t = Target("bench", "127.0.0.1", agent.port, community=agent.community, max_repetitions=10)
        async with SnmpClient() as c:
            async def one() -> int:
                vbs = await c.get(t, SCALARS)
                cols = await c.walk_columns(t, COLUMNS, 10)
                return len(vbs) + sum(map(len, cols.values()))

            got = await one()
            t0 = time.process_time()
            w0 = time.perf_counter()
            for _ in range(polls):
                await one()
            cpu = (time.process_time() - t0) / polls
            wall = (time.perf_counter() - w0) / polls
        return {"poll_cpu_ms": round(cpu * 1e3, 3), "poll_wall_ms": round(wall * 1e3, 3),
                "varbinds_per_poll": got}
    finally:
        agent.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--varbinds", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--snmpd", action="store_true", help="also measure CPU per AP poll against snmpd")
    ap.add_argument("--polls", type=int, default=300)
    a = ap.parse_args()

    vbs = sample_varbinds(a.varbinds)
    wire = ber.encode_response(4242, b"public", vbs)
    assert [(v.oid, v.tag, v.value) for v in ber.decode_response(wire).varbinds] == [
        (v.oid, v.tag, v.value) for v in vbs]
    assert ber.encode_request(ber.GETBULK, 7, b"public", COLUMNS, 0, 10) == py_bulk_request(7)
    assert len(py_decode(wire)) == len(vbs)

    res = {
        "bench": "snmp_codec",
        "varbinds": a.varbinds,
        "response_bytes": len(wire),
        "ours_encode_us": rate(lambda: ber.encode_request(ber.GETBULK, 7, b"public", COLUMNS, 0, 10),
                               a.seconds),
        "ours_decode_us": rate(lambda: ber.decode_response(wire), a.seconds),
        "pysnmp_encode_us": rate(lambda: py_bulk_request(7), a.seconds),
        "pysnmp_decode_us": rate(lambda: py_decode(wire), a.seconds),
    }
    for k in list(res):
        if k.endswith("_us"):
            res[k] = round(res[k], 2)
    res["decode_speedup"] = round(res["pysnmp_decode_us"] / res["ours_decode_us"], 1)
    res["encode_speedup"] = round(res["pysnmp_encode_us"] / res["ours_encode_us"], 1)
    if a.snmpd:
        res.update(asyncio.run(poll_cpu(a.polls)))
    print(json.dumps(res))
    print(f"encode GETBULK (8 columns): ours {res['ours_encode_us']} us, pysnmp {res['pysnmp_encode_us']} us "
          f"({res['encode_speedup']}x)", file=sys.stderr)
    print(f"decode Response ({a.varbinds} varbinds, {len(wire)} B): ours {res['ours_decode_us']} us, "
          f"pysnmp {res['pysnmp_decode_us']} us ({res['decode_speedup']}x)", file=sys.stderr)
    if a.snmpd:
        print(f"client vs snmpd, one AP poll (GET 6 scalars + GETBULK walk 8 columns): "
              f"{res['poll_cpu_ms']} ms CPU, {res['poll_wall_ms']} ms wall, "
              f"{res['varbinds_per_poll']} varbinds", file=sys.stderr)


if __name__ == "__main__":
    main()
