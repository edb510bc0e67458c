"""The evaluator: varbinds in, system/interfaces/radios/clients out; half-answering agents never crash it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netmgr.paths import devices_dir
from netmgr.snmp import evaluate, snmprec
from netmgr.snmp.profiles import Column, load_profiles
from netmgr.snmp.types import Tag, VarBind, parse_oid

TEST_PROFILE = """
name: testap
vendor: Test
family: Test AP
match: {sys_object_id: [1.3.6.1.4.1.99999.1]}
scalars:
  - {name: total, oid: 1.3.6.1.4.1.99999.2.1.0, type: gauge}          # TEST-MIB::total.0
  - {name: mem_total, oid: 1.3.6.1.4.1.99999.2.2.0, type: gauge}      # TEST-MIB::memTotal.0
  - {name: mem_free, oid: 1.3.6.1.4.1.99999.2.3.0, type: gauge}       # TEST-MIB::memFree.0
  - {name: idle, oid: 1.3.6.1.4.1.99999.2.4.0, type: gauge}           # TEST-MIB::cpuIdle.0
tables:
  - name: vap
    index: vapIndex
    columns:
      ssid: {oid: 1.3.6.1.4.1.99999.3.1.2, type: string}              # TEST-MIB::vapSsid
      stations: {oid: 1.3.6.1.4.1.99999.3.1.3, type: gauge}           # TEST-MIB::vapStations
      radio: {oid: 1.3.6.1.4.1.99999.3.1.4, type: string}             # TEST-MIB::vapRadio
  - name: reg
    index: client MAC . ifIndex
    columns:
      signal: {oid: 1.3.6.1.4.1.99999.4.1.2, type: integer}           # TEST-MIB::regSignal
clients:
  - {table: vap, sum: stations, ssid: ssid, radio: radio, total: false}
  - {scalar: total}
  - {table: reg, count: signal, radio: "if.name@-1:", where: {signal: "^-"}, total: false}
cpu: {scalar: idle, idle: true}
memory: {total: mem_total, free: mem_free, unit_bytes: 1024}
radios: {table: vap, name: radio, clients: stations}
"""


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    d: Path = tmp_path_factory.mktemp("ap")
    (d / "generic.yaml").write_text((devices_dir() / "ap" / "generic.yaml").read_text())
    (d / "testap.yaml").write_text(TEST_PROFILE)
    return load_profiles(d)["testap"]


def rec(text: str) -> snmprec.Agent:
    return snmprec.Agent([snmprec.parse_line(line.strip(), f"line {n}")
                          for n, line in enumerate(text.strip().splitlines(), 1)])


def run(profile, agent: snmprec.Agent) -> evaluate.PollResult:
    scalars, columns = profile.fetch_plan()
    return evaluate.evaluate(profile, {o: agent.get(o) for o in scalars}, agent.walk(sorted(columns)))


FULL = """
1.3.6.1.2.1.1.1.0|4|Test AP 1.0
1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.99999.1.7
1.3.6.1.2.1.1.3.0|67|123456
1.3.6.1.2.1.1.5.0|4x|61702d746573740000
1.3.6.1.2.1.2.2.1.2.1|4|eth0
1.3.6.1.2.1.2.2.1.2.5|4|wlan0
1.3.6.1.2.1.2.2.1.5.1|66|100000000
1.3.6.1.2.1.2.2.1.5.5|66|4294967295
1.3.6.1.2.1.2.2.1.8.1|2|1
1.3.6.1.2.1.2.2.1.10.1|65|1000
1.3.6.1.2.1.2.2.1.10.5|65|2000
1.3.6.1.2.1.2.2.1.16.1|65|3000
1.3.6.1.2.1.2.2.1.16.5|65|4000
1.3.6.1.2.1.31.1.1.1.1.5|4|wlan0
1.3.6.1.2.1.31.1.1.1.6.5|70|99999999999
1.3.6.1.2.1.31.1.1.1.10.5|70|88888888888
1.3.6.1.2.1.31.1.1.1.15.5|66|10000
1.3.6.1.4.1.99999.2.1.0|66|7
1.3.6.1.4.1.99999.2.2.0|66|65536
1.3.6.1.4.1.99999.2.3.0|66|16384
1.3.6.1.4.1.99999.2.4.0|66|75
1.3.6.1.4.1.99999.3.1.2.1|4|Free_WiFi
1.3.6.1.4.1.99999.3.1.2.2|4|Staff
1.3.6.1.4.1.99999.3.1.2.3|4|Free_WiFi
1.3.6.1.4.1.99999.3.1.3.1|66|3
1.3.6.1.4.1.99999.3.1.3.2|66|1
1.3.6.1.4.1.99999.3.1.3.3|66|3
1.3.6.1.4.1.99999.3.1.4.1|4|ng
1.3.6.1.4.1.99999.3.1.4.2|4|ng
1.3.6.1.4.1.99999.3.1.4.3|4|na
1.3.6.1.4.1.99999.4.1.2.1.2.3.4.5.6.5|2|-61
1.3.6.1.4.1.99999.4.1.2.1.2.3.4.5.7.5|2|-70
1.3.6.1.4.1.99999.4.1.2.1.2.3.4.5.8.5|2|0
"""


def test_full_answer(profile):
    r = run(profile, rec(FULL))
    assert (r.profile, r.sys_name, r.sys_object_id, r.uptime_ticks) == ("testap", "ap-test", "1.3.6.1.4.1.99999.1.7",
                                                                         123456)
    eth0, wlan0 = r.interfaces
    # eth0 has no ifXTable row: ifDescr names it, Counter32 octets, ifSpeed.
    assert (eth0.index, eth0.name, eth0.counter_bits, eth0.in_octets, eth0.speed_bps) == (1, "eth0", 32, 1000, 100e6)
    # wlan0 has HC counters and ifHighSpeed (ifSpeed saturated at 2^32-1).
    assert (wlan0.counter_bits, wlan0.in_octets, wlan0.out_octets, wlan0.speed_bps) == (
        64, 99999999999, 88888888888, 10_000_000_000)
    assert r.clients_total == 7  # the scalar; the VAP and registration sources only label
    assert r.clients_by_ssid == {"Free_WiFi": 6, "Staff": 1}
    # VAPs give ng 4 and na 3; the registration table adds 2 (rows with a negative signal) on wlan0.
    assert r.clients_by_radio == {"ng": 4, "na": 3, "wlan0": 2}
    assert [(x.name, x.clients) for x in r.radios] == [("ng", 3), ("ng", 1), ("na", 3)]
    assert r.cpu_pct == 25.0
    assert (r.mem_total_bytes, r.mem_used_bytes) == (64 * 2**20, 48 * 2**20)
    assert r.missing == ["sys_contact", "sys_location"]  # not in the recording: reported, not fatal
    assert r.to_dict()["interfaces"][1]["counter_bits"] == 64


def test_agent_with_nothing_but_the_system_group(profile):
    r = run(profile, rec("1.3.6.1.2.1.1.5.0|4|bare\n1.3.6.1.2.1.1.3.0|67|5"))
    assert (r.sys_name, r.uptime_ticks, r.interfaces, r.radios) == ("bare", 5, [], [])
    assert r.clients_total is None  # unknown, not zero
    assert r.clients_by_radio == {}  # an empty registration table labels nothing
    assert r.cpu_pct is None and r.mem_total_bytes is None
    assert "total" in r.missing and "sys_descr" in r.missing


def test_exceptions_nulls_and_wrong_types_yield_none(profile):
    scalars, _ = profile.fetch_plan()
    vbs = {o: VarBind(o, Tag.NO_SUCH_OBJECT, None) for o in scalars}
    total = parse_oid("1.3.6.1.4.1.99999.2.1.0")
    vbs[total] = VarBind(total, Tag.OCTET_STRING, b"n/a")  # an agent that sends text for a gauge
    mem = parse_oid("1.3.6.1.4.1.99999.2.2.0")
    vbs[mem] = VarBind(mem, Tag.NULL, None)
    col = parse_oid("1.3.6.1.4.1.99999.3.1.3")
    columns = {col: [VarBind(col + (1,), Tag.NO_SUCH_INSTANCE, None), VarBind(col + (2,), Tag.GAUGE32, 4),
                     VarBind((9, 9, 9), Tag.GAUGE32, 100)]}  # a stray OID outside the column is ignored
    r = evaluate.evaluate(profile, vbs, columns)
    assert r.clients_total is None
    assert r.mem_total_bytes is None and r.cpu_pct is None
    assert r.clients_by_radio == {}  # the VAP row has stations but no radio label


@pytest.mark.parametrize(("vb", "typ", "want"), [
    (VarBind((1,), Tag.OCTET_STRING, b"name\x00\x00junk"), "string", "name"),
    (VarBind((1,), Tag.OCTET_STRING, b"\xff\xfe"), "string", "\ufffd\ufffd"),
    (VarBind((1,), Tag.OCTET_STRING, b" 36E"), "integer", 36),
    (VarBind((1,), Tag.OCTET_STRING, b"-90 dBm"), "integer", -90),
    (VarBind((1,), Tag.OCTET_STRING, b"none"), "gauge", None),
    (VarBind((1,), Tag.OBJECT_IDENTIFIER, (1, 3, 6)), "oid", "1.3.6"),
    (VarBind((1,), Tag.INTEGER, 5), "oid", None),
    (VarBind((1,), Tag.IP_ADDRESS, b"\n\x00\x00\x01"), "ipaddress", "10.0.0.1"),
    (VarBind((1,), Tag.COUNTER64, 2**64 - 1), "counter64", 2**64 - 1),
    (VarBind((1,), Tag.END_OF_MIB_VIEW, None), "gauge", None),
    (None, "string", None),
])
def test_convert(vb, typ, want):
    assert evaluate.convert(vb, Column(oid="1.3.6.1", type=typ)) == want


def test_extend_names():
    assert evaluate.decode_extend_name((5, 119, 108, 97, 110, 48)) == "wlan0"
    assert evaluate.decode_extend_name((4, 119, 108)) is None  # length does not match
    assert evaluate.decode_extend_name(()) is None
    assert evaluate.decode_extend_name((1, 300)) is None  # not a byte


def test_fetch_plan_is_one_get_and_one_walk():
    for p in load_profiles():
        scalars, columns = p.fetch_plan()
        assert len(set(scalars)) == len(scalars), p.name
        assert len(set(columns)) == len(columns), p.name
        assert parse_oid("1.3.6.1.2.1.1.3.0") in scalars  # sysUpTime: rates and reboot detection need it
        if p.match.probe:
            assert parse_oid(p.match.probe.oid) in scalars
        # No column is a prefix of another: one multi-column walk cannot mix their rows.
        for a in columns:
            assert not any(a != b and b[: len(a)] == a for b in columns), (p.name, a)


def test_match_prefers_longest_prefix_priority_and_probes():
    profiles = load_profiles()
    assert profiles.match("1.3.6.1.4.1.14988.1", "RouterOS wAP").name == "routeros"
    assert profiles.match("1.3.6.1.4.1.8072.3.2.10", "Linux box").name == "generic"  # sysDescr regex fails
    assert profiles.match("1.3.6.1.4.1.8072.3.2.10", "Linux OpenWrt 23.05").name == "openwrt"
    zd = "1.3.6.1.4.1.25053.3.1.5.15"
    assert profiles.match(zd, "", {"1.3.6.1.4.1.25053.1.2.1.1.1.1.9.0": "zd1200"}).name == "ruckus-zd"
    assert profiles.match(zd, "", {"1.3.6.1.4.1.25053.1.15.1.1.1.1.9.0": "R510"}).name == "ruckus-unleashed"
    assert profiles.match(zd, "").name == "generic"  # neither probe answered
    assert profiles.match("1.3.6.1.4.1.1498", "").name == "generic"  # a prefix of a prefix is no match


def test_table_samples_label_rows_through_lookups():
    profiles = load_profiles()
    agent = snmprec.Agent(snmprec.load(devices_dir() / "sim" / "routeros.snmprec"))
    p = profiles["routeros"]
    _, columns = p.fetch_plan()
    samples = evaluate.table_samples(p, agent.walk(columns))
    strength = [x for x in samples if x.metric == "reg_strength"]
    # One registration row per client: as many as mtxrWlApClientCount says, per interface.
    per_if: dict[str, int] = {}
    for x in strength:
        assert x.unit == "dBm" and x.value < 0 and len(x.labels["index"].split(".")) == 7
        per_if[x.labels["if_name"]] = per_if.get(x.labels["if_name"], 0) + 1
    assert per_if == {"wlan1": 5, "wlan2": 3, "wlan3": 1}
    wlap = {x.labels["if_name"]: x for x in samples if x.metric == "wlap_clients"}
    assert wlap["wlan1"].labels["ssid"] == "WiFi_Mien_Phi_BinhPhuoc" and wlap["wlan1"].value == 5
    assert not [x for x in samples if x.metric in ("wlap_ssid", "if_descr")]  # strings are labels, not samples


def test_interfaces_can_come_from_another_table(tmp_path):
    (tmp_path / "generic.yaml").write_text((devices_dir() / "ap" / "generic.yaml").read_text())
    (tmp_path / "ports.yaml").write_text("""
name: ports
vendor: X
family: Y
match: {sys_object_id: [1.3.6.1.4.1.99999]}
tables:
  - name: port
    index: portIndex
    columns:
      label: {oid: 1.3.6.1.4.1.99999.5.1.2, type: string}                 # TEST-MIB::portLabel
      rx: {oid: 1.3.6.1.4.1.99999.5.1.3, type: counter64, unit: bytes}    # TEST-MIB::portRxBytes
      tx: {oid: 1.3.6.1.4.1.99999.5.1.4, type: counter64, unit: bytes}    # TEST-MIB::portTxBytes
interfaces: {table: port, name: label, hc_in_octets: rx, hc_out_octets: tx}
""")
    p = load_profiles(tmp_path)["ports"]
    agent = rec("""
1.3.6.1.4.1.99999.5.1.2.7|4|lan
1.3.6.1.4.1.99999.5.1.3.7|70|10
1.3.6.1.4.1.99999.5.1.4.7|70|20
""")
    r = run(p, agent)
    assert [(i.index, i.name, i.in_octets, i.out_octets, i.counter_bits) for i in r.interfaces] == [
        (7, "lan", 10, 20, 64)]


def test_interfaces_and_labels_are_cross_checked(tmp_path):
    from netmgr.errors import ConfigError

    (tmp_path / "generic.yaml").write_text((devices_dir() / "ap" / "generic.yaml").read_text())
    (tmp_path / "bad.yaml").write_text("""
name: bad
vendor: X
family: Y
tables:
  - name: t
    index: i
    labels: [nope, "if.name@x"]
    columns:
      c: {oid: 1.3.6.1.4.1.99999.1.1, type: gauge}   # TEST-MIB::c
interfaces: {table: t, name: missing}
""")
    with pytest.raises(ConfigError) as ei:
        load_profiles(tmp_path)
    assert ei.value.problems == [
        "bad.yaml: interfaces.name: 'missing' is not a column of table 't'",
        "bad.yaml: tables.t.labels[0]: 'nope' is not a column of table 't'",
        "bad.yaml: tables.t.labels[1]: 'if.name@x': after '@' comes an index slice like -1: or :6",
    ]


def test_openwrt_radios_come_from_extend_outputs():
    p = load_profiles()["openwrt"]
    r = run(p, snmprec.Agent(snmprec.load(devices_dir() / "sim" / "openwrt.snmprec")))
    assert [(x.name, x.channel, x.noise_dbm, x.clients) for x in r.radios] == [
        ("wlan0", 2462, -95, 4), ("wlan1", 5200, -89, 2)]
    assert r.clients_total == 6  # the all-radios line clients-wlan is not added again


VALUES = st.one_of(
    st.tuples(st.sampled_from([Tag.INTEGER, Tag.COUNTER32, Tag.GAUGE32, Tag.TIMETICKS, Tag.COUNTER64]),
              st.integers(-(2**63), 2**64)),
    st.tuples(st.sampled_from([Tag.OCTET_STRING, Tag.IP_ADDRESS, Tag.OPAQUE]), st.binary(max_size=12)),
    st.tuples(st.just(Tag.OBJECT_IDENTIFIER), st.lists(st.integers(0, 2**32), max_size=6).map(tuple)),
    st.tuples(st.sampled_from([Tag.NULL, Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE, Tag.END_OF_MIB_VIEW]),
              st.none()),
)
ALL_PROFILES = load_profiles()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(ALL_PROFILES.by_name)), data=st.data())
def test_any_agent_answer_evaluates_without_crashing(name, data):
    """Whatever types and values an agent sends for a profile's OIDs, evaluate() returns a result."""
    p = ALL_PROFILES[name]
    scalars, columns = p.fetch_plan()
    svb = {}
    for o in scalars:
        tag, v = data.draw(VALUES)
        svb[o] = VarBind(o, tag, v)
    cvb = {}
    for c in columns:
        rows = data.draw(st.lists(st.tuples(st.lists(st.integers(0, 300), min_size=1, max_size=8).map(tuple),
                                            VALUES), max_size=4))
        cvb[c] = [VarBind(c + idx, tag, v) for idx, (tag, v) in rows]
    r = evaluate.evaluate(p, svb, cvb)
    assert r.profile == name
    assert r.clients_total is None or isinstance(r.clients_total, int)
    evaluate.table_samples(p, cvb)
    r.to_dict()
