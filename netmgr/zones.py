"""The zone tree: provinces, their communes (xã, phường, đặc khu), villages, and groups.

A zone's id is its path of ASCII slugs (``dong-nai/binh-phuoc/khu-pho-1``): MQTT topics, API
scopes and dashboards use it. Its display name keeps the Vietnamese diacritics (stored
NFC-normalised). Its kind (devices/zones/kinds.yaml: Vietnam's two tiers since July 2025, the
villages below a commune, informal groups, and the district tier of trees made before the
reform) says where it may sit and what official code (mã đơn vị hành chính) it may carry.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from netmgr.errors import ImportRefused
from netmgr.paths import devices_dir
from netmgr.records import Record, parse_records
from netmgr.text import check_name

SEGMENT = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_PATH = 255
MAX_DEPTH = 8  # segments of a path at most, whatever [zones] max_depth says (it may say less)
TIERS = ("province", "legacy", "commune", "village", "group")


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of zone: its id (``xa``), tier, names for people, and its official code's digits."""

    id: str
    tier: str
    vi: str
    en: str
    code_digits: int

    def check_code(self, code: str) -> str:
        """``code`` if it is an official code for this kind, else ValueError saying why."""
        if not self.code_digits:
            raise ValueError(f"a {self.en.lower()} ({self.vi}) has no official code; leave code empty")
        if not (isinstance(code, str) and code.isascii() and code.isdigit()
                and len(code) == self.code_digits):
            raise ValueError(f"code {code!r}: the official code of a {self.en.lower()} ({self.vi}, mã "
                             f"đơn vị hành chính) has {self.code_digits} digits")
        return code


@dataclass(frozen=True, slots=True)
class Kinds:
    """The kinds of devices/zones/kinds.yaml and the rules of where each tier may sit."""

    by_id: dict[str, Kind]
    parents: dict[str, frozenset[str]]  # tier -> the tiers its parent may be of (empty: top)
    defaults: dict[str, str]  # "top" or a tier -> the kind a new zone under it gets

    def get(self, kind: str) -> Kind:
        k = self.by_id.get(kind)
        if k is None:
            raise ValueError(f"unknown zone kind {kind!r}; use one of {', '.join(self.by_id)}")
        return k

    def check_place(self, kind: str, parent_kind: str | None) -> Kind:
        """The kind if a zone of it may sit under a zone of ``parent_kind`` (None: at the top)."""
        k = self.get(kind)
        allowed = self.parents[k.tier]
        if parent_kind is None:
            if allowed:
                raise ValueError(f"a {k.en.lower()} ({k.vi}) must be under a zone of tier "
                                 f"{' or '.join(sorted(allowed))}, not at the top")
            return k
        p = self.get(parent_kind)
        if p.tier not in allowed:
            raise ValueError(f"a {k.en.lower()} ({k.vi}) cannot be under a {p.en.lower()} ({p.vi})"
                             + (f"; it goes under a zone of tier {' or '.join(sorted(allowed))}"
                                if allowed else "; it is the top of a tree"))
        return k

    def default(self, ancestor_kinds: list[str]) -> str:
        """The kind of a new zone whose ancestors have ``ancestor_kinds`` (nearest first): by the
        tier of the nearest one that is not a group; at the top, a province."""
        if not ancestor_kinds:
            return self.defaults["top"]
        for kind in ancestor_kinds:
            tier = self.get(kind).tier
            if tier != "group":
                if tier not in self.defaults:
                    raise ValueError(f"nothing goes under a {self.get(kind).en.lower()} "
                                     f"({self.get(kind).vi}) unless its kind is given")
                return self.defaults[tier]
        return self.defaults["province"]


@functools.cache
def kinds() -> Kinds:
    """The kinds of zones (devices/zones/kinds.yaml), read once."""
    return load_kinds(devices_dir() / "zones" / "kinds.yaml")


def load_kinds(path: Any) -> Kinds:
    """Read and check a kinds file; ValueError naming the file and what is wrong."""
    import yaml

    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        parents = {t: frozenset(v["parents"]) for t, v in doc["tiers"].items()}
        by_id = {k: Kind(k, v["tier"], v["vi"], v["en"], int(v["code_digits"]))
                 for k, v in doc["kinds"].items()}
        defaults = dict(doc["defaults"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a zone kinds file: {e!r}") from None
    problems = [f"tier {t} is not one of {', '.join(TIERS)}" for t in parents if t not in TIERS]
    problems += [f"tier {t}: parent tier {p} is not a tier" for t, ps in parents.items() for p in ps
                 if p not in parents]
    problems += [f"kind {k.id}: tier {k.tier} is not a tier" for k in by_id.values() if k.tier not in parents]
    problems += [f"kind {k}: {SEGMENT.pattern} does not match" for k in by_id if not SEGMENT.match(k)]
    problems += [f"defaults: {w} -> {k} is not a kind" for w, k in defaults.items() if k not in by_id]
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return Kinds(by_id, parents, defaults)


def fold(text: str) -> str:
    """``"Tân Phú"`` -> ``"tan phu"``: lowercase ASCII without diacritics, for search."""
    s = text.replace("đ", "d").replace("Đ", "D")
    s = unicodedata.normalize("NFKD", s)
    return " ".join("".join(c for c in s if not unicodedata.combining(c)).lower().split())


def validate_path(path: str) -> str:
    """Return ``path`` if it is a valid zone path, else raise ValueError saying why."""
    if not isinstance(path, str) or not path:
        raise ValueError("zone path is empty")
    if len(path) > MAX_PATH:
        raise ValueError(f"zone path longer than {MAX_PATH} characters")
    parts = path.split("/")
    if len(parts) > MAX_DEPTH:
        raise ValueError(f"zone path {path!r} is {len(parts)} levels deep; at most {MAX_DEPTH}")
    for seg in parts:
        if not SEGMENT.match(seg):
            raise ValueError(f"zone path {path!r}: segment {seg!r} must be lowercase ASCII letters, "
                             f"digits and single dashes (e.g. {slugify(seg) or 'tan-phu'!r})")
    return path


def parent_of(path: str) -> str | None:
    """The parent zone's path, or None for a province."""
    return path.rsplit("/", 1)[0] if "/" in path else None


def ancestors(path: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a/b", "a/b/c"]``."""
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def is_within(path: str, scope: str) -> bool:
    """True if ``path`` is ``scope`` or below it."""
    return path == scope or path.startswith(scope + "/")


def overlaps(a: str, b: str) -> bool:
    """True if one of the zones is within the other (a program for the province reaches a commune
    of it, and a commune's program is part of the province's plan)."""
    return is_within(a, b) or is_within(b, a)


def common_zone(paths: list[str]) -> str | None:
    """The deepest zone containing every one of ``paths`` (None when they share no province)."""
    if not paths:
        return None
    common = paths[0]
    for z in paths[1:]:
        while not is_within(z, common):
            if "/" not in common:
                return None
            common = common.rsplit("/", 1)[0]
    return common


def slugify(name: str) -> str:
    """``"Tân Phú"`` -> ``"tan-phu"``; ``"Đồng Xoài"`` -> ``"dong-xoai"``."""
    return re.sub(r"[^a-z0-9]+", "-", fold(name)).strip("-")


def normalize_name(name: str) -> str:
    """The display name NFC-normalised and stripped; ValueError if empty, too long or holding
    a control character."""
    name = check_name(str(name), "zone name")
    if not name:
        raise ValueError("zone name is empty")
    if len(name) > 255:
        raise ValueError("zone name longer than 255 characters")
    return name


def parse_zone_file(text: str, fmt: str) -> list[Record]:
    """Zone records from CSV (``path,name[,parent]``) or YAML, each with its line.

    YAML is a flat list of ``{path, name}`` or a nested one, where an entry's
    ``children`` list holds zones below it; a child's ``path`` may be its own
    segment (``tan-phu``) or the full path.
    """
    if fmt != "yaml":
        return parse_records(text, fmt, "zone import")
    import yaml

    records = parse_records(text, fmt, "zone import")  # reports syntax errors with their line
    if not any("children" in r.data for r in records):
        return records
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    out: list[Record] = []
    problems: list[str] = []

    def walk(seq: Any, parent: str | None) -> None:
        for item in seq.value:
            line = item.start_mark.line + 1
            if not isinstance(item, yaml.MappingNode):
                problems.append(f"line {line}: each zone must be a mapping with path and name")
                continue
            data: dict[str, Any] = {}
            children = None
            for key_node, value_node in item.value:
                key = key_node.value
                if key == "children":
                    children = value_node
                else:
                    data[key] = yaml.safe_load(yaml.serialize(value_node))
            if parent is not None:
                data["parent"] = parent
            out.append(Record(line, data))
            if children is None or (isinstance(children, yaml.ScalarNode) and children.tag.endswith(":null")):
                continue
            if not isinstance(children, yaml.SequenceNode):
                problems.append(f"line {children.start_mark.line + 1}: children must be a list of zones")
                continue
            path = str(data.get("path", "") or "").strip()
            walk(children, f"{parent}/{path}" if parent and path and "/" not in path else path)

    walk(node, None)
    if problems:
        raise ImportRefused("zone import", problems)
    return out


@dataclass(frozen=True, slots=True)
class ZoneRow:
    """A zone as the store keeps it (what an import or a change is checked against)."""

    path: str
    name: str
    kind: str
    code: str | None = None


IMPORT_COLUMNS = ("path", "name", "parent", "kind", "code")


def _record_path(rec: Record) -> str:
    """The zone path of one import record, its ``parent`` column applied; not validated yet.

    Raises ValueError with the problem (without the line prefix).
    """
    unknown = set(rec.data) - set(IMPORT_COLUMNS)
    if unknown:
        raise ValueError(f"unknown column(s) {', '.join(sorted(unknown))}; use {', '.join(IMPORT_COLUMNS)}")
    raw_path = str(rec.data.get("path", "")).strip()
    parent = str(rec.data.get("parent", "") or "").strip()
    if parent and raw_path and "/" not in raw_path:
        # A child may give only its own segment (nested YAML, or a CSV parent column).
        return f"{parent}/{raw_path}"
    if parent and raw_path and parent_of(raw_path) != parent:
        raise ValueError(f"zone {raw_path} is not directly under its parent {parent}")
    return raw_path


def _optional(rec: Record, key: str) -> str | None:
    v = rec.data.get(key)
    return None if v is None or str(v).strip() == "" else str(v).strip()


@dataclass(slots=True)
class _Line:
    line: int
    path: str
    name: str
    kind: str | None  # as given; None: the default for its place
    code: str | None


def _check_record(rec: Record, seen: dict[str, int], existing: dict[str, ZoneRow], max_depth: int) -> _Line:
    """One import record, its path recorded in ``seen`` (path -> line).

    Raises ValueError with the record's first problem (without the line prefix).
    """
    path = validate_path(_record_path(rec))
    if path.count("/") + 1 > max_depth:
        raise ValueError(f"zone {path} is {path.count('/') + 1} levels deep; [zones] max_depth is "
                         f"{max_depth}")
    name = normalize_name(rec.data.get("name", ""))
    if path in seen:
        raise ValueError(f"duplicate zone {path} (also on line {seen[path]})")
    # Recorded even when refused below, so a later line with this path is reported as a
    # duplicate rather than refused a second time for another reason.
    seen[path] = rec.line
    kind, code = _optional(rec, "kind"), _optional(rec, "code")
    old = existing.get(path)
    if old is not None:
        if old.name != name:
            raise ValueError(f"zone {path} exists as {old.name!r}; an import does not rename zones")
        if kind is not None and kind != old.kind:
            raise ValueError(f"zone {path} exists as a {old.kind}; an import does not change kinds")
        if code is not None and code != old.code:
            raise ValueError(f"zone {path} exists with code {old.code or '(none)'}; an import does not "
                             "change codes")
    return _Line(rec.line, path, name, kind, code)


def _place(r: _Line, kind_of: dict[str, str], codes: dict[str, str]) -> None:
    """Give a new zone its kind (checked against its parent's) and check its code; records both
    in ``kind_of`` and ``codes``. ValueError saying what is wrong."""
    ks = kinds()
    up = [kind_of[a] for a in reversed(ancestors(r.path)[:-1]) if a in kind_of]
    r.kind = r.kind or ks.default(up)
    k = ks.check_place(r.kind, up[0] if up else None)
    if r.code is not None:
        k.check_code(r.code)
        if codes.get(r.code, r.path) != r.path:
            raise ValueError(f"code {r.code} is already the code of {codes[r.code]}")
        codes[r.code] = r.path
    kind_of[r.path] = r.kind


def _resolve_kinds(rows: list[_Line], existing: dict[str, ZoneRow]) -> list[str]:
    """Place every new row (parents first, so a child's default follows its parent's kind).
    Returns the problems, in line order."""
    kind_of = {p: z.kind for p, z in existing.items()}
    codes = {z.code: p for p, z in existing.items() if z.code}
    problems: list[tuple[int, str]] = []
    for r in sorted(rows, key=lambda r: r.path.count("/")):
        if r.path in existing:
            continue
        try:
            _place(r, kind_of, codes)
        except ValueError as e:
            problems.append((r.line, f"line {r.line}: {r.path}: {e}"))
    return [p for _, p in sorted(problems)]


def new_zone(path: str, name: str, kind: str | None, code: str | None, existing: dict[str, ZoneRow],
             max_depth: int = MAX_DEPTH) -> ZoneRow:
    """One zone to create, checked as an import line is (``existing``: at least its ancestors and
    the zone holding ``code``); ValueError saying what is wrong."""
    data = {"path": path, "name": name, "kind": kind, "code": code}
    r = _check_record(Record(0, {k: v for k, v in data.items() if v is not None}), {}, {}, max_depth)
    parent = parent_of(path)
    if parent and parent not in existing:
        raise ValueError(f"unknown parent zone {parent}; add it first")
    _place(r, {p: z.kind for p, z in existing.items()}, {z.code: p for p, z in existing.items() if z.code})
    return ZoneRow(r.path, r.name, r.kind or "", r.code)


def check_import(records: list[Record], existing: dict[str, ZoneRow],
                 max_depth: int = MAX_DEPTH) -> list[ZoneRow]:
    """Validate a zone import against the zones already stored (path -> ZoneRow).

    Returns the zones to create, parents first, each with its kind (given, or the default for
    its place) and code; zones that exist as given are skipped (re-importing a file is
    harmless). Raises ImportRefused listing every problem with its line.
    """
    problems: list[str] = []
    seen: dict[str, int] = {}
    rows: list[_Line] = []
    for rec in records:
        try:
            rows.append(_check_record(rec, seen, existing, max_depth))
        except ValueError as e:
            problems.append(f"line {rec.line}: {e}")
    # Parents are checked once every line is read: a parent may come later in the file.
    for r in rows:
        parent = parent_of(r.path)
        if parent and parent not in seen and parent not in existing:
            problems.append(f"line {r.line}: unknown parent zone {parent} of {r.path}; "
                            "add it first or include it in the file")
    if not problems:
        problems = _resolve_kinds(rows, existing)
    if problems:
        raise ImportRefused("zone import", problems)
    new = [ZoneRow(r.path, r.name, r.kind or "", r.code) for r in rows if r.path not in existing]
    return sorted(new, key=lambda z: z.path.count("/"))


def check_rename(current: ZoneRow, parent_kind: str | None, child_kinds: list[str], name: str,
                 kind: str | None, code: str | None, code_holder: str | None) -> ZoneRow:
    """The zone as it is after a rename: its new name, and kind and code when given (a xã
    becoming a phường keeps its code). ValueError if the new kind does not fit under the parent
    or over a child, the code is not one of its kind, or ``code_holder`` (the zone that has the
    code now) is another zone."""
    ks = kinds()
    name = normalize_name(name)
    new_kind = kind or current.kind
    k = ks.check_place(new_kind, parent_kind)
    for child in sorted(set(child_kinds)):
        ks.check_place(child, new_kind)
    new_code = current.code if code is None else (code or None)
    if new_code is not None and new_code != current.code:
        k.check_code(new_code)
        if code_holder is not None and code_holder != current.path:
            raise ValueError(f"code {new_code} is already the code of {code_holder}")
    elif new_code is not None and kind is not None:
        k.check_code(new_code)  # the kept code must suit the new kind
    if (name, new_kind, new_code) == (current.name, current.kind, current.code):
        raise ValueError("nothing to change: give a new name, kind or code")
    return ZoneRow(current.path, name, new_kind, new_code)


def name_in_force(history: list[tuple[Any, str]], current: str, when: Any) -> str:
    """The name a zone had at ``when``: ``history`` is its (valid_until, name) pairs, in any order;
    past the last one, the current name."""
    for until, name in sorted(history):
        if when < until:
            return name
    return current
