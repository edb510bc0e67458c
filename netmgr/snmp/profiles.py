"""Vendor profiles: what to poll on an AP and what it means, as data (devices/ap/*.yaml).

In the spirit of prometheus snmp_exporter's generator.yml: one file per vendor
family, each OID with its MIB object name in a comment, tables with
index-to-label lookups. Code never says ``if vendor == ...``: a new vendor is one
YAML file plus a recording (devices/README.md).

A profile ``extends`` another (default ``generic``: SNMPv2-MIB system group,
IF-MIB, HOST-RESOURCES-MIB); scalars and tables are inherited and may be added
to; the semantic sections (``clients``, ``cpu``, ``memory``, ``radios``)
replace the parent's when given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from netmgr.errors import ConfigError
from netmgr.paths import devices_dir
from netmgr.snmp.types import OID, parse_oid

ValueType = Literal["gauge", "integer", "counter32", "counter64", "string", "timeticks", "oid", "ipaddress"]
NAME = r"^[a-z][a-z0-9_]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _oid(v: str) -> str:
    parse_oid(str(v))
    return str(v).lstrip(".")


class Column(Strict):
    oid: str
    type: ValueType
    unit: str | None = None
    help: str | None = None

    _check = field_validator("oid", mode="before")(classmethod(lambda cls, v: _oid(v)))

    @cached_property
    def oid_t(self) -> OID:
        return parse_oid(self.oid)


class Scalar(Column):
    name: str = Field(pattern=NAME)

    @field_validator("oid")
    @classmethod
    def _instance(cls, v: str) -> str:
        if not v.endswith(".0") and v.count(".") < 6:
            raise ValueError("a scalar OID names an instance (usually ends in .0)")
        return v


class Table(Strict):
    name: str = Field(pattern=NAME)
    index: str = Field(description="what the row index is, for people")
    columns: dict[str, Column]
    # Refs (see below) that label each row when its numeric columns are exported as
    # metrics, e.g. [ssid, radio] for a VAP table or [if.name@-1:] for a registration table.
    labels: list[str] = Field(default_factory=list)

    @field_validator("columns")
    @classmethod
    def _names(cls, v: dict[str, Column]) -> dict[str, Column]:
        for k in v:
            if not re.match(NAME, k):
                raise ValueError(f"column name {k!r} must be lowercase letters, digits and _")
        return v


# A label or value reference inside a table row:
#   "col"            a column of the same table
#   "table.col"      the same index in another table (e.g. if.name for an ifIndex)
#   "table.col@-1:"  another table's row at a slice of this index (a registration table
#                    indexed by MAC.ifIndex names its interface with if.name@-1:)
#   "index"          the row index as a dotted string
#   "index[-1]"      one arc of the row index
Ref = str


class ClientSource(Strict):
    """Where client counts come from. Exactly one of sum/count/scalar/extend."""

    table: str | None = None
    sum: str | None = None  # a gauge column summed over rows
    count: str | None = None  # a column whose rows are counted (a registration table)
    scalar: str | None = None  # a scalar holding the total
    extend: str | None = None  # regex on NET-SNMP-EXTEND names; their one-line output is a count
    ssid: Ref | None = None
    radio: Ref | None = None
    where: dict[str, str] | None = None  # only rows whose column matches the regex
    # false: this source only labels clients per SSID/radio; the total comes from another
    # source (an agent with both a per-radio and a per-SSID table would otherwise count twice).
    total: bool = True

    @model_validator(mode="after")
    def _one(self) -> ClientSource:
        kinds = [k for k in ("sum", "count", "scalar", "extend") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError("a client source has exactly one of sum, count, scalar, extend")
        if kinds[0] in ("sum", "count") and not self.table:
            raise ValueError(f"'{kinds[0]}' needs 'table'")
        if not self.total and not (self.ssid or self.radio or self.extend):
            raise ValueError("'total: false' only makes sense with an 'ssid' or 'radio' label")
        return self


class Cpu(Strict):
    scalar: str | None = None
    table: str | None = None
    column: str | None = None
    idle: bool = False  # the value is idle %, not load
    scale: float = 1.0


class Memory(Strict):
    """Either scalars (total with used or free) or HOST-RESOURCES hrStorage RAM rows."""

    total: str | None = None
    used: str | None = None
    free: str | None = None
    unit_bytes: int = 1
    hr_storage: bool = False


class Interfaces(Strict):
    """Which table holds the interfaces and which of its columns play which role.

    The defaults are the generic profile's IF-MIB column names; a vendor table that
    uses the same names only needs ``table``.
    """

    table: str = "if"
    name: str = "name"
    descr: str = "descr"
    alias: str = "alias"
    type: str = "type"
    oper_status: str = "oper_status"
    speed: str = "speed"  # bit/s (ifSpeed)
    high_speed: str = "high_speed"  # Mbit/s (ifHighSpeed): used when ifSpeed is absent, 0 or saturated
    in_octets: str = "in_octets"
    out_octets: str = "out_octets"
    hc_in_octets: str = "hc_in_octets"  # Counter64, preferred when both directions are present
    hc_out_octets: str = "hc_out_octets"
    in_errors: str = "in_errors"
    out_errors: str = "out_errors"


class Radios(Strict):
    """One radio per row of ``table`` (fields are refs), or, with ``from_extend``, radios
    read from NET-SNMP-EXTEND outputs (fields are regexes on extend names with a
    ``(?P<radio>...)`` group naming the radio, e.g. ``noise-floor-(?P<radio>wlan\\d+)``)."""

    table: str | None = None
    name: Ref | None = None
    channel: Ref | None = None
    noise: Ref | None = None
    clients: Ref | None = None
    tx_power: Ref | None = None
    from_extend: bool = False

    @model_validator(mode="after")
    def _shape(self) -> Radios:
        if self.from_extend:
            if self.table or self.name:
                raise ValueError("with from_extend, radios are named by the (?P<radio>...) groups: "
                                 "no table or name")
            for attr in ("channel", "noise", "clients", "tx_power"):
                rx = getattr(self, attr)
                if rx is not None and "radio" not in re.compile(rx).groupindex:
                    raise ValueError(f"{attr}: the regex needs a (?P<radio>...) group")
        elif not (self.table and self.name):
            raise ValueError("radios needs 'table' and 'name' (or from_extend: true)")
        return self


class Probe(Strict):
    oid: str
    regex: str

    _check = field_validator("oid", mode="before")(classmethod(lambda cls, v: _oid(v)))


class Match(Strict):
    sys_object_id: list[str] = Field(default_factory=list)
    sys_descr: str | None = None
    probe: Probe | None = None
    priority: int = 0

    @field_validator("sys_object_id")
    @classmethod
    def _oids(cls, v: list[str]) -> list[str]:
        return [_oid(x) for x in v]

    @field_validator("sys_descr")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            re.compile(v)
        return v


class ProfileFile(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    vendor: str
    family: str
    extends: str | None = "generic"
    match: Match = Field(default_factory=Match)
    max_repetitions: int | None = Field(None, ge=1, le=200)
    bulk: bool = True
    notes: str | None = None
    scalars: list[Scalar] = Field(default_factory=list)
    tables: list[Table] = Field(default_factory=list)
    clients: list[ClientSource] | None = None
    cpu: Cpu | None = None
    memory: Memory | None = None
    radios: Radios | None = None
    interfaces: Interfaces | None = None


@dataclass
class Profile:
    """A profile with its parents merged in: ready to plan a poll and evaluate it."""

    name: str
    vendor: str
    family: str
    match: Match
    max_repetitions: int | None
    bulk: bool
    scalars: dict[str, Scalar]
    tables: dict[str, Table]
    clients: list[ClientSource]
    cpu: Cpu | None
    memory: Memory | None
    radios: Radios | None
    interfaces: Interfaces = field(default_factory=Interfaces)
    source: Path | None = None
    chain: list[str] = field(default_factory=list)

    def fetch_plan(self) -> tuple[list[OID], list[OID]]:
        """(scalar OIDs for GET, column OIDs for one multi-column walk)."""
        scalars = [s.oid_t for s in self.scalars.values()]
        if self.match.probe and parse_oid(self.match.probe.oid) not in scalars:
            scalars.append(parse_oid(self.match.probe.oid))
        columns = [c.oid_t for t in self.tables.values() for c in t.columns.values()]
        return scalars, columns


class Profiles:
    """All profiles of a folder, merged, with matching."""

    def __init__(self, profiles: dict[str, Profile]) -> None:
        self.by_name = profiles
        self._ordered = sorted(
            (p for p in profiles.values() if p.match.sys_object_id),
            key=lambda p: (-p.match.priority, -max(len(o) for o in p.match.sys_object_id)),
        )

    def __getitem__(self, name: str) -> Profile:
        return self.by_name[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)

    def candidates(self, sys_object_id: str, sys_descr: str) -> list[Profile]:
        """Profiles whose sysObjectID prefix and sysDescr regex match, best first (probes not run)."""
        out = []
        for p in self._ordered:
            prefixes = p.match.sys_object_id
            if not any(sys_object_id == o or sys_object_id.startswith(o + ".") for o in prefixes):
                continue
            if p.match.sys_descr and not re.search(p.match.sys_descr, sys_descr or ""):
                continue
            out.append(p)
        out.sort(key=lambda p: (-p.match.priority,
                                -max(len(o) for o in p.match.sys_object_id
                                     if sys_object_id == o or sys_object_id.startswith(o + "."))))
        return out

    def match(
        self, sys_object_id: str, sys_descr: str, probe_values: dict[str, str] | None = None
    ) -> Profile:
        """The best profile; one with a probe needs the probe OID's value in ``probe_values``."""
        for p in self.candidates(sys_object_id, sys_descr):
            if p.match.probe:
                v = (probe_values or {}).get(p.match.probe.oid)
                if v is None or not re.search(p.match.probe.regex, v):
                    continue
            return p
        return self.by_name["generic"]

    def probes(self, sys_object_id: str, sys_descr: str) -> list[str]:
        return [p.match.probe.oid for p in self.candidates(sys_object_id, sys_descr) if p.match.probe]


def _merge(files: dict[str, tuple[Path, ProfileFile]], name: str, seen: tuple[str, ...] = ()) -> Profile:
    path, f = files[name]
    if name in seen:
        raise ValueError(f"extends loop: {' -> '.join((*seen, name))}")
    if f.extends:
        if f.extends not in files:
            raise ValueError(f"extends: unknown profile {f.extends!r}")
        base = _merge(files, f.extends, (*seen, name))
    else:
        base = Profile(name, f.vendor, f.family, f.match, None, True, {}, {}, [], None, None, None)
    scalars = dict(base.scalars)
    for s in f.scalars:
        scalars[s.name] = s
    tables = dict(base.tables)
    for t in f.tables:
        tables[t.name] = t
    return Profile(
        name=f.name, vendor=f.vendor, family=f.family, match=f.match,
        max_repetitions=f.max_repetitions or base.max_repetitions, bulk=f.bulk and base.bulk,
        scalars=scalars, tables=tables,
        clients=f.clients if f.clients is not None else base.clients,
        cpu=f.cpu or base.cpu, memory=f.memory or base.memory, radios=f.radios or base.radios,
        interfaces=f.interfaces or base.interfaces,
        source=path, chain=[*base.chain, f.name] if f.extends else [f.name],
    )


def _ref_problems(p: Profile, table: str, ref: Ref | None, where: str) -> list[str]:
    """Problems with one row reference ``ref`` used in ``table`` (see ``Ref``); [] when it resolves."""
    if ref is None or ref == "index" or re.fullmatch(r"index\[-?\d+\]", ref):
        return []
    if "." not in ref:
        if table not in p.tables or ref not in p.tables[table].columns:
            return [f"{where}: {ref!r} is not a column of table {table!r}"]
        return []
    problems = []
    t, c = ref.split(".", 1)
    if "@" in c:
        c, sl = c.split("@", 1)
        if not re.fullmatch(r"-?\d*:-?\d*", sl):
            problems.append(f"{where}: {ref!r}: after '@' comes an index slice like -1: or :6")
    # Checked even after a bad slice: a ref can be wrong in both ways and both are reported.
    if t not in p.tables or c not in p.tables[t].columns:
        problems.append(f"{where}: lookup {ref!r} names no table.column")
    return problems


def _check_clients(p: Profile) -> list[str]:
    """Problems in the ``clients`` sources, source by source."""
    problems: list[str] = []
    for i, c in enumerate(p.clients):
        where = f"clients[{i}]"
        if c.table and c.table not in p.tables:
            # Its refs cannot resolve either: one line for the cause is enough.
            problems.append(f"{where}: unknown table {c.table!r}")
            continue
        for attr in ("sum", "count", "ssid", "radio"):
            problems += _ref_problems(p, c.table or "", getattr(c, attr), f"{where}.{attr}")
        for col in (c.where or {}):
            problems += _ref_problems(p, c.table or "", col, f"{where}.where")
        if c.scalar and c.scalar not in p.scalars:
            problems.append(f"{where}.scalar: unknown scalar {c.scalar!r}")
        if c.extend and "extend" not in p.tables:
            problems.append(f"{where}.extend: needs the 'extend' table (NET-SNMP-EXTEND-MIB)")
    return problems


def _check_cpu(p: Profile) -> list[str]:
    """Problems in the ``cpu`` section."""
    problems: list[str] = []
    if not p.cpu:
        return problems
    if p.cpu.scalar and p.cpu.scalar not in p.scalars:
        problems.append(f"cpu.scalar: unknown scalar {p.cpu.scalar!r}")
    if p.cpu.table:
        problems += _ref_problems(p, p.cpu.table, p.cpu.column, "cpu.column")
        if p.cpu.table not in p.tables:
            problems.append(f"cpu.table: unknown table {p.cpu.table!r}")
    return problems


def _check_memory(p: Profile) -> list[str]:
    """Problems in the ``memory`` section (none to check when it reads hrStorage)."""
    if not p.memory or p.memory.hr_storage:
        return []
    problems = [f"memory.{attr}: unknown scalar {v!r}"
                for attr in ("total", "used", "free")
                if (v := getattr(p.memory, attr)) and v not in p.scalars]
    if not p.memory.total or not (p.memory.used or p.memory.free):
        problems.append("memory: needs total and one of used/free (or hr_storage: true)")
    return problems


def _check_radios(p: Profile) -> list[str]:
    """Problems in the ``radios`` section."""
    if not p.radios:
        return []
    if p.radios.from_extend:
        if "extend" not in p.tables:
            return ["radios.from_extend: needs the 'extend' table (NET-SNMP-EXTEND-MIB)"]
        return []
    if not p.radios.table:
        return []
    if p.radios.table not in p.tables:
        return [f"radios.table: unknown table {p.radios.table!r}"]
    problems: list[str] = []
    for attr in ("name", "channel", "noise", "clients", "tx_power"):
        problems += _ref_problems(p, p.radios.table, getattr(p.radios, attr), f"radios.{attr}")
    return problems


def _check_interfaces(p: Profile) -> list[str]:
    """Problems in the ``interfaces`` roles; only roles the profile set are checked."""
    itf = p.interfaces
    if itf.table not in p.tables:
        # The default table ("if") is only there in profiles that inherit IF-MIB; one without
        # it simply has no interfaces. A table the profile names itself must exist.
        if "table" in itf.model_fields_set:
            return [f"interfaces.table: unknown table {itf.table!r}"]
        return []
    problems: list[str] = []
    for role in sorted(itf.model_fields_set - {"table"}):
        problems += _ref_problems(p, itf.table, getattr(itf, role), f"interfaces.{role}")
    return problems


def _check_labels(p: Profile) -> list[str]:
    """Problems in the tables' ``labels`` refs."""
    problems: list[str] = []
    for t in p.tables.values():
        for i, ref in enumerate(t.labels):
            problems += _ref_problems(p, t.name, ref, f"tables.{t.name}.labels[{i}]")
    return problems


def _check_oids(p: Profile) -> list[str]:
    """OIDs used twice: scalars first, then table columns, each against all before it."""
    problems: list[str] = []
    oids: dict[str, str] = {}
    for s in p.scalars.values():
        if s.oid in oids:
            problems.append(f"scalar {s.name}: OID {s.oid} also used by {oids[s.oid]}")
        oids[s.oid] = s.name
    for t in p.tables.values():
        for cname, c in t.columns.items():
            if c.oid in oids:
                problems.append(f"table {t.name}.{cname}: OID {c.oid} also used by {oids[c.oid]}")
            oids[c.oid] = f"{t.name}.{cname}"
    return problems


def _check_refs(p: Profile) -> list[str]:
    """Cross-references: every table/column/scalar a semantic section names exists."""
    # The order of the sections is the order problems are reported in.
    checks = (_check_clients, _check_cpu, _check_memory, _check_radios, _check_interfaces,
              _check_labels, _check_oids)
    return [problem for check in checks for problem in check(p)]


def load_profiles(directory: Path | None = None) -> Profiles:
    """Load and check every profile; raise ConfigError listing every problem with its file."""
    d = directory or devices_dir() / "ap"
    files: dict[str, tuple[Path, ProfileFile]] = {}
    problems: list[str] = []
    for path in sorted(d.glob("*.yaml")):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            pf = ProfileFile.model_validate(raw)
        except yaml.YAMLError as e:
            problems.append(f"{path.name}: not valid YAML: {e}")
            continue
        except ValidationError as e:
            problems += [f"{path.name}: {'.'.join(map(str, err['loc']))}: "
                         f"{err['msg'].removeprefix('Value error, ')}" for err in e.errors()]
            continue
        if pf.name != path.stem:
            problems.append(f"{path.name}: name: {pf.name!r} must equal the file name {path.stem!r}")
        files[pf.name] = (path, pf)
    if "generic" not in files and not problems:
        problems.append(f"{d}: no generic.yaml (the fallback for any agent)")
    merged: dict[str, Profile] = {}
    for name, (path, _) in files.items():
        try:
            merged[name] = _merge(files, name)
        except ValueError as e:
            problems.append(f"{path.name}: {e}")
            continue
        problems += [f"{path.name}: {m}" for m in _check_refs(merged[name])]
    if problems:
        raise ConfigError(str(d), problems)
    return Profiles(merged)
