"""The speaker protocol's parsers: they agree with the JSON Schemas in netmgr/radio/schemas/
(what docs/protocol.md publishes to firmware teams) and never raise anything but BadMessage."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netmgr.radio import protocol as p

SCHEMAS = Path(p.__file__).parent / "schemas"
PARSERS = {"status": p.parse_status, "telemetry": p.parse_telemetry, "reply": p.parse_reply,
           "command": p.parse_command, "schedule": p.parse_schedule}


def validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def agrees(name: str, doc: object) -> None:
    """The parser accepts ``doc`` exactly when the schema does (the parser may be stricter
    only where the schema cannot say it: documented exceptions below)."""
    payload = json.dumps(doc).encode()
    schema_ok = validator(name).is_valid(doc)
    try:
        PARSERS[name](payload)
        parser_ok = True
    except p.BadMessage:
        parser_ok = False
    if name == "schedule" and schema_ok and not parser_ok:
        items = doc.get("items") or []  # type: ignore[union-attr]
        assert any(i["end"] <= i["start"] for i in items), doc  # end after start: parser only
        return
    if name == "command" and schema_ok and not parser_ok:
        # id/method/params rules the schema states with if/then; both must agree on the rest
        raise AssertionError(f"schema accepts, parser refuses: {doc}")
    assert schema_ok == parser_ok, f"{name}: schema says {schema_ok}, parser says {parser_ok}: {doc}"


GOOD = {
    "status": [{"state": "online", "session": 1764380000123, "ts": 1764380000.1, "fw": "2.1.0",
                "model": "VN-SPK-40"}, {"state": "offline", "session": 3}],
    "telemetry": [{"ts": 1764380000, "session": 4, "rssi_dbm": -71.5, "volume": 60,
                   "playing": {"id": "c18f-1", "priority": "normal"}, "temperature_c": 41.5,
                   "voltage_v": 12.1, "uptime_s": 3600, "net": "4g", "fw": "2.1.0", "schedule_version": 17},
                  {"ts": 1}, {"ts": 1, "playing": None, "x_vendor_battery": 88}],
    "reply": [{"id": "c18f-1", "status": "accepted", "ts": 1.5},
              {"id": "c18f-1", "status": "error", "error": "busy: playing emergency c1"},
              {"id": "schedule", "status": "done", "data": {"version": 3}}],
    "command": [{"id": "c1", "method": "play", "params": {"url": "https://x/a.mp3", "volume": 80,
                                                          "duration_s": 60, "title": "Bản tin"},
                 "issued": 1, "expires": 2, "priority": "emergency"},
                {"id": "c2", "method": "ping", "issued": 1, "expires": 2},
                {"id": "c3", "method": "volume", "params": {"level": 0}, "issued": 1, "expires": 2}],
    "schedule": [{"version": 3, "issued": 1, "zones": ["a/b/c"], "items": [
        {"id": "o-1", "start": 10, "end": 20, "url": "http://x/a.mp3", "volume": None,
         "priority": "normal", "title": ""}]}],
}
BAD = {
    "status": [{"state": "online"}, {"state": "asleep", "session": 1}, {"state": "online", "session": -1},
               {"state": "online", "session": 1, "sesion": 2}, {"state": "online", "session": True}],
    "telemetry": [{}, {"ts": "now"}, {"ts": 1, "volume": 101}, {"ts": 1, "rssi_dbm": 5},
                  {"ts": 1, "playing": "c1"}, {"ts": 1, "net": "5g"}, {"ts": 1, "rsi_dbm": -50},
                  {"ts": 1, "playing": {"id": "c1", "extra": 1}}],
    "reply": [{"id": "c1"}, {"id": "c1", "status": "error"}, {"id": "has space", "status": "done"},
              {"id": "c1", "status": "finished"}, {"id": "c1", "status": "done", "data": [1]}],
    "command": [{"id": "c1", "method": "dance", "issued": 1, "expires": 2},
                {"id": "c1", "method": "play", "params": {"url": "rtsp://x"}, "issued": 1, "expires": 2},
                {"id": "c1", "method": "play", "issued": 1, "expires": 2},
                {"id": "c1", "method": "volume", "params": {"level": 200}, "issued": 1, "expires": 2},
                {"id": "c1", "method": "ping", "params": {"x": 1}, "issued": 1, "expires": 2}],
    "schedule": [{"version": 1}, {"version": 1, "issued": 1, "items": [{"id": "a"}]}],
}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_examples_agree_with_the_schema(name: str) -> None:
    for doc in GOOD[name]:
        assert validator(name).is_valid(doc), doc
        PARSERS[name](json.dumps(doc).encode())
    for doc in BAD[name]:
        agrees(name, doc)
        with pytest.raises(p.BadMessage):
            PARSERS[name](json.dumps(doc).encode())


def test_messages_name_the_field() -> None:
    with pytest.raises(p.BadMessage, match=r"volume: 101 is outside 0\.\.100"):
        p.parse_telemetry(b'{"ts": 1, "volume": 101}')
    with pytest.raises(p.BadMessage, match="unknown field 'rsi_dbm'"):
        p.parse_telemetry(b'{"ts": 1, "rsi_dbm": -50}')
    with pytest.raises(p.BadMessage, match="over the 8192-byte limit"):
        p.parse_telemetry(b'{"ts": 1, "x_pad": "' + b"a" * 9000 + b'"}')
    with pytest.raises(p.BadMessage, match="nested too deeply"):
        p.parse_telemetry(b"[" * 4000 + b"]" * 4000)
    with pytest.raises(p.BadMessage, match="NaN is not valid JSON"):
        p.parse_telemetry(b'{"ts": NaN}')
    with pytest.raises(p.BadMessage, match=r"ts: -1 is outside 0\.\."):
        p.parse_telemetry(b'{"ts": -1}')


def test_topics() -> None:
    assert p.node_topic("n-1", "cmd") == "netmgr/v1/node/n-1/cmd"
    assert p.zone_topics("a/b/c") == ["netmgr/v1/zone/a/cmd", "netmgr/v1/zone/a/b/cmd",
                                      "netmgr/v1/zone/a/b/c/cmd"]
    assert p.parse_node_topic("netmgr/v1/node/n-1/telemetry") == ("n-1", "telemetry")
    for bad in ("netmgr/v1/node/N-1/telemetry", "netmgr/v1/node/n-1", "netmgr/v1/node/n-1/a/b",
                "netmgr/v2/node/n-1/status", "netmgr/v1/zone/a/cmd"):
        assert p.parse_node_topic(bad) is None, bad


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**60, 2**60)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=80),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20)


def near(name: str) -> st.SearchStrategy[dict]:
    """Documents close to valid ones: a good example with keys changed, dropped or added."""
    good = GOOD[name]
    keys = sorted({k for d in good for k in d} | {"x_ext", "bogus"})
    return st.builds(
        lambda base, drop, changes: {**{k: v for k, v in base.items() if k not in drop}, **changes},
        st.sampled_from(good), st.sets(st.sampled_from(keys), max_size=2),
        st.dictionaries(st.sampled_from(keys), json_values, max_size=2))


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_parsers_agree_with_schemas(name: str, data: st.DataObject) -> None:
    doc = data.draw(near(name))
    agrees(name, doc)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_fuzz_parsers_never_raise_anything_else(payload: bytes) -> None:
    for parse in PARSERS.values():
        try:
            parse(payload)
        except p.BadMessage:
            pass


def test_command_round_trip() -> None:
    c = p.Command("c1", "play", {"url": "http://x/a.mp3", "duration_s": 2.5}, 10.0, 20.0, "priority")
    back = p.parse_command(c.to_json())
    assert back == c
    assert not math.isnan(back.expires)
