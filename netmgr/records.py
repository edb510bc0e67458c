"""Reading CSV or YAML files of records (zones, APs, speakers) with line numbers.

Imports are all-or-nothing: every problem is collected as ``line N: message``
and the whole file is refused if there is any.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from netmgr.errors import ImportRefused, UsageError


@dataclass
class Record:
    line: int
    data: dict[str, Any]


def detect_format(name: str, text: str) -> str:
    lower = name.lower()
    if lower.endswith((".yaml", ".yml", ".json")):
        return "yaml"  # JSON is read by the YAML parser (a list of objects)
    if lower.endswith(".csv"):
        return "csv"
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    yaml_like = first.startswith(("-", "#", "---", "[")) or (":" in first and "," not in first)
    return "yaml" if yaml_like else "csv"


def parse_records(text: str, fmt: str, what: str) -> list[Record]:
    """Records with the line each starts on. CSV needs a header row; YAML is a list of mappings."""
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise ImportRefused(what, ["line 1: empty file; the first line must name the columns"])
        out = []
        for row in reader:
            if None in row:
                raise ImportRefused(what, [f"line {reader.line_num}: more values than columns"])
            data = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k}
            data = {k: v for k, v in data.items() if v not in ("", None)}
            if data:
                out.append(Record(reader.line_num, data))
        if not out:
            raise ImportRefused(what, ["line 2: no entries below the header row; if the file is YAML or "
                                       "JSON, name it .yaml or .json or pass --format yaml"])
        return out
    if fmt == "yaml":
        import yaml

        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark else "line ?"
            raise ImportRefused(what, [f"{where}: not valid YAML: {getattr(e, 'problem', e)}"]) from None
        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise ImportRefused(what, [f"line {node.start_mark.line + 1}: expected a list of entries"])
        out = []
        for item in node.value:
            line = item.start_mark.line + 1
            data = yaml.safe_load(yaml.serialize(item))
            if not isinstance(data, dict):
                raise ImportRefused(what, [f"line {line}: each entry must be a mapping of keys to values"])
            out.append(Record(line, data))
        return out
    raise UsageError(f"{what}: unknown format {fmt!r}; use csv or yaml")
