"""The official directory of administrative units (danh mục đơn vị hành chính), as the General
Statistics Office exports it (CSV or Excel), read into the zone tree's codes, names and kinds
(issue 16, item 2).

The export has a row per commune-level unit with its province: ``Tỉnh Thành Phố, Mã TP, Phường
Xã, Mã PX, Cấp`` (before 1 July 2025 also ``Quận Huyện, Mã QH``; an English-name column may
follow). Headers are matched without diacritics or case. Names come as they are written
officially ("Phường Bình Phước", "Tỉnh Đồng Nai"); the kind word is taken off the display name
(it is the zone's kind) and the kind comes from ``Cấp``.

:func:`plan` compares the directory with the stored zones: a unit found by its code, or by its
name under its province, gets its code; one not found is created under its province; one
whose name or kind differs under the same code is reported and left as it is (a rename must
keep the zone's history of names). Nothing is written by this module.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from typing import Any

from netmgr.errors import ImportRefused
from netmgr.zones import ZoneRow, fold, kinds, parent_of, slugify

WHAT = "directory import"
# Folded header -> field; None: a column that may be there and is not used.
HEADERS: dict[str, str | None] = {
    "tinh thanh pho": "province_name", "tinh / thanh pho": "province_name", "tinh/thanh pho": "province_name",
    "ma tp": "province_code", "ma tinh": "province_code",
    "phuong xa": "name", "phuong / xa": "name", "phuong/xa": "name", "ten": "name",
    "ma px": "code", "ma xa": "code", "ma": "code",
    "cap": "level",
    "quan huyen": None, "ma qh": None, "ten tieng anh": None,
}
REQUIRED = ("province_name", "province_code", "name", "code", "level")
# ``Cấp`` as written, folded -> kind. Thị trấn and the district tier ended on 1 July 2025.
LEVEL_KINDS = {"xa": "xa", "phuong": "phuong", "dac khu": "dac-khu"}
PROVINCE_KINDS = {"thanh pho": "thanh-pho", "tinh": "tinh"}


@dataclass(frozen=True, slots=True)
class Unit:
    """One administrative unit of the directory."""

    line: int
    code: str
    name: str  # display name, without the kind word
    kind: str
    province_code: str | None  # None for a province


@dataclass(slots=True)
class Change:
    """What importing one unit would do: ``create``, ``set_code``, ``differs`` or ``unchanged``."""

    action: str
    path: str
    name: str
    kind: str
    code: str
    line: int
    detail: str = ""


@dataclass(slots=True)
class Plan:
    """Every change, in directory order (provinces first)."""

    changes: list[Change] = field(default_factory=list)

    def of(self, action: str) -> list[Change]:
        return [c for c in self.changes if c.action == action]

    def to_dict(self) -> dict[str, Any]:
        counts = {a: len(self.of(a)) for a in ("create", "set_code", "differs", "unchanged")}
        return {"counts": counts, "changes": [asdict(c) for c in self.changes if c.action != "unchanged"]}


# ----------------------------------------------------------------------------- reading


def read_rows(data: bytes, fmt: str) -> list[tuple[int, list[str]]]:
    """The file's rows as (line, cells): ``csv`` (UTF-8, with or without BOM) or ``xlsx``."""
    if fmt == "xlsx":
        return _xlsx_rows(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ImportRefused(WHAT, [f"the file is not UTF-8 text (byte {e.start}); export it as CSV "
                                   "UTF-8 or give the .xlsx"]) from None
    return [(i, [c.strip() for c in row]) for i, row in enumerate(csv.reader(io.StringIO(text)), 1)
            if any(c.strip() for c in row)]


def _xlsx_rows(data: bytes) -> list[tuple[int, list[str]]]:
    from zipfile import BadZipFile

    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (BadZipFile, OSError, KeyError, ValueError) as e:
        raise ImportRefused(WHAT, [f"not an Excel .xlsx file ({e}); give the statistics office's "
                                   "export as .xlsx or CSV"]) from None
    try:
        ws = wb.worksheets[0]
        return [(i, ["" if c is None else str(c).strip() for c in row])
                for i, row in enumerate(ws.iter_rows(values_only=True), 1)
                if any(c is not None and str(c).strip() for c in row)]
    finally:
        wb.close()


def _columns(header: list[str], line: int) -> dict[str, int]:
    problems, cols = [], {}
    for i, h in enumerate(header):
        key = fold(h)
        if key not in HEADERS:
            problems.append(f"line {line}: unknown column {h!r}; the directory's columns are "
                            "Tỉnh Thành Phố, Mã TP, Phường Xã, Mã PX, Cấp (and Quận Huyện, Mã QH, "
                            "Tên Tiếng Anh, not used)")
        elif HEADERS[key] is not None:
            cols[HEADERS[key]] = i
    problems += [f"line {line}: no column for {f.replace('_', ' ')}" for f in REQUIRED if f not in cols]
    if problems:
        raise ImportRefused(WHAT, problems)
    return cols


def _strip_kind(name: str, kind: str) -> str:
    """``Phường Bình Phước`` -> ``Bình Phước`` (the kind is the zone's kind, not its name)."""
    word = kinds().get(kind).vi
    if fold(name).startswith(fold(word) + " "):
        return name[len(word):].strip()
    return name


def _code(value: str, kind: str) -> str:
    """A code as the kind has it: an export through Excel writes 01 (Hà Nội) as 1 or 1.0."""
    digits = kinds().get(kind).code_digits
    v = value.strip()
    if v.endswith(".0") and v[:-2].isdigit():
        v = v[:-2]
    if v.isascii() and v.isdigit() and len(v) < digits:
        v = v.zfill(digits)
    return kinds().get(kind).check_code(v)


def _unit(line: int, cells: list[str], cols: dict[str, int]) -> tuple[Unit, Unit]:
    """The province and the commune of one row; ValueError saying what is wrong."""
    get = {f: (cells[i] if i < len(cells) else "") for f, i in cols.items()}
    level = fold(get["level"])
    if level not in LEVEL_KINDS:
        raise ValueError(f"Cấp {get['level']!r} is not a commune-level unit since 1 July 2025 (Xã, Phường, "
                         "Đặc khu); is this a directory from before the reform?")
    kind = LEVEL_KINDS[level]
    pname = get["province_name"]
    pkind = next((k for w, k in PROVINCE_KINDS.items() if fold(pname).startswith(w + " ")), "tinh")
    province = Unit(line, _code(get["province_code"], pkind), _strip_kind(pname, pkind), pkind, None)
    commune = Unit(line, _code(get["code"], kind), _strip_kind(get["name"], kind), kind, province.code)
    if not province.name or not commune.name:
        raise ValueError("a name is empty")
    return province, commune


def read_directory(data: bytes, fmt: str, province: str | None = None) -> list[Unit]:
    """The provinces and communes of the file (only those of ``province``, a 2-digit code, when
    given), provinces first. ImportRefused listing every problem with its line: unknown
    columns, bad codes, a code given twice, a province with two names."""
    rows = read_rows(data, fmt)
    if not rows:
        raise ImportRefused(WHAT, ["the file is empty"])
    (hline, header), body = rows[0], rows[1:]
    cols = _columns(header, hline)
    problems: list[str] = []
    provinces: dict[str, Unit] = {}
    communes: dict[str, Unit] = {}
    for line, cells in body:
        try:
            p, c = _unit(line, cells, cols)
        except ValueError as e:
            problems.append(f"line {line}: {e}")
            continue
        if province is not None and p.code != province:
            continue
        known = provinces.setdefault(p.code, p)
        if known.name != p.name:
            problems.append(f"line {line}: province {p.code} is {p.name!r} here and {known.name!r} on line "
                            f"{known.line}")
        if c.code in communes:
            problems.append(f"line {line}: code {c.code} is also on line {communes[c.code].line}")
            continue
        communes[c.code] = c
    if problems:
        raise ImportRefused(WHAT, problems)
    if province is not None and not provinces:
        raise ImportRefused(WHAT, [f"no unit of province {province} in the file"])
    return list(provinces.values()) + list(communes.values())


# ----------------------------------------------------------------------------- planning


def plan(units: list[Unit], existing: dict[str, ZoneRow]) -> Plan:
    """What importing ``units`` into the stored zones (path -> ZoneRow) would change."""
    by_code = {z.code: z for z in existing.values() if z.code}
    # Zones without a code by (tier, folded name), folded once: a national directory is 3,321
    # units against as many zones.
    uncoded: dict[tuple[str, str], list[ZoneRow]] = {}
    for z in existing.values():
        if not z.code:
            uncoded.setdefault((kinds().get(z.kind).tier, fold(z.name)), []).append(z)
    paths: dict[str, str] = {}  # unit code -> the zone path it is (or will be)
    taken = set(existing)
    out = Plan()
    for u in units:
        parent = None if u.province_code is None else paths.get(u.province_code)
        z = by_code.get(u.code) or _by_name(u, parent, uncoded)
        if z is None:
            path = _new_path(u, parent, taken)
            taken.add(path)
            out.changes.append(Change("create", path, u.name, u.kind, u.code, u.line))
        elif z.code != u.code:
            path = z.path
            out.changes.append(Change("set_code", path, u.name, u.kind, u.code, u.line,
                                      f"{z.name} ({z.kind}) gets its code"))
        else:
            path = z.path
            differs = []
            if z.name != u.name:
                differs.append(f"name {z.name!r} -> {u.name!r}")
            if z.kind != u.kind:
                differs.append(f"kind {z.kind} -> {u.kind}")
            detail = "; ".join(differs) + "; not changed here (a rename keeps the zone's history)"
            out.changes.append(Change("differs", path, u.name, u.kind, u.code, u.line, detail) if differs
                               else Change("unchanged", path, u.name, u.kind, u.code, u.line))
        paths[u.code] = path
    return out


def _by_name(u: Unit, parent: str | None, uncoded: dict[tuple[str, str], list[ZoneRow]]) -> ZoneRow | None:
    """A zone without a code that is this unit by name: a province at the top, a commune-level
    zone anywhere under the unit's province (under a legacy district too)."""
    for z in uncoded.get((kinds().get(u.kind).tier, fold(u.name)), []):
        if parent is None and parent_of(z.path) is None:
            return z
        if parent is not None and z.path.startswith(parent + "/"):
            return z
    return None


def _new_path(u: Unit, parent: str | None, taken: set[str]) -> str:
    base = f"{parent}/{slugify(u.name)}" if parent else slugify(u.name)
    path, n = base, 2
    while path in taken:  # two communes of one name in a province: the second gets its code
        path = f"{base}-{u.code}" if n == 2 else f"{base}-{n}"
        n += 1
    return path
