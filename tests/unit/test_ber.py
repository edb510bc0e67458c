"""The lean BER codec against pysnmp's encoder/decoder, byte for byte, and under fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder as pdecoder
from pyasn1.codec.ber import encoder as pencoder
from pysnmp.proto.api import v2c
from support.ber import VALID, oids, oids_snmp, py_request, py_response, varbinds

from netmgr.snmp import ber
from netmgr.snmp.types import Tag, VarBind


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from([ber.GET, ber.GETNEXT, ber.GETBULK]), rid=st.integers(0, 2**31 - 1),
       community=st.binary(max_size=40), oid_list=st.lists(oids_snmp, min_size=1, max_size=20),
       nr=st.integers(0, 100), mr=st.integers(0, 200))
def test_requests_match_pysnmp_byte_for_byte(kind, rid, community, oid_list, nr, mr):
    if kind != ber.GETBULK:
        nr = mr = 0
    assert ber.encode_request(kind, rid, community, oid_list, nr, mr) == py_request(
        kind, rid, community, oid_list, nr, mr)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(rid=st.integers(0, 2**31 - 1), community=st.binary(max_size=30), vbs=varbinds,
       status=st.integers(0, 18), index=st.integers(0, 40))
def test_decodes_pysnmp_responses(rid, community, vbs, status, index):
    wire = py_response(rid, community, vbs, status, index)
    r = ber.decode_response(wire)
    assert (r.request_id, r.community, r.error_status, r.error_index) == (rid, community, status, index)
    assert [(v.oid, v.tag, v.value) for v in r.varbinds] == [(o, t, v) for o, t, v in vbs]
    assert ber.peek_request_id(wire) == rid
    # Our own response encoder (the simulated agents) agrees with pysnmp's bytes, except that
    # pyasn1 encodes -2**(8k-1) with a redundant 0xff octet (-128 as ff80); ours is minimal
    # (X.690 8.3.2), so there compare what pysnmp's decoder reads back instead.
    ours = ber.encode_response(rid, community, [VarBind(o, t, v) for o, t, v in vbs], status, index)
    if any(t == Tag.INTEGER and v < 0 and (-v) & (-v - 1) == 0 and (-v).bit_length() % 8 == 0
           for _, t, v in vbs):
        msg, rest = pdecoder.decode(ours, asn1Spec=v2c.Message())
        assert not rest and ber.decode_response(pencoder.encode(msg)).varbinds == r.varbinds
    else:
        assert ours == wire


@pytest.mark.parametrize("value,wire", [(-128, "020180"), (-32768, "02028000"), (-(2**31), "020480000000"),
                                        (128, "02020080"), (-129, "0202ff7f"), (0, "020100")])
def test_integers_are_minimal_and_pyasn1_padding_is_read(value, wire):
    assert ber._int(value).hex() == wire
    vb = VarBind((1, 3, 6, 1), Tag.INTEGER, value)
    assert ber.decode_response(py_response(1, b"c", [(vb.oid, vb.tag, value)])).varbinds == [vb]


@given(oid=oids)
def test_oid_round_trip(oid):
    enc = ber.encode_oid(oid)
    assert enc == pencoder.encode(v2c.ObjectIdentifier(oid))
    n, start = ber._read_len(enc, 1, len(enc))
    assert ber.decode_oid_body(enc[start:start + n]) == oid


@pytest.mark.parametrize("bad,reason", [
    (b"\x30\x80" + VALID[2:], "indefinite"),
    (VALID[:-1], "length"),
    (VALID + b"\x00", "trailing"),
    (VALID.replace(b"\xa2", b"\xa8", 1), "Report"),
    (b"\x30\x84\xff\xff\xff\xff", "length"),
])
def test_named_malformations(bad, reason):
    with pytest.raises(ber.DecodeError, match=reason):
        ber.decode_response(bad)


def test_negative_unsigned_quirk_is_masked():
    # Some AP firmwares encode Gauge32 as a signed INTEGER body (0xff.. for large values).
    wire = bytearray(ber.encode_response(1, b"c", [VarBind((1, 3, 6, 1), Tag.GAUGE32, 5)]))
    i = wire.rfind(b"\x42\x01\x05")
    wire[i:i + 3] = b"\x42\x01\xfb"  # -5 as signed
    assert ber.decode_response(bytes(wire)).varbinds[0].value == 2**32 - 5
