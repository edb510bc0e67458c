"""Fuzz the lean decoder: whatever the bytes, only ber.DecodeError escapes, and quickly.

Inputs: random bytes, single-byte mutations / truncations / trailing garbage of a valid
response, and mutations of pysnmp-encoded responses with random varbinds (every tag,
edge values). Whatever still decodes must re-encode to a message pysnmp reads back.
"""

from __future__ import annotations

import gc
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder as pdecoder
from pysnmp.proto.api import v2c
from support.ber import VALID, py_response, varbinds

from netmgr.snmp import ber

FUZZ = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode(data: bytes) -> ber.Response | None:
    try:
        r = ber.decode_response(data)
    except ber.DecodeError as e:
        assert str(e)  # a short reason, never empty
        r = None
    try:
        ber.peek_request_id(data)
    except ber.DecodeError:
        pass
    return r


def decode_or_reject(data: bytes) -> ber.Response | None:
    """Decode; a DecodeError is fine, anything else (IndexError, RecursionError...) fails the test."""
    # Bounded work: a datagram of a few hundred bytes decodes (or fails) in well under 50 ms of
    # CPU (about 20 us in fact). Measured as this thread's CPU time with the garbage collector
    # held off: wall time failed beside a full suite, and a collection of hypothesis's heap
    # took 130 ms of CPU inside one decode.
    gc.disable()
    t0 = time.thread_time()
    try:
        r = _decode(data)
    finally:
        spent = time.thread_time() - t0
        gc.enable()
    assert spent < 0.05
    if r is not None:
        # Whatever decodes must re-encode to a message pysnmp can read back.
        pdecoder.decode(ber.encode_response(r.request_id, r.community, r.varbinds, r.error_status,
                                            r.error_index, r.version), asn1Spec=v2c.Message())
    return r


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes(data):
    decode_or_reject(data)


@FUZZ
@given(body=st.binary(max_size=300))
def test_random_bytes_inside_a_plausible_envelope(body):
    # Reach the varbind decoder often: a valid header, then random content.
    header = bytes.fromhex("020101") + b"\x04\x06public"
    pdu = bytes.fromhex("020101020100020100") + b"\x30" + ber._len(len(body)) + body
    msg = header + b"\xa2" + ber._len(len(pdu)) + pdu
    decode_or_reject(b"\x30" + ber._len(len(msg)) + msg)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pos=st.integers(0, len(VALID) - 1), byte=st.integers(0, 255), cut=st.integers(0, len(VALID)),
       extra=st.binary(max_size=8))
def test_mutated_valid_response(pos, byte, cut, extra):
    mutated = bytearray(VALID)
    mutated[pos] = byte
    for data in (bytes(mutated), VALID[:cut], VALID + extra, bytes(mutated[:cut]) + extra):
        decode_or_reject(data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vbs=varbinds, data=st.data())
def test_mutated_pysnmp_responses(vbs, data):
    wire = bytearray(py_response(1234, b"public", vbs))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = data.draw(st.integers(0, len(wire) - 1)) if wire else 0
        if op == "flip" and wire:
            wire[pos] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del wire[pos:]
        elif op == "insert":
            wire[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        elif wire:
            del wire[pos]
    decode_or_reject(bytes(wire))


def test_deep_nesting_and_huge_lengths_are_rejected_fast():
    # Nesting is never recursed into, and lengths are checked against the buffer first.
    for data in (b"\x30\x80" * 5000, b"\x30\x84\x7f\xff\xff\xff" + b"\x00" * 100,
                 b"\x30\x85\x01\x00\x00\x00\x00", b"\x30\x82\xff\xff" + b"\x30" * 60000,
                 VALID[:-6] + b"\x06\x82\x02\x00" + b"\x81" * 512):
        decode_or_reject(data)
