"""The speaker protocol (docs/protocol.md is the spec): topics, payloads, parsers.

Parsers are hand-written rather than pydantic models because the daemon runs
every telemetry message of ~2,000 nodes through them (target: 20,000 messages
per CPU-second end to end); they check exactly what the JSON Schemas in
``netmgr/radio/schemas/`` say, and a test holds the two in agreement.

Every parser takes the raw payload bytes and returns a plain object or raises
:class:`BadMessage` naming the field and what was wrong.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from netmgr.errors import BadMessage
from netmgr.refs import NODE_ID, check_node_id, check_zone

ROOT = "netmgr/v1"
MAX_PAYLOAD = 8 * 1024            # status, telemetry, reply, cmd
MAX_SCHEDULE_PAYLOAD = 256 * 1024  # the retained schedule document
CMD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
PRIORITIES = ("normal", "priority", "emergency")
PRIORITY_RANK = {"normal": 1, "priority": 2, "emergency": 3}
METHODS = ("play", "stop", "volume", "sync", "reboot", "ping")
REPLY_STATES = ("accepted", "playing", "done", "error")
NETS = ("4g", "wifi", "eth", "other")
SCHEDULE_ACK_ID = "schedule"

# QoS and retain per topic kind (docs/protocol.md, "Topics").
QOS = {"status": 1, "telemetry": 0, "reply": 1, "cmd": 1, "schedule": 1}
RETAIN = {"status": True, "telemetry": False, "reply": False, "cmd": False, "schedule": True}


# ----------------------------------------------------------------------------- topics

def node_topic(node_id: str, kind: str) -> str:
    """``netmgr/v1/node/{id}/{kind}``; kind is status, telemetry, cmd, reply or schedule.
    ValueError if ``node_id`` is not a node id (a '+', '#' or '/' would change the topic)."""
    return f"{ROOT}/node/{check_node_id(node_id)}/{kind}"


def node_topic_filter(kind: str) -> str:
    """``netmgr/v1/node/+/{kind}``: the subscription to ``kind`` of every node."""
    return f"{ROOT}/node/+/{kind}"


def zone_topic(zone: str) -> str:
    """``netmgr/v1/zone/{path}/cmd``: one publish reaches every node of the zone and below.
    ValueError if ``zone`` is not a zone path."""
    return f"{ROOT}/zone/{check_zone(zone)}/cmd"


def zone_topics(zone: str) -> list[str]:
    """The zone command topics a node in ``zone`` subscribes to: its zone and every ancestor."""
    parts = zone.split("/")
    return [zone_topic("/".join(parts[: i + 1])) for i in range(len(parts))]


_NODE_PREFIX = ROOT + "/node/"


def parse_node_topic(topic: str) -> tuple[str, str] | None:
    """``netmgr/v1/node/n-1/telemetry`` -> ``("n-1", "telemetry")``; None if not a node topic."""
    if not topic.startswith(_NODE_PREFIX):
        return None
    rest = topic[len(_NODE_PREFIX):]
    node_id, sep, kind = rest.partition("/")
    if not sep or "/" in kind or not NODE_ID.match(node_id):
        return None
    return node_id, kind


# ----------------------------------------------------------------------------- helpers

def _load(kind: str, payload: bytes, limit: int = MAX_PAYLOAD) -> dict[str, Any]:
    if len(payload) > limit:
        raise BadMessage(kind, f"payload of {len(payload)} bytes is over the {limit}-byte limit")
    try:
        doc = _decode(payload.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise BadMessage(kind, f"not JSON: {e}"[:300]) from None
    except RecursionError:
        raise BadMessage(kind, "not JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise BadMessage(kind, f"payload must be a JSON object, got {type(doc).__name__}")
    return doc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Built once: json.loads(payload, parse_constant=...) builds a decoder on every call.
_decode = json.JSONDecoder(parse_constant=_no_constant).decode


def _num(kind: str, doc: dict[str, Any], key: str, *, required: bool = False,
         lo: float | None = None, hi: float | None = None) -> float | None:
    v = doc.get(key)
    if v is None:
        if required:
            raise BadMessage(kind, f"{key}: required number is missing")
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise BadMessage(kind, f"{key}: must be a number, got {v!r}"[:200])
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        lo_s = "" if lo is None else f"{lo:g}"
        hi_s = "" if hi is None else f"{hi:g}"
        raise BadMessage(kind, f"{key}: {v!r} is outside {lo_s}..{hi_s}")
    return v


def _int(kind: str, doc: dict[str, Any], key: str, *, required: bool = False,
         lo: int = 0, hi: int = 2**53) -> int | None:
    v = doc.get(key)
    if v is None:
        if required:
            raise BadMessage(kind, f"{key}: required integer is missing")
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)  # 60.0 is an integer in JSON Schema too
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadMessage(kind, f"{key}: must be an integer, got {v!r}"[:200])
    if v < lo or v > hi:
        raise BadMessage(kind, f"{key}: {v} is outside {lo}..{hi}")
    return v


def _str(kind: str, doc: dict[str, Any], key: str, *, required: bool = False, max_len: int = 64,
         choices: tuple[str, ...] | None = None) -> str | None:
    v = doc.get(key)
    if v is None:
        if required:
            raise BadMessage(kind, f"{key}: required string is missing")
        return None
    if not isinstance(v, str):
        raise BadMessage(kind, f"{key}: must be a string, got {v!r}"[:200])
    if len(v) > max_len:
        raise BadMessage(kind, f"{key}: longer than {max_len} characters")
    if choices is not None and v not in choices:
        raise BadMessage(kind, f"{key}: {v!r} is not one of {', '.join(choices)}"[:200])
    return v


def _unknown(kind: str, doc: dict[str, Any], allowed: frozenset[str]) -> None:
    extra = doc.keys() - allowed
    # Unknown keys are tolerated (newer firmware may add fields) but must be x_-prefixed,
    # so a typo ("rsi_dbm") is caught instead of silently dropping a value.
    bad = [k for k in extra if not k.startswith("x_")]
    if bad:
        raise BadMessage(kind, f"unknown field {sorted(bad)[0]!r} (vendor extensions must start with 'x_')")


# ----------------------------------------------------------------------------- node -> daemon

@dataclass(slots=True)
class Status:
    """``node/{id}/status`` (retained): birth, clean goodbye or last will."""

    online: bool
    session: int
    ts: float | None = None
    fw: str | None = None
    model: str | None = None


_STATUS_KEYS = frozenset({"state", "session", "ts", "fw", "model"})


def parse_status(payload: bytes) -> Status:
    """Parse a status payload; an empty payload is not valid (nodes never clear their status)."""
    doc = _load("status", payload)
    _unknown("status", doc, _STATUS_KEYS)
    state = _str("status", doc, "state", required=True, choices=("online", "offline"))
    session = _int("status", doc, "session", required=True)
    assert session is not None
    return Status(state == "online", session, _num("status", doc, "ts", lo=0),
                  _str("status", doc, "fw"), _str("status", doc, "model"))


@dataclass(slots=True)
class Telemetry:
    """``node/{id}/telemetry``: what the node measures every interval."""

    ts: float
    session: int | None
    rssi_dbm: float | None
    volume: int | None
    playing: str | None          # command or schedule item id, None when silent
    priority: str | None         # priority of what plays
    temperature_c: float | None
    voltage_v: float | None
    uptime_s: float | None
    net: str | None
    fw: str | None
    schedule_version: int | None

    def as_fields(self) -> dict[str, Any]:
        """The telemetry as the telemetry pipeline's speaker fields."""
        return {"rssi_dbm": self.rssi_dbm, "volume": self.volume, "playing": self.playing is not None,
                "priority": self.priority, "temperature_c": self.temperature_c,
                "voltage_v": self.voltage_v, "uptime_s": self.uptime_s, "net": self.net,
                "firmware": self.fw}


def _tnum(lo: float | None, hi: float | None) -> Any:
    def check(key: str, v: Any) -> float:
        t = type(v)
        if (t is not float and t is not int) or not math.isfinite(v):
            raise BadMessage("telemetry", f"{key}: must be a number, got {v!r}"[:200])
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            lo_s = "" if lo is None else f"{lo:g}"
            hi_s = "" if hi is None else f"{hi:g}"
            raise BadMessage("telemetry", f"{key}: {v!r} is outside {lo_s}..{hi_s}")
        return v
    return check


def _tint(hi: int) -> Any:
    def check(key: str, v: Any) -> int:
        t = type(v)
        if t is float and v.is_integer():
            v = int(v)
        elif t is not int:
            raise BadMessage("telemetry", f"{key}: must be an integer, got {v!r}"[:200])
        if v < 0 or v > hi:
            raise BadMessage("telemetry", f"{key}: {v} is outside 0..{hi}")
        return v
    return check


def _tstr(choices: tuple[str, ...] | None = None) -> Any:
    def check(key: str, v: Any) -> str:
        if type(v) is not str:
            raise BadMessage("telemetry", f"{key}: must be a string, got {v!r}"[:200])
        if len(v) > 64:
            raise BadMessage("telemetry", f"{key}: longer than 64 characters")
        if choices is not None and v not in choices:
            raise BadMessage("telemetry", f"{key}: {v!r} is not one of {', '.join(choices)}"[:200])
        return v
    return check


def _tplaying(key: str, v: Any) -> tuple[str, str | None]:
    k = "telemetry"
    if not isinstance(v, dict):
        raise BadMessage(k, f"playing: must be null or an object {{id, priority}}, got {v!r}"[:200])
    extra = v.keys() - {"id", "priority"}
    if extra:
        raise BadMessage(k, f"playing: unknown field {sorted(extra)[0]!r}")
    pid = _str(k, v, "id", required=True)
    assert pid is not None
    return pid, _str(k, v, "priority", choices=PRIORITIES)


# One validator per field: parse_telemetry runs for every message of every node (the hot path).
_TELEMETRY_CHECKS: dict[str, Any] = {
    "ts": _tnum(0, None), "session": _tint(2**53), "rssi_dbm": _tnum(-150, 0), "volume": _tint(100),
    "playing": _tplaying, "temperature_c": _tnum(-60, 150), "voltage_v": _tnum(0, 400),
    "uptime_s": _tnum(0, None), "net": _tstr(NETS), "fw": _tstr(), "schedule_version": _tint(2**53),
}


def parse_telemetry(payload: bytes) -> Telemetry:
    """Parse a telemetry payload (only ``ts`` is required)."""
    doc = _load("telemetry", payload)
    v: dict[str, Any] = dict.fromkeys(_TELEMETRY_CHECKS)
    checks = _TELEMETRY_CHECKS
    for key, value in doc.items():
        check = checks.get(key)
        if check is None:
            if key.startswith("x_"):
                continue
            raise BadMessage("telemetry", f"unknown field {key!r} (vendor extensions must start with 'x_')")
        if value is not None:
            v[key] = check(key, value)
    if v["ts"] is None:
        raise BadMessage("telemetry", "ts: required number is missing")
    pid, prio = v["playing"] or (None, None)
    return Telemetry(v["ts"], v["session"], v["rssi_dbm"], v["volume"], pid, prio, v["temperature_c"],
                     v["voltage_v"], v["uptime_s"], v["net"], v["fw"], v["schedule_version"])


@dataclass(slots=True)
class Reply:
    """``node/{id}/reply``: a state of one command, or the schedule ack (``id`` = "schedule")."""

    id: str
    status: str
    ts: float | None
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


_REPLY_KEYS = frozenset({"id", "status", "error", "ts", "data"})


def _identified(k: str, payload: bytes, keys: frozenset[str]) -> tuple[dict[str, Any], str]:
    """The prologue of a message about one command (a reply, a command): a JSON object with only
    ``keys`` and a command id."""
    doc = _load(k, payload)
    _unknown(k, doc, keys)
    cid = _required(k, doc, "id")
    if not CMD_ID.match(cid):
        raise BadMessage(k, f"id: {cid!r} is not a command id")
    return doc, cid


def _required(k: str, doc: dict[str, Any], key: str, choices: tuple[str, ...] | None = None) -> str:
    """A required string member (one of ``choices`` when given)."""
    v = _str(k, doc, key, required=True, choices=choices)
    assert v is not None  # _str raises when a required member is missing
    return v


def _object(k: str, doc: dict[str, Any], key: str) -> dict[str, Any]:
    """An optional object member; absent or null is {}."""
    v = doc.get(key)
    v = {} if v is None else v
    if not isinstance(v, dict):
        raise BadMessage(k, f"{key}: must be an object, got {v!r}"[:200])
    return v


def parse_reply(payload: bytes) -> Reply:
    """Parse a reply; ``error`` is required when status is ``error``."""
    k = "reply"
    doc, cid = _identified(k, payload, _REPLY_KEYS)
    status = _required(k, doc, "status", REPLY_STATES)
    error = _str(k, doc, "error", max_len=500)
    if status == "error" and not error:
        raise BadMessage(k, "error: required when status is 'error'")
    return Reply(cid, status, _num(k, doc, "ts", lo=0), error, _object(k, doc, "data"))


# ----------------------------------------------------------------------------- daemon -> node

def encode(doc: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (Vietnamese titles stay readable on the wire)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(slots=True)
class Command:
    """The command envelope, as published on a node's or zone's ``cmd`` topic."""

    id: str
    method: str
    params: dict[str, Any]
    issued: float
    expires: float
    priority: str = "normal"

    def to_json(self) -> bytes:
        return encode({"id": self.id, "method": self.method, "params": self.params,
                       "issued": round(self.issued, 3), "expires": round(self.expires, 3),
                       "priority": self.priority})


_CMD_KEYS = frozenset({"id", "method", "params", "issued", "expires", "priority"})


def check_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validate a command's params for its method; returns them, or raises BadMessage."""
    k = "cmd"
    allowed: frozenset[str]
    if method == "play":
        allowed = frozenset({"url", "volume", "until", "duration_s", "title", "item"})
        url = _str(k, params, "url", required=True, max_len=2048)
        assert url is not None
        if not url.startswith(("http://", "https://")):
            raise BadMessage(k, f"params.url: {url[:80]!r} must be an http:// or https:// URL "
                                "(audio never travels over MQTT)")
        _int(k, params, "volume", hi=100)
        _num(k, params, "until", lo=0)
        _num(k, params, "duration_s", lo=0.1, hi=86400)
        _str(k, params, "title", max_len=200)
        _str(k, params, "item")
    elif method == "stop":
        allowed = frozenset({"target"})
        _str(k, params, "target")
    elif method == "volume":
        allowed = frozenset({"level"})
        _int(k, params, "level", required=True, hi=100)
    else:
        allowed = frozenset()
    extra = params.keys() - allowed
    if extra:
        raise BadMessage(k, f"params.{sorted(extra)[0]}: not a parameter of {method!r}")
    return params


def parse_command(payload: bytes) -> Command:
    """The node side of the envelope (used by the simulator and the fuzz tests)."""
    k = "cmd"
    doc, cid = _identified(k, payload, _CMD_KEYS)
    method = _required(k, doc, "method", METHODS)
    params = _object(k, doc, "params")
    issued = _num(k, doc, "issued", required=True, lo=0)
    expires = _num(k, doc, "expires", required=True, lo=0)
    assert issued is not None and expires is not None
    prio = _str(k, doc, "priority", choices=PRIORITIES) or "normal"
    return Command(cid, method, check_params(method, params), issued, expires, prio)


@dataclass(slots=True)
class ScheduleItem:
    """One upcoming occurrence a node plays by itself if the link is down."""

    id: str
    start: float
    end: float
    url: str
    volume: int | None = None
    priority: str = "normal"
    title: str = ""
    offset_s: float = 0.0  # where in the content this item starts (a piece resumed after preemption)


@dataclass(slots=True)
class Schedule:
    """``node/{id}/schedule`` (retained): the node's next 48 h, versioned; the node acks the version."""

    version: int
    issued: float
    zones: list[str]
    items: list[ScheduleItem]

    def to_json(self) -> bytes:
        return encode({"version": self.version, "issued": round(self.issued, 3), "zones": self.zones,
                       "items": [{"id": i.id, "start": i.start, "end": i.end, "url": i.url,
                                  "volume": i.volume, "priority": i.priority, "title": i.title,
                                  **({"offset_s": i.offset_s} if i.offset_s else {})}
                                 for i in self.items]})


_ITEM_KEYS = frozenset({"id", "start", "end", "url", "volume", "priority", "title", "offset_s"})


def parse_schedule(payload: bytes) -> Schedule:
    """The node side of the schedule document."""
    k = "schedule"
    doc = _load(k, payload, MAX_SCHEDULE_PAYLOAD)
    _unknown(k, doc, frozenset({"version", "issued", "zones", "items"}))
    version = _int(k, doc, "version", required=True)
    issued = _num(k, doc, "issued", required=True, lo=0)
    zones = doc.get("zones")
    zones = [] if zones is None else zones
    if not isinstance(zones, list) or not all(isinstance(z, str) for z in zones):
        raise BadMessage(k, "zones: must be a list of zone paths")
    raw = doc.get("items")
    raw = [] if raw is None else raw
    if not isinstance(raw, list):
        raise BadMessage(k, "items: must be a list")
    items = []
    for n, it in enumerate(raw):
        if not isinstance(it, dict):
            raise BadMessage(k, f"items[{n}]: must be an object")
        try:
            _unknown(k, it, _ITEM_KEYS)
            iid = _str(k, it, "id", required=True)
            start = _num(k, it, "start", required=True, lo=0)
            end = _num(k, it, "end", required=True, lo=0)
            url = _str(k, it, "url", required=True, max_len=2048)
            vol = _int(k, it, "volume", hi=100)
            prio = _str(k, it, "priority", choices=PRIORITIES) or "normal"
            title = _str(k, it, "title", max_len=200) or ""
            offset = _num(k, it, "offset_s", lo=0, hi=86400) or 0.0
        except BadMessage as e:
            raise BadMessage(k, f"items[{n}].{e}") from None
        assert iid is not None and start is not None and end is not None and url is not None
        if end <= start:
            raise BadMessage(k, f"items[{n}]: end must be after start")
        items.append(ScheduleItem(iid, start, end, url, vol, prio, title, offset))
    assert version is not None and issued is not None
    return Schedule(version, issued, zones, items)
