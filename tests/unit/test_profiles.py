"""Every vendor profile against the strict schema, its cross-references, and its recording.

Like zigbee-herdsman-converters' test/index.test.ts: one test loads every
definition; a second evaluates every recording in devices/sim with the profile
it must match (devices/sim/expected.yaml) and checks the client count.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from netmgr.errors import ConfigError
from netmgr.paths import devices_dir
from netmgr.snmp import evaluate, snmprec
from netmgr.snmp.discover import identify
from netmgr.snmp.profiles import load_profiles

SIM = devices_dir() / "sim"
EXPECTED = yaml.safe_load((SIM / "expected.yaml").read_text())
PROFILES = load_profiles()


def test_every_profile_loads_and_cross_references_hold():
    assert "generic" in PROFILES.by_name
    for p in PROFILES:
        assert p.chain[0] == "generic" or p.name == "generic"
        scalars, columns = p.fetch_plan()
        assert scalars and columns
        assert len(set(columns)) == len(columns)


def test_every_oid_line_has_its_mib_name():
    for path in (devices_dir() / "ap").glob("*.yaml"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if ("oid:" in line and "1.3.6" in line) or "oid: 1.2.840" in line:
                assert "::" in line.split("#", 1)[-1] and "#" in line, f"{path.name}:{n}: OID without its MIB name"


def test_every_profile_has_a_recording():
    matched = {v["profile"] for v in EXPECTED.values()}
    assert set(PROFILES.by_name) <= matched, f"profiles without a recording: {set(PROFILES.by_name) - matched}"
    assert {p.stem for p in SIM.glob("*.snmprec")} == set(EXPECTED)


def evaluate_recording(path: Path, profiles=PROFILES):
    agent = snmprec.Agent(snmprec.load(path))

    async def get(oids):
        return [agent.get(o) for o in oids]

    profile, _, _ = asyncio.run(identify(get, profiles))
    scalars, columns = profile.fetch_plan()
    return evaluate.evaluate(profile, {o: agent.get(o) for o in scalars}, agent.walk(columns))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recording_evaluates_as_expected(name):
    want = EXPECTED[name]
    r = evaluate_recording(SIM / f"{name}.snmprec")
    assert r.profile == want["profile"]
    assert r.clients_total == want["clients_total"]
    assert len(r.interfaces) == want["interfaces"]
    if "clients_by_ssid" in want:
        assert r.clients_by_ssid == want["clients_by_ssid"]
    if "clients_by_radio" in want:
        assert r.clients_by_radio == want["clients_by_radio"]
    assert r.sys_name and r.uptime_ticks is not None


def test_bad_profiles_are_refused_with_file_and_path(tmp_path):
    (tmp_path / "generic.yaml").write_text((devices_dir() / "ap" / "generic.yaml").read_text())
    (tmp_path / "broken.yaml").write_text(
        "name: broken\nvendor: X\nfamily: Y\nmatch: {sys_object_id: [1.3.6.1.4.1.9999]}\n"
        "tables:\n  - name: t\n    index: i\n    columns:\n      c: {oid: 1.3.6.1.4.1.9999.1.1, type: gauge}\n"
        "clients:\n  - {table: t, sum: nope}\n  - {table: missing, sum: c}\n"
        "scalars:\n  - {name: s, oid: 1.3.6.1.4.1.9999.2.0, type: gaugeish}\n")
    (tmp_path / "typo.yaml").write_text("name: typo\nvendor: X\nfamily: Y\nmatchh: {}\n")
    with pytest.raises(ConfigError) as ei:
        load_profiles(tmp_path)
    text = "\n".join(ei.value.problems)
    assert "broken.yaml: scalars.0.type:" in text
    assert "typo.yaml: matchh: Extra inputs are not permitted" in text


def test_cross_reference_errors(tmp_path):
    (tmp_path / "generic.yaml").write_text((devices_dir() / "ap" / "generic.yaml").read_text())
    (tmp_path / "refs.yaml").write_text(
        "name: refs\nvendor: X\nfamily: Y\nmatch: {sys_object_id: [1.3.6.1.4.1.9999]}\n"
        "tables:\n  - name: t\n    index: i\n    columns:\n      c: {oid: 1.3.6.1.4.1.9999.1.1, type: gauge}\n"
        "clients:\n  - {table: t, sum: nope}\n  - {table: missing, sum: c}\n  - {table: t, sum: c, ssid: if.nope}\n")
    with pytest.raises(ConfigError) as ei:
        load_profiles(tmp_path)
    assert ei.value.problems == [
        "refs.yaml: clients[0].sum: 'nope' is not a column of table 't'",
        "refs.yaml: clients[1]: unknown table 'missing'",
        "refs.yaml: clients[2].ssid: lookup 'if.nope' names no table.column",
    ]


def test_unknown_agent_falls_back_to_generic():
    assert PROFILES.match("1.3.6.1.4.1.99999.1", "some box").name == "generic"


@pytest.mark.parametrize("path", sorted(SIM.glob("*.snmprec")), ids=lambda p: p.stem)
def test_recordings_parse_sorted_without_duplicates(path):
    """snmpsim answers GETNEXT by searching the file: it must be in OID order, one line per OID."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    vbs = [snmprec.parse_line(ln, f"{path.name}:{n}") for n, ln in enumerate(lines, 1)]
    oids = [vb.oid for vb in vbs]
    assert oids == sorted(oids), f"{path.name} is not sorted by OID"
    assert len(set(oids)) == len(oids), f"{path.name} has duplicate OIDs"
    assert (1, 3, 6, 1, 2, 1, 1, 2, 0) in oids and (1, 3, 6, 1, 2, 1, 1, 3, 0) in oids


def test_snmprec_types():
    vb = snmprec.parse_line("1.3.6.1.2.1.2.2.1.6.1|4x|000456ab43ba", "t")
    assert vb.value == bytes.fromhex("000456ab43ba")
    assert snmprec.parse_line("1.3.6.1.2.1.4.20.1.1.1|64|10.1.2.3", "t").value == b"\n\x01\x02\x03"
    assert snmprec.parse_line("1.3.6.1.2.1.4.20.1.1.1|64x|0a010203", "t").value == b"\n\x01\x02\x03"
    assert snmprec.parse_line("1.3.6.1.2.1.31.1.1.1.6.1|70|18446744073709551615", "t").value == 2**64 - 1
    assert snmprec.parse_line("1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.14988.1", "t").value == (1, 3, 6, 1, 4, 1, 14988, 1)
    for bad in ("1.3.6|2", "1.3.6|99|1", "1.3.x|2|1", "1.3.6|2|abc", "1.3.6|64|1.2.3"):
        with pytest.raises(snmprec.RecordingError, match=r"^t: "):
            snmprec.parse_line(bad, "t")


def test_label_only_source_needs_a_label(tmp_path):
    (tmp_path / "generic.yaml").write_text((devices_dir() / "ap" / "generic.yaml").read_text())
    (tmp_path / "lab.yaml").write_text("name: lab\nvendor: X\nfamily: Y\n"
                                       "scalars:\n  - {name: n, oid: 1.3.6.1.4.1.9.9.0, type: gauge}\n"
                                       "clients:\n  - {scalar: n, total: false}\n")
    with pytest.raises(ConfigError) as ei:
        load_profiles(tmp_path)
    assert ei.value.problems == ["lab.yaml: clients.0: 'total: false' only makes sense with an 'ssid' or 'radio' label"]


@pytest.mark.parametrize(("radios", "message"), [
    ('{from_extend: true, noise: "noise-(wlan0)"}', "radios: noise: the regex needs a (?P<radio>...) group"),
    ("{from_extend: true, table: t}", "radios: with from_extend, radios are named by the (?P<radio>...) groups"),
    ("{channel: c}", "radios: radios needs 'table' and 'name' (or from_extend: true)"),
])
def test_radio_shapes_are_checked(tmp_path, radios, message):
    (tmp_path / "generic.yaml").write_text((devices_dir() / "ap" / "generic.yaml").read_text())
    (tmp_path / "r.yaml").write_text(f"name: r\nvendor: X\nfamily: Y\nradios: {radios}\n")
    with pytest.raises(ConfigError) as ei:
        load_profiles(tmp_path)
    assert ei.value.problems[0].startswith(f"r.yaml: {message}")
