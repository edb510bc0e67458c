"""Zone paths, names and imports."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netmgr import zones
from netmgr.errors import ImportRefused
from netmgr.records import parse_records


@pytest.mark.parametrize("name,slug", [("Tân Phú", "tan-phu"), ("Đồng Xoài", "dong-xoai"),
                                       ("Ấp 1", "ap-1"), ("Thuận Lợi", "thuan-loi"),
                                       ("  Bình   Phước ", "binh-phuoc")])
def test_slugify(name, slug):
    assert zones.slugify(name) == slug


@given(st.text(max_size=60))
def test_slugify_always_gives_a_valid_segment_or_nothing(name):
    s = zones.slugify(name)
    assert s == "" or zones.SEGMENT.match(s)


def test_paths():
    p = "binh-phuoc/dong-xoai/tan-phu/ap-1"
    assert zones.validate_path(p) == p
    assert zones.validate_path("a/b/c/d/e/f/g/h") == "a/b/c/d/e/f/g/h"  # MAX_DEPTH; [zones] may say less
    assert zones.ancestors(p)[:2] == ["binh-phuoc", "binh-phuoc/dong-xoai"]
    assert zones.is_within(p, "binh-phuoc/dong-xoai")
    assert not zones.is_within("binh-phuoc/dong-xoai-2", "binh-phuoc/dong-xoai")
    for bad in ["", "a/b/c/d/e/f/g/h/i", "Tan-Phu", "a//b", "a/-b", "a b", "tân-phú"]:
        with pytest.raises(ValueError):
            zones.validate_path(bad)


def test_names_are_nfc():
    decomposed = "Ta\u0302n Phu\u0301"
    assert zones.normalize_name(decomposed) == "Tân Phú"


def test_import_checks_with_line_numbers():
    text = ("path,name\n"
            "binh-phuoc,Bình Phước\n"
            "binh-phuoc/dong-xoai,Đồng Xoài\n"
            "binh-phuoc/dong-xoai,Đồng Xoài\n"
            "binh-phuoc/x/y,Y\n")
    with pytest.raises(ImportRefused) as ei:
        zones.check_import(parse_records(text, "csv", "zone import"), existing={})
    assert ei.value.problems == [
        "line 4: duplicate zone binh-phuoc/dong-xoai (also on line 3)",
        "line 5: unknown parent zone binh-phuoc/x of binh-phuoc/x/y; add it first or include it in the file",
    ]


def test_import_orders_parents_first_and_skips_existing():
    text = ("- {path: binh-phuoc/dong-xoai/tan-phu, name: Tân Phú}\n"
            "- {path: binh-phuoc/dong-xoai, name: Đồng Xoài}\n"
            "- {path: binh-phuoc, name: Bình Phước}\n")
    province = zones.ZoneRow("binh-phuoc", "Bình Phước", "tinh")
    new = zones.check_import(parse_records(text, "yaml", "z"), existing={"binh-phuoc": province})
    assert [z.path for z in new] == ["binh-phuoc/dong-xoai", "binh-phuoc/dong-xoai/tan-phu"]
    renamed = zones.ZoneRow("binh-phuoc", "Binh Phuoc", "tinh")
    with pytest.raises(ImportRefused) as ei:
        zones.check_import(parse_records(text, "yaml", "z"), existing={"binh-phuoc": renamed})
    assert ei.value.problems == [
        "line 3: zone binh-phuoc exists as 'Binh Phuoc'; an import does not rename zones"]


def test_bad_yaml_names_the_line():
    with pytest.raises(ImportRefused) as ei:
        parse_records("- {path: a, name: b}\n- {path: [\n", "yaml", "zone import")
    assert ei.value.problems[0].startswith("line 3: not valid YAML")


def test_nested_yaml_import_with_line_numbers():
    text = ("- path: binh-phuoc\n"
            "  name: Bình Phước\n"
            "  children:\n"
            "    - path: dong-xoai\n"
            "      name: Đồng Xoài\n"
            "      kind: huyen-cu\n"
            "      children:\n"
            "        - {path: tan-phu, name: Tân Phú}\n"
            "        - {path: binh-phuoc/dong-xoai/tien-thanh, name: Tiến Thành}\n")
    new = zones.check_import(zones.parse_zone_file(text, "yaml"), existing={})
    assert new == [zones.ZoneRow("binh-phuoc", "Bình Phước", "tinh"),
                   zones.ZoneRow("binh-phuoc/dong-xoai", "Đồng Xoài", "huyen-cu"),
                   zones.ZoneRow("binh-phuoc/dong-xoai/tan-phu", "Tân Phú", "xa"),
                   zones.ZoneRow("binh-phuoc/dong-xoai/tien-thanh", "Tiến Thành", "xa")]
    bad = text.replace("binh-phuoc/dong-xoai/tien-thanh", "binh-phuoc/tien-thanh").replace(
        "tan-phu, name", "Tân Phú, name")
    with pytest.raises(ImportRefused) as ei:
        zones.check_import(zones.parse_zone_file(bad, "yaml"), existing={})
    assert ei.value.problems[0].startswith("line 8: zone path 'binh-phuoc/dong-xoai/Tân Phú'")
    assert ei.value.problems[1] == ("line 9: zone binh-phuoc/tien-thanh is not directly under "
                                    "its parent binh-phuoc/dong-xoai")


def test_csv_parent_column_and_depth():
    text = ("path,name,parent,kind\n"
            "binh-phuoc,Bình Phước,,\n"
            "dong-xoai,Đồng Xoài,binh-phuoc,huyen-cu\n"
            "tan-phu,Tân Phú,binh-phuoc/dong-xoai,\n"
            "ap-1,Ấp 1,binh-phuoc/dong-xoai/tan-phu,ap\n"
            "to-1,Tổ 1,binh-phuoc/dong-xoai/tan-phu/ap-1,\n")
    with pytest.raises(ImportRefused) as ei:
        zones.check_import(zones.parse_zone_file(text, "csv"), existing={}, max_depth=4)
    assert ei.value.problems == ["line 6: zone binh-phuoc/dong-xoai/tan-phu/ap-1/to-1 is 5 levels deep; "
                                 "[zones] max_depth is 4"]
    new = zones.check_import(zones.parse_zone_file(text.rsplit("to-1", 1)[0], "csv"), existing={})
    assert [z.kind for z in new] == ["tinh", "huyen-cu", "xa", "ap"]
    # Deep enough, but nothing goes under a hamlet.
    with pytest.raises(ImportRefused) as ei:
        zones.check_import(zones.parse_zone_file(text, "csv"), existing={})
    assert ei.value.problems == ["line 6: binh-phuoc/dong-xoai/tan-phu/ap-1/to-1: nothing goes under a "
                                 "hamlet (Ấp) unless its kind is given"]


def test_json_files_read_as_yaml_and_a_header_without_rows_is_refused() -> None:
    """A JSON list of entries imports like YAML (it was read as CSV and imported nothing); a CSV
    file with only its header row is refused instead of importing nothing in silence."""
    from netmgr.records import detect_format

    text = '[{"name": "ap-1", "host": "10.0.0.1", "zone": "binh-phuoc"}]'
    assert detect_format("aps.json", text) == "yaml"
    assert detect_format("aps.txt", text) == "yaml"
    assert [r.data["name"] for r in parse_records(text, detect_format("aps.json", text), "ap import")] == ["ap-1"]
    with pytest.raises(ImportRefused, match="no entries below the header row"):
        parse_records("name,host,zone\n", "csv", "ap import")


# --------------------------------------------------------------------------- kinds (issue 16)


def test_the_kinds_file_is_whole():
    ks = zones.kinds()
    assert {k.tier for k in ks.by_id.values()} == set(zones.TIERS)
    assert [k.id for k in ks.by_id.values() if k.tier == "commune"] == ["xa", "phuong", "dac-khu"]
    assert all(k.vi and k.en for k in ks.by_id.values())
    assert {k.code_digits for k in ks.by_id.values() if k.tier == "province"} == {2}
    assert {k.code_digits for k in ks.by_id.values() if k.tier == "commune"} == {5}


def test_a_broken_kinds_file_is_refused_naming_what(tmp_path):
    bad = tmp_path / "kinds.yaml"
    bad.write_text("tiers: {province: {parents: [nowhere]}}\nkinds: {tinh: {tier: land, vi: T, en: P, "
                   "code_digits: 2}}\ndefaults: {top: xa}\n", encoding="utf-8")
    with pytest.raises(ValueError) as ei:
        zones.load_kinds(bad)
    msg = str(ei.value)
    assert "parent tier nowhere is not a tier" in msg and "kind tinh: tier land" in msg
    assert "defaults: top -> xa is not a kind" in msg


def test_the_two_tier_tree_is_the_default():
    text = ("path,name,kind,code\n"
            "dong-nai,Đồng Nai,,75\n"
            "dong-nai/binh-phuoc,Bình Phước,phuong,\n"
            "dong-nai/binh-phuoc/khu-pho-1,Khu phố 1,khu-pho,\n"
            "dong-nai/minh-duc,Minh Đức,,\n"
            "dong-nai/minh-duc/ap-1,Ấp 1,,\n"
            "dong-nai/cum-bac,Cụm phía Bắc,cum,\n"
            "dong-nai/cum-bac/dak-o,Đak Ơ,,\n")
    new = zones.check_import(parse_records(text, "csv", "zone import"), existing={})
    assert [(z.path.rsplit("/", 1)[-1], z.kind, z.code) for z in new] == [
        ("dong-nai", "tinh", "75"), ("binh-phuoc", "phuong", None), ("minh-duc", "xa", None),
        ("cum-bac", "cum", None), ("khu-pho-1", "khu-pho", None), ("ap-1", "thon", None),
        ("dak-o", "xa", None)]  # under a group of the province: a commune


@pytest.mark.parametrize("line,problem", [
    ("tan-phu,Tân Phú,xa,", "a commune (Xã) must be under a zone of tier group or legacy or province, not at the top"),
    ("dong-nai/a/b,B,tinh,", "a province (Tỉnh) cannot be under a commune (Xã); it is the top of a tree"),
    ("dong-nai/a/b,B,huyen-cu,", "a district (before 2025) (Huyện (trước 2025)) cannot be under a commune"),
    ("dong-nai/a/b,B,thanh-pho-x,", "unknown zone kind 'thanh-pho-x'; use one of tinh, thanh-pho, xa"),
    ("dong-nai/a/b,B,thon,7", "a village (Thôn) has no official code; leave code empty"),
    ("dong-nai/b,B,,7501", "code '7501': the official code of a commune (Xã, mã đơn vị hành chính) has 5 digits"),
    ("dong-nai/b,B,,25195", "code 25195 is already the code of dong-nai/a"),
])
def test_a_zone_out_of_place_or_with_a_wrong_code_is_refused(line, problem):
    existing = {"dong-nai": zones.ZoneRow("dong-nai", "Đồng Nai", "tinh", "75"),
                "dong-nai/a": zones.ZoneRow("dong-nai/a", "A", "xa", "25195")}
    with pytest.raises(ImportRefused) as ei:
        zones.check_import(parse_records("path,name,kind,code\n" + line + "\n", "csv", "zone import"), existing)
    [got] = ei.value.problems
    assert got.startswith("line 2: ") and problem in got, got


def test_codes_are_unique_within_a_file_too_and_unknown_columns_are_named():
    text = "path,name,code\ndong-nai,Đồng Nai,75\nbinh-phuoc,Bình Phước,75\n"
    with pytest.raises(ImportRefused) as ei:
        zones.check_import(parse_records(text, "csv", "zone import"), existing={})
    assert ei.value.problems == ["line 3: binh-phuoc: code 75 is already the code of dong-nai"]
    with pytest.raises(ImportRefused) as ei:
        zones.check_import(parse_records("path,name,loai\ndong-nai,Đồng Nai,tinh\n", "csv", "z"), {})
    assert ei.value.problems == ["line 2: unknown column(s) loai; use path, name, parent, kind, code"]


def test_one_new_zone_is_checked_as_an_import_line_is():
    existing = {"dong-nai": zones.ZoneRow("dong-nai", "Đồng Nai", "tinh", "75")}
    z = zones.new_zone("dong-nai/binh-phuoc", "Bình Phước", "phuong", None, existing)
    assert z == zones.ZoneRow("dong-nai/binh-phuoc", "Bình Phước", "phuong")
    with pytest.raises(ValueError, match="unknown parent zone dong-nai/x"):
        zones.new_zone("dong-nai/x/y", "Y", None, None, existing)
    with pytest.raises(ValueError, match=r"a commune .* has 5 digits"):
        zones.new_zone("dong-nai/b", "B", "xa", "75", existing)
    existing["dong-nai/a"] = zones.ZoneRow("dong-nai/a", "A", "xa", "25195")
    with pytest.raises(ValueError, match="already the code of dong-nai/a"):
        zones.new_zone("dong-nai/b", "B", None, "25195", existing)
    with pytest.raises(ValueError, match="is 3 levels deep; \\[zones\\] max_depth is 2"):
        zones.new_zone("dong-nai/b/c", "C", None, None, existing, max_depth=2)


@pytest.mark.parametrize("query,name", [("tan phu", "Tân Phú"), ("ĐỒNG XOÀI", "Đồng Xoài"),
                                        ("dak o", "Đak Ơ"), ("  binh   phuoc ", "Bình Phước")])
def test_names_fold_for_search(query, name):
    assert zones.fold(query) in zones.fold(name)
