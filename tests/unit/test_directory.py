"""The official directory of administrative units read into zones (netmgr.directory, issue 16).

Names are Đồng Nai's after 1 July 2025 (Nghị quyết 1662/NQ-UBTVQH15: phường Bình Phước from
Đồng Xoài's Tân Phú, Tân Đồng, Tân Bình, Tân Xuân, Tân Thiện and xã Tiến Hưng; phường Đồng
Xoài from Tiến Thành and Tân Thành; Phước Tân and Đăk Ơ kept as they were). Đồng Nai's code 75
is the province's; the 5-digit commune codes below are made up for the test.
"""

from __future__ import annotations

import io

import pytest

from netmgr import directory
from netmgr.errors import ImportRefused
from netmgr.zones import ZoneRow

HEADER = "Tỉnh Thành Phố,Mã TP,Phường Xã,Mã PX,Cấp,Tên Tiếng Anh\n"
ROWS = ("Tỉnh Đồng Nai,75,Phường Bình Phước,90001,Phường,Binh Phuoc Ward\n"
        "Tỉnh Đồng Nai,75,Phường Đồng Xoài,90002,Phường,Dong Xoai Ward\n"
        "Tỉnh Đồng Nai,75,Phường Phước Tân,90003,Phường,Phuoc Tan Ward\n"
        "Tỉnh Đồng Nai,75,Xã Đăk Ơ,90004,Xã,Dak O Commune\n"
        "Thành phố Hồ Chí Minh,79,Phường Sài Gòn,90005,Phường,Sai Gon Ward\n")


def units(text: str = HEADER + ROWS, province: str | None = None) -> list[directory.Unit]:
    return directory.read_directory(text.encode(), "csv", province)


def test_the_statistics_office_export_reads_with_kinds_and_names_without_the_kind_word():
    got = units()
    assert [(u.code, u.name, u.kind, u.province_code) for u in got] == [
        ("75", "Đồng Nai", "tinh", None), ("79", "Hồ Chí Minh", "thanh-pho", None),
        ("90001", "Bình Phước", "phuong", "75"), ("90002", "Đồng Xoài", "phuong", "75"),
        ("90003", "Phước Tân", "phuong", "75"), ("90004", "Đăk Ơ", "xa", "75"),
        ("90005", "Sài Gòn", "phuong", "79")]
    assert [u.code for u in units(province="75")] == ["75", "90001", "90002", "90003", "90004"]


def test_an_excel_export_reads_the_same(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    for line in (HEADER + ROWS).splitlines():
        wb.active.append(line.split(","))
    buf = io.BytesIO()
    wb.save(buf)
    assert directory.read_directory(buf.getvalue(), "xlsx") == units()
    # Codes that went through Excel as numbers keep their leading zeros (Hà Nội is 01).
    wb = openpyxl.Workbook()
    wb.active.append(HEADER.strip().split(","))
    wb.active.append(["Thành phố Hà Nội", 1, "Phường Ba Đình", 4.0, "Phường", ""])
    buf = io.BytesIO()
    wb.save(buf)
    assert [(u.code, u.name) for u in directory.read_directory(buf.getvalue(), "xlsx")] == [
        ("01", "Hà Nội"), ("00004", "Ba Đình")]
    with pytest.raises(ImportRefused, match=r"not an Excel \.xlsx file"):
        directory.read_directory(b"PK not really", "xlsx")


@pytest.mark.parametrize("text,problems", [
    (HEADER.replace("Cấp", "Loại") + ROWS,
     ["line 1: unknown column 'Loại'; the directory's columns are Tỉnh Thành Phố, Mã TP, Phường Xã, "
      "Mã PX, Cấp (and Quận Huyện, Mã QH, Tên Tiếng Anh, not used)", "line 1: no column for level"]),
    (HEADER + ROWS + "Tỉnh Đồng Nai,75,Phường Long Bình,90002,Phường,\n",
     ["line 7: code 90002 is also on line 3"]),
    (HEADER + "Tỉnh Đồng Nai,75,Thị trấn Tân Phú,90009,Thị trấn,\nTỉnh Đồng Nai,750,Xã A,90001,Xã,\n",
     ["line 2: Cấp 'Thị trấn' is not a commune-level unit since 1 July 2025 (Xã, Phường, Đặc khu); "
      "is this a directory from before the reform?",
      "line 3: code '750': the official code of a province (Tỉnh, mã đơn vị hành chính) has 2 digits"]),
    (HEADER + ROWS + "Tỉnh Đông Nai,75,Xã Phú Lý,90010,Xã,\n",
     ["line 7: province 75 is 'Đông Nai' here and 'Đồng Nai' on line 2"]),
    (HEADER, ["the file is empty"]),
])
def test_a_bad_file_is_refused_whole_with_its_lines(text, problems):
    if text == HEADER:
        text = ""
    with pytest.raises(ImportRefused) as ei:
        units(text)
    assert ei.value.problems == problems
    with pytest.raises(ImportRefused, match="no unit of province 48"):
        units(province="48")


def test_the_plan_finds_by_code_or_name_creates_the_rest_and_reports_what_differs():
    existing = {
        "dong-nai": ZoneRow("dong-nai", "Đồng Nai", "tinh"),  # no code yet: found by name
        # A pre-2025 tree's commune under a legacy district: found by name under its province.
        "dong-nai/bien-hoa": ZoneRow("dong-nai/bien-hoa", "Biên Hòa", "huyen-cu"),
        "dong-nai/bien-hoa/phuoc-tan": ZoneRow("dong-nai/bien-hoa/phuoc-tan", "Phước Tân", "phuong"),
        # Same code, another name and kind: reported, not changed.
        "dong-nai/dak-o": ZoneRow("dong-nai/dak-o", "Đắk Ơ", "phuong", "90004"),
        # Same name in another province: not this one.
        "binh-duong": ZoneRow("binh-duong", "Bình Dương", "tinh"),
        "binh-duong/dong-xoai": ZoneRow("binh-duong/dong-xoai", "Đồng Xoài", "xa"),
    }
    p = directory.plan(units(province="75"), existing)
    assert [(c.action, c.path, c.code) for c in p.changes] == [
        ("set_code", "dong-nai", "75"),
        ("create", "dong-nai/binh-phuoc", "90001"),
        ("create", "dong-nai/dong-xoai", "90002"),
        ("set_code", "dong-nai/bien-hoa/phuoc-tan", "90003"),
        ("differs", "dong-nai/dak-o", "90004")]
    assert p.of("differs")[0].detail == ("name 'Đắk Ơ' -> 'Đăk Ơ'; kind phuong -> xa; not changed here "
                                         "(a rename keeps the zone's history)")
    assert p.to_dict()["counts"] == {"create": 2, "set_code": 2, "differs": 1, "unchanged": 0}
    # Once applied, the same file changes nothing.
    after = dict(existing)
    for c in p.changes:
        if c.action in ("create", "set_code"):
            old = after.get(c.path)
            after[c.path] = ZoneRow(c.path, old.name if old else c.name, old.kind if old else c.kind, c.code)
    assert directory.plan(units(province="75"), after).to_dict()["counts"] == {
        "create": 0, "set_code": 0, "differs": 1, "unchanged": 4}


def test_two_communes_of_one_name_get_two_paths():
    text = HEADER + ("Tỉnh Đồng Nai,75,Xã Phú Lý,90011,Xã,\n"
                     "Tỉnh Đồng Nai,75,Phường Phú Lý,90012,Phường,\n")
    p = directory.plan(units(text), {})
    assert [c.path for c in p.of("create")] == ["dong-nai", "dong-nai/phu-ly", "dong-nai/phu-ly-90012"]
