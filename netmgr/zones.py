"""The zone tree: province > district > commune > village.

A zone's id is its path of ASCII slugs (``binh-phuoc/dong-xoai/tan-phu``),
stable for ever: MQTT topics, API scopes and dashboards use it. Its display
name keeps the Vietnamese diacritics (stored NFC-normalised).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from netmgr.errors import ImportRefused
from netmgr.records import Record, parse_records
from netmgr.text import check_name

LEVELS = ("province", "district", "commune", "village")
SEGMENT = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_PATH = 255


def validate_path(path: str) -> str:
    """Return ``path`` if it is a valid zone path, else raise ValueError saying why."""
    if not isinstance(path, str) or not path:
        raise ValueError("zone path is empty")
    if len(path) > MAX_PATH:
        raise ValueError(f"zone path longer than {MAX_PATH} characters")
    parts = path.split("/")
    if len(parts) > len(LEVELS):
        raise ValueError(f"zone path {path!r} is {len(parts)} levels deep; at most 4 "
                         "(province/district/commune/village)")
    for seg in parts:
        if not SEGMENT.match(seg):
            raise ValueError(f"zone path {path!r}: segment {seg!r} must be lowercase ASCII letters, "
                             f"digits and single dashes (e.g. {slugify(seg) or 'tan-phu'!r})")
    return path


def level_of(path: str) -> str:
    """``province``, ``district``, ``commune`` or ``village``: the depth of ``path``."""
    return LEVELS[path.count("/")]


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
    s = name.replace("đ", "d").replace("Đ", "D")
    s = unicodedata.normalize("NFKD", s)
    s = "".join(c for c in s if not unicodedata.combining(c)).lower()
    return re.sub(r"[^a-z0-9]+", "-", s).strip("-")


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


def _record_path(rec: Record) -> str:
    """The zone path of one import record, its ``parent`` column applied; not validated yet.

    Raises ValueError with the problem (without the line prefix).
    """
    unknown = set(rec.data) - {"path", "name", "parent"}
    if unknown:
        raise ValueError(f"unknown column(s) {', '.join(sorted(unknown))}; use path, name")
    raw_path = str(rec.data.get("path", "")).strip()
    parent = str(rec.data.get("parent", "") or "").strip()
    if parent and raw_path and "/" not in raw_path:
        # A child may give only its own segment (nested YAML, or a CSV parent column).
        return f"{parent}/{raw_path}"
    if parent and raw_path and parent_of(raw_path) != parent:
        raise ValueError(f"zone {raw_path} is not directly under its parent {parent}")
    return raw_path


def _check_record(rec: Record, seen: dict[str, int], existing: dict[str, str]) -> tuple[str, str]:
    """The (path, name) of one import record, recording its path in ``seen`` (path -> line).

    Raises ValueError with the record's first problem (without the line prefix).
    """
    path = validate_path(_record_path(rec))
    name = normalize_name(rec.data.get("name", ""))
    if path in seen:
        raise ValueError(f"duplicate zone {path} (also on line {seen[path]})")
    # Recorded even when refused below, so a later line with this path is reported as a
    # duplicate rather than refused a second time for another reason.
    seen[path] = rec.line
    if path in existing and existing[path] != name:
        raise ValueError(f"zone {path} exists as {existing[path]!r}; an import does not rename zones")
    return path, name


def check_import(records: list[Record], existing: dict[str, str]) -> list[tuple[str, str]]:
    """Validate a zone import against the zones already stored (path -> name).

    Returns the (path, name) pairs to create, parents first; zones that exist with
    the same name are skipped (re-importing a file is harmless). Raises
    ImportRefused listing every problem with its line.
    """
    problems: list[str] = []
    seen: dict[str, int] = {}
    rows: list[tuple[int, str, str]] = []
    for rec in records:
        try:
            path, name = _check_record(rec, seen, existing)
        except ValueError as e:
            problems.append(f"line {rec.line}: {e}")
            continue
        rows.append((rec.line, path, name))
    # Parents are checked once every line is read: a parent may come later in the file.
    for line, path, _ in rows:
        parent = parent_of(path)
        if parent and parent not in seen and parent not in existing:
            problems.append(f"line {line}: unknown parent zone {parent} of {path}; "
                            "add it first or include it in the file")
    if problems:
        raise ImportRefused("zone import", problems)
    new = [(p, n) for _, p, n in rows if p not in existing]
    return sorted(new, key=lambda pn: pn[0].count("/"))
