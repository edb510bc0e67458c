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


def test_paths_and_levels():
    p = "binh-phuoc/dong-xoai/tan-phu/ap-1"
    assert zones.validate_path(p) == p
    assert zones.level_of(p) == "village" and zones.level_of("binh-phuoc") == "province"
    assert zones.ancestors(p)[:2] == ["binh-phuoc", "binh-phuoc/dong-xoai"]
    assert zones.is_within(p, "binh-phuoc/dong-xoai")
    assert not zones.is_within("binh-phuoc/dong-xoai-2", "binh-phuoc/dong-xoai")
    for bad in ["", "a/b/c/d/e", "Tan-Phu", "a//b", "a/-b", "a b", "tân-phú"]:
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
    new = zones.check_import(parse_records(text, "yaml", "z"), existing={"binh-phuoc": "Bình Phước"})
    assert [p for p, _ in new] == ["binh-phuoc/dong-xoai", "binh-phuoc/dong-xoai/tan-phu"]
    with pytest.raises(ImportRefused) as ei:
        zones.check_import(parse_records(text, "yaml", "z"), existing={"binh-phuoc": "Binh Phuoc"})
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
            "      children:\n"
            "        - {path: tan-phu, name: Tân Phú}\n"
            "        - {path: binh-phuoc/dong-xoai/tien-thanh, name: Tiến Thành}\n")
    new = zones.check_import(zones.parse_zone_file(text, "yaml"), existing={})
    assert new == [("binh-phuoc", "Bình Phước"), ("binh-phuoc/dong-xoai", "Đồng Xoài"),
                   ("binh-phuoc/dong-xoai/tan-phu", "Tân Phú"),
                   ("binh-phuoc/dong-xoai/tien-thanh", "Tiến Thành")]
    bad = text.replace("binh-phuoc/dong-xoai/tien-thanh", "binh-phuoc/tien-thanh").replace(
        "tan-phu, name", "Tân Phú, name")
    with pytest.raises(ImportRefused) as ei:
        zones.check_import(zones.parse_zone_file(bad, "yaml"), existing={})
    assert ei.value.problems[0].startswith("line 7: zone path 'binh-phuoc/dong-xoai/Tân Phú'")
    assert ei.value.problems[1] == ("line 8: zone binh-phuoc/tien-thanh is not directly under "
                                    "its parent binh-phuoc/dong-xoai")


def test_csv_parent_column_and_depth():
    text = ("path,name,parent\n"
            "binh-phuoc,Bình Phước,\n"
            "dong-xoai,Đồng Xoài,binh-phuoc\n"
            "tan-phu,Tân Phú,binh-phuoc/dong-xoai\n"
            "ap-1,Ấp 1,binh-phuoc/dong-xoai/tan-phu\n"
            "to-1,Tổ 1,binh-phuoc/dong-xoai/tan-phu/ap-1\n")
    with pytest.raises(ImportRefused) as ei:
        zones.check_import(zones.parse_zone_file(text, "csv"), existing={})
    assert len(ei.value.problems) == 1
    assert ei.value.problems[0].startswith("line 6: zone path 'binh-phuoc/dong-xoai/tan-phu/ap-1/to-1' "
                                           "is 5 levels deep")
    new = zones.check_import(zones.parse_zone_file(text.rsplit("to-1", 1)[0], "csv"), existing={})
    assert [zones.level_of(p) for p, _ in new] == ["province", "district", "commune", "village"]


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
