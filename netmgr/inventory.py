"""Inventory records (APs and speakers): validation shared by the API and file imports."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from netmgr.errors import ImportRefused
from netmgr.records import Record
from netmgr.refs import NODE_ID, NODE_ID_SCHEMA, TITLE_PATTERN, ZonePath
from netmgr.text import check_name

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,253})$")


def _tags(v: Any) -> dict[str, str]:
    """``{"k": "v"}`` as is, or ``"k=v;k2=v2"`` from CSV."""
    if v is None or v == "":
        return {}
    if isinstance(v, str):
        out = {}
        for part in v.split(";"):
            if not part.strip():
                continue
            k, sep, val = part.partition("=")
            if not sep:
                raise ValueError(f"tag {part!r} must be key=value")
            out[k.strip()] = val.strip()
        v = out
    if not isinstance(v, dict) or len(v) > 32:
        raise ValueError("tags must be a mapping of at most 32 key=value pairs")
    return {str(k)[:64]: str(val)[:256] for k, val in v.items()}


class Located(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    zone: ZonePath
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, v: Any) -> dict[str, str]:
        return _tags(v)


_V3_USER = {"type": "string", "pattern": r"\S", "maxLength": 64}


class SnmpIn(BaseModel):
    """How to reach an AP's agent. Secrets are write-only: the API never returns them."""

    # What _consistent checks, as the OpenAPI document says it: keys only with a v3 user, a
    # privacy key only with an auth key, version 3 only with a user.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={
        "dependentSchemas": {"auth_key": {"required": ["v3_user"], "properties": {"v3_user": _V3_USER}},
                             "priv_key": {"required": ["v3_user", "auth_key"],
                                          "properties": {"v3_user": _V3_USER,
                                                         "auth_key": {"type": "string"}}}},
        "anyOf": [{"properties": {"version": {"const": "2c"}}},
                  {"required": ["v3_user"], "properties": {"v3_user": _V3_USER}}]})
    version: Literal["2c", "3"] = "2c"
    community: SecretStr | None = None
    v3_user: str | None = Field(None, max_length=64)
    auth_proto: Literal["SHA", "SHA256", "MD5"] | None = None
    auth_key: SecretStr | None = Field(None, json_schema_extra={"minLength": 8})  # RFC 3414
    priv_proto: Literal["AES", "AES256", "DES"] | None = None
    priv_key: SecretStr | None = Field(None, json_schema_extra={"minLength": 8})

    @model_validator(mode="after")
    def _consistent(self) -> SnmpIn:
        if self.v3_user and self.version == "2c":
            self.version = "3"
        if self.version == "3":
            if not self.v3_user:
                raise ValueError("SNMPv3 needs v3_user")
            if self.priv_key and not self.auth_key:
                raise ValueError("a privacy key needs an auth key too (authPriv)")
            for key in (self.auth_key, self.priv_key):
                if key is not None and len(key.get_secret_value()) < 8:
                    raise ValueError("SNMPv3 keys must be at least 8 characters (RFC 3414)")
            self.auth_proto = self.auth_proto or ("SHA" if self.auth_key else None)
            self.priv_proto = self.priv_proto or ("AES" if self.priv_key else None)
        elif self.auth_key or self.priv_key:
            raise ValueError("auth_key/priv_key need SNMPv3 (give v3_user)")
        return self


class ApIn(Located):
    name: str = Field(json_schema_extra={"pattern": NAME.pattern})
    host: str = Field(json_schema_extra={"anyOf": [{"pattern": HOST.pattern}, {"format": "ipv4"},
                                                   {"format": "ipv6"}]})
    port: int = Field(161, ge=1, le=65535)
    snmp: SnmpIn = Field(default_factory=SnmpIn)
    profile: str | None = Field(None, max_length=64)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("AP name: 1-128 letters, digits, '.', '_' or '-', "
                             "starting with a letter or digit")
        return v

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        try:
            return str(ipaddress.ip_address(v))
        except ValueError:
            if HOST.match(v):
                return v.lower()
        raise ValueError(f"host {v!r} is neither an IP address nor a host name")


class SpeakerIn(Located):
    id: str = Field(json_schema_extra=NODE_ID_SCHEMA)
    name: str = Field("", max_length=128, json_schema_extra={"pattern": TITLE_PATTERN})
    model: str = Field("", max_length=64, json_schema_extra={"pattern": TITLE_PATTERN})

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not NODE_ID.match(v):
            raise ValueError("node id: 1-64 lowercase ASCII letters, digits and '-' "
                             "(it is the MQTT identity)")
        return v

    @field_validator("name", "model")
    @classmethod
    def _printable(cls, v: str, info: ValidationInfo) -> str:
        return check_name(v, f"speaker {info.field_name}")


AP_FLAT_SNMP = ("version", "community", "v3_user", "auth_proto", "auth_key", "priv_proto", "priv_key")


def ap_from_record(data: dict[str, Any]) -> ApIn:
    """A flat import row (CSV columns or YAML keys) as an ApIn; SNMP keys may be flat or nested."""
    data = dict(data)
    snmp = dict(data.pop("snmp", None) or {})
    for k in AP_FLAT_SNMP:
        if k in data:
            snmp[k] = str(data.pop(k))
    if "snmp_version" in data:
        snmp["version"] = str(data.pop("snmp_version"))
    return ApIn.model_validate({**data, "snmp": snmp})


def _errors(e: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in err['loc']) or 'entry'}: {err['msg'].removeprefix('Value error, ')}"
            for err in e.errors()]


def validate_records(records: list[Record], kind: Literal["ap", "speaker"]) -> list[tuple[int, Any]]:
    """Validate every row; raise ImportRefused listing every problem as ``line N: field: message``."""
    problems: list[str] = []
    out: list[tuple[int, Any]] = []
    seen: dict[str, int] = {}
    for rec in records:
        try:
            item = ap_from_record(rec.data) if kind == "ap" else SpeakerIn.model_validate(rec.data)
        except ValidationError as e:
            problems += [f"line {rec.line}: {m}" for m in _errors(e)]
            continue
        key = item.name if kind == "ap" else item.id
        if key in seen:
            problems.append(f"line {rec.line}: duplicate {kind} {key} (also on line {seen[key]})")
            continue
        seen[key] = rec.line
        out.append((rec.line, item))
    if problems:
        raise ImportRefused(f"{kind} import", problems)
    return out
