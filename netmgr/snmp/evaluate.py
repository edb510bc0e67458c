"""Turn an AP's fetched varbinds into what people ask about: system, interfaces, radios, clients.

Pure functions over (profile, scalar varbinds, walked columns). A profile OID
the agent does not have yields None / nothing, never an exception: agents
differ by firmware, and a half-answering AP is still worth reporting.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from netmgr.snmp.profiles import ClientSource, Column, Interfaces, Profile, Radios
from netmgr.snmp.types import OID, Tag, VarBind

HR_STORAGE_RAM = (1, 3, 6, 1, 2, 1, 25, 2, 1, 2)  # HOST-RESOURCES-TYPES::hrStorageRam


@dataclass
class Interface:
    index: int
    name: str
    descr: str = ""
    alias: str = ""
    type: int | None = None
    oper_status: int | None = None
    speed_bps: int | None = None
    in_octets: int | None = None
    out_octets: int | None = None
    counter_bits: int = 32
    in_errors: int | None = None
    out_errors: int | None = None


@dataclass
class Radio:
    name: str
    channel: int | None = None
    noise_dbm: int | None = None
    clients: int | None = None
    tx_power: int | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    """One numeric table cell: metric ``{table}_{column}``, its type and unit, row labels, value."""

    metric: str
    type: str
    unit: str | None
    labels: dict[str, str]
    value: int


@dataclass
class PollResult:
    """Everything one poll learned; ``asdict`` gives the JSON of ``netmgr ap poll --json``."""

    profile: str
    vendor: str
    family: str
    sys_descr: str = ""
    sys_object_id: str = ""
    sys_name: str = ""
    sys_location: str = ""
    uptime_ticks: int | None = None
    interfaces: list[Interface] = field(default_factory=list)
    radios: list[Radio] = field(default_factory=list)
    clients_total: int | None = None
    clients_by_ssid: dict[str, int] = field(default_factory=dict)
    clients_by_radio: dict[str, int] = field(default_factory=dict)
    cpu_pct: float | None = None
    mem_used_bytes: int | None = None
    mem_total_bytes: int | None = None
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def convert(vb: VarBind | None, col: Column) -> Any:
    """A varbind's value as the profile's type says; None when absent or an exception."""
    if vb is None or vb.is_exception or vb.tag == Tag.NULL:
        return None
    v = vb.value
    if col.type == "string":
        if isinstance(v, bytes):
            return v.split(b"\0", 1)[0].decode("utf-8", "replace").strip()
        return str(v)
    if col.type == "oid":
        return ".".join(map(str, v)) if isinstance(v, tuple) else None
    if col.type == "ipaddress":
        return ".".join(str(b) for b in v) if isinstance(v, bytes) and len(v) == 4 else None
    if isinstance(v, int):
        return v
    if isinstance(v, bytes):
        # Some agents (NET-SNMP-EXTEND, a few vendors) send numbers as strings; Aruba sends
        # channels as "36E" or "149+": the leading number is the value.
        m = _LEADING_INT.match(v)
        return int(m.group(1)) if m else None
    return None


_LEADING_INT = re.compile(rb"\s*(-?\d+)")

Rows = dict[OID, dict[str, Any]]


def build_tables(profile: Profile, columns: dict[OID, list[VarBind]]) -> dict[str, Rows]:
    """Per table: row index -> {column: value}, rows in index order."""
    tables: dict[str, Rows] = {}
    for t in profile.tables.values():
        rows: Rows = {}
        for cname, col in t.columns.items():
            base = col.oid_t
            n = len(base)
            for vb in columns.get(base, ()):
                if vb.oid[:n] != base:
                    continue
                rows.setdefault(vb.oid[n:], {})[cname] = convert(vb, col)
        tables[t.name] = dict(sorted(rows.items()))
    return tables


def resolve(ref: str | None, table: str, index: OID, row: dict[str, Any], tables: dict[str, Rows]) -> Any:
    if ref is None:
        return None
    if ref == "index":
        return ".".join(map(str, index))
    m = re.fullmatch(r"index\[(-?\d+)\]", ref)
    if m:
        try:
            return index[int(m.group(1))]
        except IndexError:
            return None
    if "." in ref:
        t, c = ref.split(".", 1)
        key = index
        if "@" in c:  # "table.col@a:b": the other table's row at a slice of this row's index
            c, sl = c.split("@", 1)
            a, b = (int(x) if x else None for x in sl.split(":", 1))
            key = index[a:b]
        return tables.get(t, {}).get(key, {}).get(c)
    return row.get(ref)


def decode_extend_name(index: OID) -> str | None:
    """NET-SNMP-EXTEND-MIB indexes rows by the extend's name: length, then one arc per byte."""
    if not index or index[0] != len(index) - 1:
        return None
    try:
        return bytes(index[1:]).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def evaluate(profile: Profile, scalars: dict[OID, VarBind], columns: dict[OID, list[VarBind]]) -> PollResult:
    """Everything the profile says about one AP from one poll's varbinds."""
    s = {name: convert(scalars.get(sc.oid_t), sc) for name, sc in profile.scalars.items()}
    r = PollResult(profile.name, profile.vendor, profile.family,
                   sys_descr=s.get("sys_descr") or "", sys_object_id=s.get("sys_object_id") or "",
                   sys_name=s.get("sys_name") or "", sys_location=s.get("sys_location") or "",
                   uptime_ticks=s.get("sys_uptime"))
    r.missing = sorted(n for n, v in s.items() if v is None)
    tables = build_tables(profile, columns)
    r.interfaces = _interfaces(profile.interfaces, tables.get(profile.interfaces.table, {}))
    _clients(profile, s, tables, r)
    _radios(profile, tables, r)
    _cpu(profile, s, tables, r)
    _memory(profile, s, tables, r)
    return r


def _interfaces(m: Interfaces, rows: Rows) -> list[Interface]:
    out = []
    for index, row in rows.items():
        if len(index) != 1:
            continue

        def g(role: str, row: dict[str, Any] = row) -> Any:
            return row.get(getattr(m, role))

        hc = g("hc_in_octets") is not None and g("hc_out_octets") is not None
        # ifSpeed is exact but saturates at 2^32-1 (4.29 Gbit/s); ifHighSpeed is rounded to Mbit/s.
        speed, high = _int(g("speed")), _int(g("high_speed"))
        if not speed or speed >= 2**32 - 1:
            speed = high * 1_000_000 if high else speed
        out.append(Interface(
            index=index[0], name=g("name") or g("descr") or f"if{index[0]}",
            descr=g("descr") or "", alias=g("alias") or "", type=_int(g("type")),
            oper_status=_int(g("oper_status")), speed_bps=speed,
            in_octets=_int(g("hc_in_octets") if hc else g("in_octets")),
            out_octets=_int(g("hc_out_octets") if hc else g("out_octets")),
            counter_bits=64 if hc else 32, in_errors=_int(g("in_errors")), out_errors=_int(g("out_errors")),
        ))
    return out


def table_samples(profile: Profile, columns: dict[OID, list[VarBind]]) -> list[Sample]:
    """Every numeric table cell as a labelled sample (snmp_exporter style), for telemetry.

    Labels come from the table's ``labels`` refs plus ``index``; string columns are
    labels, not samples.
    """
    tables = build_tables(profile, columns)
    out: list[Sample] = []
    for t in profile.tables.values():
        numeric = [(n, c) for n, c in t.columns.items() if c.type not in ("string", "oid", "ipaddress")]
        for index, row in tables.get(t.name, {}).items():
            labels = {"index": ".".join(map(str, index))}
            for ref in t.labels:
                v = resolve(ref, t.name, index, row, tables)
                if v not in (None, ""):
                    labels[ref.replace(".", "_").split("@", 1)[0]] = str(v)
            for name, col in numeric:
                v = row.get(name)
                if isinstance(v, int):
                    out.append(Sample(f"{t.name}_{name}", col.type, col.unit, labels, v))
    return out


def _clients(profile: Profile, s: dict[str, Any], tables: dict[str, Rows], r: PollResult) -> None:
    total: int | None = None
    for src in profile.clients:
        n = _client_source(src, s, tables, r)
        if src.total and n is not None:
            total = (total or 0) + n
    r.clients_total = total


def _client_source(
    src: ClientSource, s: dict[str, Any], tables: dict[str, Rows], r: PollResult
) -> int | None:
    """One source's client count (None: the agent does not have it), labelling as it goes."""
    if src.scalar:
        return _int(s.get(src.scalar))
    if src.extend:
        return _extend_clients(src.extend, tables, r)
    assert src.table
    return _table_clients(src, src.table, tables, r)


def _add_count(counts: dict[str, int], label: object, n: int) -> None:
    """Add ``n`` to ``counts[label]``; an absent or empty label counts nowhere."""
    if label not in (None, ""):
        counts[str(label)] = counts.get(str(label), 0) + n


def _extend_clients(pattern: str, tables: dict[str, Rows], r: PollResult) -> int | None:
    """Sum the NET-SNMP-EXTEND outputs whose name fully matches ``pattern`` (groups radio, ssid label)."""
    count: int | None = None
    for index, row in tables.get("extend", {}).items():
        name = decode_extend_name(index)
        m = re.fullmatch(pattern, name or "")
        v = _int(row.get("output"))
        if m is None or v is None:
            continue
        groups = m.groupdict()
        _add_count(r.clients_by_radio, groups.get("radio"), v)
        _add_count(r.clients_by_ssid, groups.get("ssid"), v)
        count = (count or 0) + v
    return count


def _table_clients(src: ClientSource, table: str, tables: dict[str, Rows], r: PollResult) -> int | None:
    """Count (``count``) or sum (``sum``) the rows of ``table`` that pass ``where``, by ssid and radio."""
    count: int | None = None
    if src.count:
        count = 0  # an empty registration table walks to nothing: that is a real zero
    for index, row in tables.get(table, {}).items():
        if src.where and not all(re.search(rx, str(resolve(col, table, index, row, tables) or ""))
                                 for col, rx in src.where.items()):
            continue
        n = (1 if row.get(src.count) is not None else None) if src.count else _int(row.get(src.sum))
        if n is None:
            continue
        count = (count or 0) + n
        _add_count(r.clients_by_ssid, resolve(src.ssid, table, index, row, tables), n)
        _add_count(r.clients_by_radio, resolve(src.radio, table, index, row, tables), n)
    return count


def _radios(profile: Profile, tables: dict[str, Rows], r: PollResult) -> None:
    spec = profile.radios
    if not spec:
        return
    if spec.from_extend:
        _radios_from_extend(spec, tables, r)
        return
    assert spec.table
    for index, row in tables.get(spec.table, {}).items():
        name = resolve(spec.name, spec.table, index, row, tables)
        if name in (None, ""):
            continue

        def get(ref: str | None, index: OID = index, row: dict[str, Any] = row) -> int | None:
            return _int(resolve(ref, spec.table, index, row, tables))

        clients = get(spec.clients)
        if clients is None:
            clients = r.clients_by_radio.get(str(name))
        r.radios.append(Radio(str(name), get(spec.channel), get(spec.noise), clients, get(spec.tx_power)))


def _radios_from_extend(spec: Radios, tables: dict[str, Rows], r: PollResult) -> None:
    found: dict[str, dict[str, int | None]] = {}
    fields = [(f, re.compile(rx)) for f in ("channel", "noise", "clients", "tx_power")
              if (rx := getattr(spec, f)) is not None]
    for index, row in tables.get("extend", {}).items():
        name = decode_extend_name(index) or ""
        for f, rx in fields:
            m = rx.fullmatch(name)
            if m:
                found.setdefault(m.group("radio"), {})[f] = _int(row.get("output"))
    for name, v in sorted(found.items()):
        clients = v.get("clients")
        if clients is None:
            clients = r.clients_by_radio.get(name)
        r.radios.append(Radio(name, v.get("channel"), v.get("noise"), clients, v.get("tx_power")))


def _cpu(profile: Profile, s: dict[str, Any], tables: dict[str, Rows], r: PollResult) -> None:
    c = profile.cpu
    if not c:
        return
    values: list[float] = []
    if c.scalar and s.get(c.scalar) is not None:
        values = [float(s[c.scalar])]
    elif c.table and c.column:
        values = [float(v) for row in tables.get(c.table, {}).values()
                  if (v := _int(row.get(c.column))) is not None]
    if values:
        avg = sum(values) / len(values) * c.scale
        r.cpu_pct = round(100 - avg if c.idle else avg, 2)


def _memory(profile: Profile, s: dict[str, Any], tables: dict[str, Rows], r: PollResult) -> None:
    m = profile.memory
    if not m:
        return
    if m.hr_storage:
        for row in tables.get("hr_storage", {}).values():
            if row.get("type") == ".".join(map(str, HR_STORAGE_RAM)) and row.get("units") and row.get("size"):
                r.mem_total_bytes = row["size"] * row["units"]
                r.mem_used_bytes = (row.get("used") or 0) * row["units"]
                return
        return
    total = _int(s.get(m.total or ""))
    if total is None:
        return
    used = _int(s.get(m.used)) if m.used else None
    if used is None and m.free:
        free = _int(s.get(m.free))
        used = None if free is None else total - free
    r.mem_total_bytes = total * m.unit_bytes
    r.mem_used_bytes = None if used is None else used * m.unit_bytes
