"""The line-protocol encoder: escaping, bad input dropped and counted, never a lost neighbour.

``parse`` (tests/lineproto_reader.py) is an independent reader written from InfluxDB's line-protocol
rules (not from the encoder): every line the encoder writes must parse back to
the values it was given (or to their documented, counted replacements).
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.lineproto_reader import parse

from netmgr.telemetry.lineproto import MAX_STRING, MAX_TAG, Encoder, drop_field, split_line
from netmgr.telemetry.points import Point


def lines_of(enc: Encoder, points: list[Point]) -> list[str]:
    payload, n = enc.encode(points)
    lines = payload.decode().split("\n") if payload else []
    assert len(lines) == n
    return lines


# --------------------------------------------------------------------------- examples


def test_escapes_round_trip():
    enc = Encoder(schema={})
    p = Point("we ird,m=x", {"tag key": "a,b=c d", "z": "x\\y", "e": ""},
              {"f,k=1 x": 1.5, "s": 'say "hi" \\o/', "i": -7, "b": True}, 123)
    (line,) = lines_of(enc, [p])
    m, tags, fields, ts = parse(line)
    assert m == "we ird,m=x"
    assert tags == {"tag key": "a,b=c d", "z": "x\\y"}  # empty tag value left out
    assert fields == {"f,k=1 x": 1.5, "s": 'say "hi" \\o/', "i": -7, "b": 1}
    assert ts == 123
    assert enc.stats()["sanitized"] == 0


def test_tags_are_sorted_and_the_series_key_is_cached():
    enc = Encoder(schema={})
    a, b = Point("m", {"z": "1", "a": "2"}, {"v": 1}, 1), Point("m", {"z": "1", "a": "2"}, {"v": 2}, 2)
    la, lb = lines_of(enc, [a, b])
    assert la.startswith("m,a=2,z=1 ") and lb.startswith("m,a=2,z=1 ")


def test_nan_and_infinity_are_dropped_and_counted_neighbours_kept():
    enc = Encoder(schema={})
    pts = [Point("m", {"t": "1"}, {"good": 1.0, "nan": math.nan, "inf": math.inf, "ninf": -math.inf}, 1),
           Point("m", {"t": "2"}, {"nan": math.nan}, 2),
           Point("m", {"t": "3"}, {"good": 3.0}, 3)]
    lines = lines_of(enc, pts)
    assert [parse(x)[2] for x in lines] == [{"good": 1.0}, {"good": 3.0}]
    s = enc.stats()
    assert s["nonfinite"] == 4 and s["points_dropped"] == 1 and s["lines"] == 2


def test_type_conflicts_drop_only_the_field():
    enc = Encoder(schema={})
    pts = [Point("m", {}, {"n": 1, "x": 1}, 1),
           Point("m", {}, {"n": 2.5, "x": 2}, 2),        # n: int then float: conflict
           Point("m", {}, {"n": "three", "x": 3}, 3),    # int then string: conflict
           Point("m", {}, {"f": 1.5}, 4),
           Point("m", {}, {"f": 2}, 5),                  # float field, int value: the same float
           Point("other", {}, {"n": 2.5}, 6)]            # types are per measurement
    lines = lines_of(enc, pts)
    assert [parse(x)[2] for x in lines] == [{"n": 1, "x": 1}, {"x": 2}, {"x": 3}, {"f": 1.5}, {"f": 2.0},
                                            {"n": 2.5}]
    assert isinstance(parse(lines[4])[2]["f"], float)
    assert enc.type_conflicts == 2


def test_schema_types_hold_from_the_first_point():
    enc = Encoder()
    (line,) = lines_of(enc, [Point("ap", {"ap": "a"}, {"clients": 3.5, "up": 1, "response_ms": 4}, 1)])
    assert parse(line)[2] == {"up": 1, "response_ms": 4.0}
    assert enc.type_conflicts == 1


def test_learned_server_type_wins():
    enc = Encoder(schema={})
    enc.learn("m", "v", "float")
    enc.learn("m", "s", "integer")
    (line,) = lines_of(enc, [Point("m", {}, {"v": 3, "s": "x", "ok": 1}, 1)])
    assert parse(line)[2] == {"v": 3.0, "ok": 1}
    assert enc.type_conflicts == 1


def test_oversize_strings_are_truncated():
    enc = Encoder(schema={})
    (line,) = lines_of(enc, [Point("m", {"t": "x" * 1000}, {"s": "y" * 5000}, 1)])
    _, tags, fields, _ = parse(line)
    assert tags["t"] == "x" * MAX_TAG and fields["s"] == "y" * MAX_STRING
    assert enc.truncated == 2


def test_newlines_never_break_a_line():
    enc = Encoder(schema={})
    pts = [Point("m", {"t": "a\nb", "u": "c\r\nd"}, {"s": "line1\nline2", "v": 1}, 1),
           Point("m\n2", {}, {"k\ney": 2}, 2)]
    lines = lines_of(enc, pts)
    assert len(lines) == 2
    assert parse(lines[0])[1:3] == ({"t": "a b", "u": "c  d"}, {"s": "line1 line2", "v": 1})
    assert parse(lines[1])[0] == "m 2" and parse(lines[1])[2] == {"k ey": 2}
    assert enc.sanitized == 5


def test_ambiguous_backslashes_become_slashes():
    enc = Encoder(schema={})
    (line,) = lines_of(enc, [Point("m", {"a": "end\\", "b": "x\\,y", "c": "d\\\\e", "d": "ok\\n"},
                                   {"v": 1, 'q\\"': 2}, 1)])
    assert parse(line)[1:3] == ({"a": "end/", "b": "x/,y", "c": "d/\\e", "d": "ok\\n"}, {"v": 1, "q/'": 2})
    assert enc.sanitized == 5


def test_reserved_and_empty_keys_and_odd_values():
    enc = Encoder(schema={})
    pts = [Point("m", {"time": "x", "": "y", "ok": "1"}, {"time": 1, "": 2, "v": 3, "big": 2**70,
                                                        "obj": object(), "none": None}, 1),
           Point("", {}, {"v": 1}, 2),
           Point("m", {}, {"v": 1}, "not a timestamp"),  # type: ignore[arg-type]
           Point("m", {}, {"v": 4}, 4)]
    lines = lines_of(enc, pts)
    assert [parse(x)[1:3] for x in lines] == [({"ok": "1"}, {"v": 3}), ({}, {"v": 4})]
    s = enc.stats()
    assert s["bad_keys"] == 2 + 1 and s["bad_values"] == 3 and s["points_dropped"] == 2


def test_lone_surrogates_do_not_break_the_batch():
    enc = Encoder(schema={})
    lines = lines_of(enc, [Point("m", {"t": "a\udc80b"}, {"v": 1}, 1), Point("m", {"t": "c"}, {"v": 2}, 2)])
    assert [parse(x)[1]["t"] for x in lines] == ["a?b", "c"]


def test_split_line_and_drop_field():
    enc = Encoder(schema={})
    (line,) = lines_of(enc, [Point("m x", {"t": "a,b"}, {"s": 'q"u,o te', "n": 1, "f": 2.5}, 9)])
    key, fields, ts = split_line(line)
    assert key == "m\\ x,t=a\\,b" and ts == "9"
    assert fields == [("s", '"q\\"u,o te"'), ("n", "1i"), ("f", "2.5")]
    other = "m\\ x,t=c s=\"x\",n=2.5 10"
    out, removed = drop_field([line, other, "y n=1i 11"], "m x", "n", "f")
    assert removed == 1
    assert parse(out[0])[2] == {"s": 'q"u,o te', "f": 2.5}
    assert out[1:] == [other, "y n=1i 11"]
    out, removed = drop_field(["m only=1i 1"], "m", "only", "f")
    assert out == [] and removed == 1


# --------------------------------------------------------------------------- fuzz

names = st.text(min_size=1, max_size=40)
field_values = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(allow_nan=True),
                         st.text(max_size=60), st.booleans())


def expect_clean(s: str, cap: int) -> str:
    s = re.sub(r"[\r\n]", " ", s)[:cap]
    return re.sub(r'\\(?=[\\,= "]|$)', "/", s).encode("utf-8", "replace").decode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(measurement=names, tags=st.dictionaries(names, st.text(max_size=40), max_size=5),
       fields=st.dictionaries(names, field_values, min_size=1, max_size=6), ts=st.integers(0, 2**62))
def test_fuzz_every_line_parses_back(measurement, tags, fields, ts):
    enc = Encoder(schema={})
    neighbour = Point("neighbour", {"n": "1"}, {"v": 1}, 1)
    lines = lines_of(enc, [neighbour, Point(measurement, tags, fields, ts), neighbour])
    assert parse(lines[0]) == parse(lines[-1]) == ("neighbour", {"n": "1"}, {"v": 1}, 1)
    writable = {k: v for k, v in fields.items()
                if not (isinstance(v, float) and not math.isfinite(v))
                and expect_clean(k, MAX_TAG).replace('"', "'") not in ("", "time", "_measurement", "_field")}
    if not writable or not expect_clean(measurement, MAX_TAG):
        assert len(lines) == 2
        return
    assert len(lines) == 3
    m, got_tags, got_fields, got_ts = parse(lines[1])
    want_m = expect_clean(measurement, MAX_TAG)
    assert m == ("_" + want_m[1:] if want_m.startswith("#") else want_m)
    assert got_ts == ts
    want_tags: dict[str, str] = {}
    for k, v in tags.items():
        ck, cv = expect_clean(k, MAX_TAG), expect_clean(v, MAX_TAG)
        if ck and cv and ck not in ("time", "_measurement", "_field"):
            want_tags.setdefault(ck, cv)
    assert got_tags == want_tags
    want_fields: dict[str, object] = {}
    for k, v in writable.items():
        if isinstance(v, str):
            v = re.sub(r"[\r\n]", " ", v)[:MAX_STRING].encode("utf-8", "replace").decode()
        elif isinstance(v, bool):
            v = int(v)
        want_fields.setdefault(expect_clean(k, MAX_TAG).replace('"', "'"), v)
    assert got_fields == want_fields


@pytest.mark.parametrize("value", ["plain", "with space", "c,o=m\\", "é ü 中", '"q"', "\\"])
def test_values_that_need_no_change_come_back_exactly(value):
    enc = Encoder(schema={})
    clean = value if not value.endswith("\\") else None
    (line,) = lines_of(enc, [Point("m", {"t": value}, {"s": value}, 1)])
    _, tags, fields, _ = parse(line)
    assert fields["s"] == value
    if clean is not None:
        assert tags["t"] == value


def test_a_measurement_never_starts_a_comment_line():
    enc = Encoder(schema={})
    (line,) = lines_of(enc, [Point("#m", {}, {"v": 1}, 1)])
    assert line == "_m v=1i 1" and enc.sanitized == 1


def test_keys_that_clean_to_the_same_text_keep_the_first():
    enc = Encoder(schema={})
    (line,) = lines_of(enc, [Point("m", {"t\n": "1", "t ": "2"}, {"a\n": 1, "a ": 2, 3: 3, "3": 4}, 1)])
    assert parse(line)[1:3] == ({"t ": "1"}, {"a ": 1, "3": 3})
