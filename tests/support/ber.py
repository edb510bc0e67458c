"""pysnmp as the oracle for the lean BER codec (netmgr.snmp.ber): requests and responses
encoded by pysnmp, hypothesis strategies for OIDs and typed values, and one valid response
(``VALID``) for the malformation and fuzz tests."""

from __future__ import annotations

from hypothesis import strategies as st
from pyasn1.codec.ber import encoder as pencoder
from pysnmp.proto import rfc1905
from pysnmp.proto.api import v2c

from netmgr.snmp import ber
from netmgr.snmp.types import Tag

arcs = st.integers(min_value=0, max_value=2**32 - 1)
oids = st.builds(lambda a, b, rest: (a, b, *rest), st.integers(0, 1), st.integers(0, 39),
                 st.lists(arcs, min_size=0, max_size=20)) | st.builds(
    lambda b, rest: (2, b, *rest), st.integers(0, 2**20), st.lists(arcs, max_size=10))
oids_snmp = st.builds(lambda rest: (1, 3, 6, 1, *rest), st.lists(arcs, min_size=1, max_size=30))


def py_request(kind, rid, community, oid_list, nr=0, mr=0):
    pdu = {ber.GET: v2c.GetRequestPDU, ber.GETNEXT: v2c.GetNextRequestPDU,
           ber.GETBULK: v2c.GetBulkRequestPDU}[kind]()
    api = v2c.apiBulkPDU if kind == ber.GETBULK else v2c.apiPDU
    api.set_defaults(pdu)
    api.set_request_id(pdu, rid)
    if kind == ber.GETBULK:
        api.set_non_repeaters(pdu, nr)
        api.set_max_repetitions(pdu, mr)
    api.set_varbinds(pdu, [(v2c.ObjectIdentifier(o), v2c.null) for o in oid_list])
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, community)
    v2c.apiMessage.set_pdu(msg, pdu)
    return pencoder.encode(msg)


def value_strategy():
    return st.one_of(
        st.tuples(st.just(Tag.INTEGER), st.integers(-2**31, 2**31 - 1)),
        st.tuples(st.just(Tag.OCTET_STRING), st.binary(max_size=300)),
        st.tuples(st.just(Tag.OBJECT_IDENTIFIER), oids_snmp),
        st.tuples(st.just(Tag.IP_ADDRESS), st.binary(min_size=4, max_size=4)),
        st.tuples(st.sampled_from([Tag.COUNTER32, Tag.GAUGE32, Tag.TIMETICKS]),
                  st.integers(0, 2**32 - 1) | st.sampled_from([0, 2**31 - 1, 2**31, 2**32 - 1])),
        st.tuples(st.just(Tag.COUNTER64), st.integers(0, 2**64 - 1) | st.sampled_from([2**63, 2**64 - 1])),
        st.tuples(st.sampled_from([Tag.NULL, Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE,
                                   Tag.END_OF_MIB_VIEW]), st.none()),
    )


PY_VALUE = {
    Tag.INTEGER: v2c.Integer, Tag.OCTET_STRING: v2c.OctetString, Tag.OBJECT_IDENTIFIER: v2c.ObjectIdentifier,
    Tag.IP_ADDRESS: v2c.IpAddress, Tag.COUNTER32: v2c.Counter32, Tag.GAUGE32: v2c.Gauge32,
    Tag.TIMETICKS: v2c.TimeTicks, Tag.COUNTER64: v2c.Counter64,
}


def py_value(tag, value):
    if tag == Tag.NULL:
        return v2c.null
    if tag == Tag.NO_SUCH_OBJECT:
        return rfc1905.noSuchObject
    if tag == Tag.NO_SUCH_INSTANCE:
        return rfc1905.noSuchInstance
    if tag == Tag.END_OF_MIB_VIEW:
        return rfc1905.endOfMibView
    if tag == Tag.IP_ADDRESS:
        return v2c.IpAddress(value)
    return PY_VALUE[tag](value)


def py_response(rid, community, vbs, status=0, index=0):
    pdu = v2c.ResponsePDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, rid)
    v2c.apiPDU.set_error_status(pdu, status)
    v2c.apiPDU.set_error_index(pdu, index)
    v2c.apiPDU.set_varbinds(pdu, [(v2c.ObjectIdentifier(o), py_value(t, v)) for o, t, v in vbs])
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, community)
    v2c.apiMessage.set_pdu(msg, pdu)
    return pencoder.encode(msg)


varbinds = st.lists(st.tuples(oids_snmp, value_strategy()).map(lambda x: (x[0], *x[1])), max_size=40)


VALID = py_response(77, b"public", [((1, 3, 6, 1, 2, 1, 1, 3, 0), Tag.TIMETICKS, 12345),
                                    ((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1), Tag.COUNTER32, 2**32 - 1),
                                    ((1, 3, 6, 1, 2, 1, 1, 5, 0), Tag.OCTET_STRING, b"ap")])
