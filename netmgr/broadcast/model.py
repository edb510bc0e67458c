"""The broadcast program: what plays, where, when, how loud, at which priority.

A program arrives from the API or CLI as a dict (see :class:`Program`) and is
validated in one of two ways:

* :func:`new_program` (or ``Program.model_validate(data, context={"now": now,
  "new": True})``) for something an official is scheduling now: times are
  parsed in the program's zone, and times in the past, rules that never fire
  from now or fire more often than once a minute are refused;
* ``Program.model_validate(data)`` for a program read back from the store
  (its start may lie in the past by then; structure is still checked).

Stored form (``program.model_dump(mode="json")``)::

    {"id": 12, "title": "Bản tin sáng", "priority": "normal", "volume": 80,
     "duration_s": 3600, "created_by": "alice", "timezone": "Asia/Ho_Chi_Minh",
     "content": {"kind": "media", "media_id": "<sha256>"},
     "targets": {"zones": ["binh-phuoc/dong-xoai"], "speakers": []},
     "when": {"kind": "daily", "at": "06:00", "start": "2026-11-30T23:00:00Z",
              "rrule": "FREQ=DAILY", "until": null, "count": null}}

``content.kind`` is ``media`` (an id from the media store), ``url`` (an
HTTP(S) file or Icecast stream) or ``text`` (spoken by espeak-ng; the daemon
fills ``media_id`` with the synthesized audio). ``when.kind`` is ``once``,
``daily`` (``at`` HH:MM), ``weekdays`` (Monday-Friday at ``at``) or ``rrule``
(an RFC 5545 RRULE; ``until``/``count`` may be given apart or inside it).
For daily/weekdays ``start`` is optional and means "not before"; the stored
start is the first occurrence.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from netmgr.broadcast import timeparse as tp
from netmgr.broadcast.recurrence import (
    DAILY_RULE,
    MAX_COUNT,
    WEEKDAYS_RULE,
    ParsedRule,
    Recurrence,
    check_firing,
    parse_rrule,
    parse_rrule_until,
)
from netmgr.config import VOICES
from netmgr.errors import RuleError, UsageError
from netmgr.refs import check_node_id, check_zone
from netmgr.text import check_name, spoken_text

MAX_DURATION_S = 24 * 3600
MAX_TITLE = 200
MEDIA_ID = re.compile(r"^[0-9a-f]{64}$")
PAST_GRACE = timedelta(seconds=60)
"""A start this little in the past is still accepted (the form took a while to fill in)."""


class Priority(StrEnum):
    """Vietnamese commune-radio priority levels; a higher one preempts a lower one."""

    normal = "normal"
    priority = "priority"
    emergency = "emergency"

    @property
    def rank(self) -> int:
        """0 for normal, 1 for priority, 2 for emergency."""
        return _RANK[self.value]


_RANK = {"normal": 0, "priority": 1, "emergency": 2}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _media_id(v: Any, what: str = "media_id") -> str:
    if not isinstance(v, str) or not MEDIA_ID.match(v):
        raise ValueError(f"{what} {v!r} is not a media id "
                         "(64 lowercase hex digits, from `netmgr media list`)")
    return v


class MediaContent(_Strict):
    """An uploaded audio file, by its sha256 id in the media store."""

    kind: Literal["media"] = "media"
    media_id: str

    @field_validator("media_id", mode="before")
    @classmethod
    def _check_id(cls, v: Any) -> str:
        return _media_id(v)


class UrlContent(_Strict):
    """An HTTP(S) audio file or live (Icecast) stream that nodes fetch themselves."""

    kind: Literal["url"] = "url"
    url: str

    @field_validator("url", mode="before")
    @classmethod
    def _check_url(cls, v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError("url must be text, e.g. http://radio.example.vn:8000/live")
        v = v.strip()
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in v):
            raise ValueError(f"url {v!r} must be an http:// or https:// address of an audio file or "
                             "Icecast stream (e.g. http://radio.example.vn:8000/live)")
        if len(v) > 2048:
            raise ValueError("url is longer than 2048 characters")
        return v


class TextContent(_Strict):
    """Text spoken offline by espeak-ng; ``media_id`` is the synthesized audio once made."""

    kind: Literal["text"] = "text"
    text: str
    voice: str = "vi"
    media_id: str | None = None

    @field_validator("text", mode="before")
    @classmethod
    def _check_text(cls, v: Any) -> str:
        return spoken_text(v, "text")

    @field_validator("voice")
    @classmethod
    def _check_voice(cls, v: str) -> str:
        if v not in VOICES:
            raise ValueError(f"voice {v!r} is not a Vietnamese espeak-ng voice; use {', '.join(VOICES)}")
        return v

    @field_validator("media_id", mode="before")
    @classmethod
    def _check_id(cls, v: Any) -> str | None:
        return None if v is None else _media_id(v)


Content = Annotated[MediaContent | UrlContent | TextContent, Field(discriminator="kind")]


def _strings(v: Any, what: str, each: str) -> list[str]:
    """A list of strings as given (one string is a list of one; null is none); ValueError naming
    ``what`` for anything else (a number where a list belongs was a 500 once: the fuzzer's)."""
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list | tuple):
        raise ValueError(f"{what} must be a list, each {each}; got {type(v).__name__}")
    for x in v:
        if not isinstance(x, str):
            raise ValueError(f"{what}: {x!r} must be {each}")
    return list(v)


class Targets(_Strict):
    """Zone paths (each reaching every speaker below it) and/or single speaker ids."""

    zones: tuple[str, ...] = ()
    speakers: tuple[str, ...] = ()

    @field_validator("zones", mode="before")
    @classmethod
    def _check_zones(cls, v: Any) -> tuple[str, ...]:
        return tuple(sorted({check_zone(z.strip().strip("/")) for z in _strings(
            v, "zones", "a zone path such as binh-phuoc/dong-xoai")}))

    @field_validator("speakers", mode="before")
    @classmethod
    def _check_speakers(cls, v: Any) -> tuple[str, ...]:
        return tuple(sorted({check_node_id(x.strip()) for x in _strings(
            v, "speakers", "a speaker id (see `netmgr speaker list`)")}))

    @model_validator(mode="after")
    def _not_empty(self) -> Targets:
        if not self.zones and not self.speakers:
            raise ValueError("no targets; give at least one zone or speaker")
        return self


def _aware(v: Any, what: str) -> Any:
    if isinstance(v, datetime):
        return tp.ensure_utc(v, what)
    return v


class Once(_Strict):
    """Plays once at ``start`` (UTC)."""

    kind: Literal["once"] = "once"
    start: datetime

    @field_validator("start", mode="after")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return _aware(v, "when.start")


class Recurring(_Strict):
    """Plays on every occurrence of ``rrule`` from ``start`` (the first occurrence, UTC)."""

    kind: Literal["daily", "weekdays", "rrule"]
    at: str | None = None
    start: datetime
    rrule: str
    until: datetime | None = None
    count: int | None = None

    @field_validator("start", "until", mode="after")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return None if v is None else _aware(v, "when")


When = Annotated[Once | Recurring, Field(discriminator="kind")]


_KIND_RULE = {"daily": DAILY_RULE, "weekdays": WEEKDAYS_RULE}
"""The fixed rule body behind each shorthand kind."""

_BOTH_ENDS = "both until and count are given; RFC 5545 allows one of them"


def _once(w: dict[str, Any], tz: str, now: datetime) -> dict[str, Any]:
    """Normalize a ``once`` when: only ``start`` is needed, parsed in ``tz``."""
    if "start" not in w:
        raise ValueError("start is missing; when does it play? (e.g. 2026-12-01 06:00)")
    w["start"] = tp.parse_when(w["start"], tz=tz, now=now, what="start")
    return w


def _parse_start(start: Any, tz: str, now: datetime) -> datetime | None:
    """A recurring ``start`` in UTC, or None; a bare date means local midnight of that day."""
    # parse_when refuses a date without a time of day (fine for "once"); for a
    # recurring program a date is a natural "not before" bound, so it is taken here.
    if isinstance(start, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", start.strip()):
        return tp.localize(datetime.combine(date.fromisoformat(start.strip()), datetime.min.time()),
                           tp.get_tz(tz), "start")
    if isinstance(start, date) and not isinstance(start, datetime):
        return tp.localize(datetime.combine(start, datetime.min.time()), tp.get_tz(tz), "start")
    if start is not None:
        return tp.parse_when(start, tz=tz, now=now, what="start")
    return None


def _check_count(count: Any) -> int | None:
    """``count`` unchanged if it is None or a whole number 1..MAX_COUNT; refuse anything else."""
    # bool is an int subclass; True must not pass as count 1.
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)
                              or not 1 <= count <= MAX_COUNT):
        raise ValueError(f"count {count!r} must be a whole number 1-{MAX_COUNT}")
    return count


def _recurring_bounds(w: dict[str, Any], tz: str,
                      now: datetime) -> tuple[datetime | None, datetime | None, int | None]:
    """The parsed ``start``, ``until`` and ``count`` shared by every recurring kind, checked in that order."""
    start = _parse_start(w.get("start"), tz, now)
    until = w.get("until")
    if until is not None:
        until = tp.parse_until(until, tz=tz)
    return start, until, _check_count(w.get("count"))


def _check_one_end(until: datetime | None, count: int | None) -> None:
    """Refuse a rule bounded by both UNTIL and COUNT."""
    if until is not None and count is not None:
        raise ValueError(_BOTH_ENDS)


def _daily_or_weekdays(w: dict[str, Any], kind: str, tz: str, now: datetime, start: datetime | None,
                       until: datetime | None, count: int | None) -> dict[str, Any]:
    """Normalize a ``daily``/``weekdays`` when: ``at`` (or start's time) on the kind's fixed rule."""
    _check_one_end(until, count)
    body = _KIND_RULE[kind]
    if w.get("rrule") not in (None, body):
        raise ValueError(f"rrule is not used with {kind}; use kind rrule for a custom rule")
    if w.get("at") is None and start is None:
        raise ValueError(f"at is missing; {kind} needs a time of day HH:MM (e.g. 06:00)")
    zone = tp.get_tz(tz)
    if w.get("at") is not None:
        at = tp.parse_hhmm(w["at"])
    else:
        at = start.astimezone(zone).time().replace(second=0, microsecond=0)
    # The first occurrence at or after the "not before" bound (start, else now).
    floor = start if start is not None else now
    rec = Recurrence(floor - timedelta(days=8), tz=zone,
                     rule=f"{body};BYHOUR={at.hour};BYMINUTE={at.minute};BYSECOND=0")
    first = rec.first_from(floor, floor + timedelta(days=10))
    if first is None:  # pragma: no cover - every week has weekdays
        raise ValueError(f"{kind} {at:%H:%M} has no occurrence after {tp.format_local(floor, zone)}")
    w.update(at=f"{at:%H:%M}", start=first, rrule=body, until=until, count=count)
    return w


def _merge_rule_ends(parsed: ParsedRule, until: datetime | None, count: int | None,
                     tz: str) -> tuple[datetime | None, int | None]:
    """``until``/``count`` given apart merged with UNTIL/COUNT inside the rule; refuse a disagreement."""
    if parsed.until is not None:
        ru = parse_rrule_until(parsed.until, tz)
        if until is not None and until != ru:
            raise RuleError("until is given twice (in the rule and apart) with different values; "
                            "give it once")
        until = ru
    if parsed.count is not None:
        if count is not None and count != parsed.count:
            raise RuleError("count is given twice (in the rule and apart) with different values; "
                            "give it once")
        count = parsed.count
    return until, count


def _rrule(w: dict[str, Any], tz: str, now: datetime, start: datetime | None,
           until: datetime | None, count: int | None) -> dict[str, Any]:
    """Normalize an ``rrule`` when: canonical rule body, ends merged, start moved to the first occurrence."""
    if w.get("at") is not None:
        raise ValueError("at is only for daily/weekdays; put BYHOUR/BYMINUTE in the rule or give a start")
    text = w.get("rrule")
    if not isinstance(text, str):
        raise ValueError("rrule is missing; e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=6;BYMINUTE=0")
    # Rule errors are re-raised as plain ValueErrors so pydantic reports them under "when".
    try:
        parsed = parse_rrule(text)
        until, count = _merge_rule_ends(parsed, until, count, tz)
    except RuleError as e:
        raise ValueError(str(e)) from None
    _check_one_end(until, count)
    if start is None:  # DTSTART defaults to the next whole minute
        start = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    # Store the first occurrence as the start (RFC 5545 wants DTSTART in step with the
    # rule); the parts of the rule defaulted from DTSTART are the same in it.
    try:
        rec = Recurrence(start, tz=tz, rule=parsed.body, until=until, count=count)
        first = rec.first_from(start, start + timedelta(days=5 * 366))
    except RuleError as e:
        raise ValueError(str(e)) from None
    w.update(start=first or start, rrule=parsed.body, until=until, count=count)
    return w


def _normalize_when(raw: Any, tz: str, now: datetime) -> Any:
    """Turn what people type (``at``, local strings, UNTIL inside the rule) into the stored form."""
    if not isinstance(raw, dict):
        return raw
    w = dict(raw)
    kind = w.get("kind")
    if kind == "once":
        return _once(w, tz, now)
    if kind not in ("daily", "weekdays", "rrule"):
        raise ValueError(f"kind {kind!r} is unknown; use once, daily, weekdays or rrule")
    # start/until/count are checked before anything kind-specific, so their errors come first.
    start, until, count = _recurring_bounds(w, tz, now)
    if kind == "rrule":
        return _rrule(w, tz, now, start, until, count)
    return _daily_or_weekdays(w, kind, tz, now, start, until, count)


class Program(_Strict):
    """A broadcast program. See the module docstring for the stored form."""

    id: int | None = None
    title: str
    content: Content
    targets: Targets
    when: When
    duration_s: int
    volume: int
    priority: Priority = Priority.normal
    created_by: str
    timezone: str = tp.DEFAULT_TZ
    created_at: datetime | None = None

    _rec: Recurrence | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        # The cached recurrence is not part of a program's identity.
        return type(other) is type(self) and self.__dict__ == other.__dict__  # type: ignore[union-attr]

    __hash__ = None  # type: ignore[assignment]

    @model_validator(mode="before")
    @classmethod
    def _parse_times(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        ctx = info.context or {}
        now = ctx.get("now") or tp.utcnow()
        tz = data.get("timezone") or ctx.get("tz") or tp.DEFAULT_TZ
        if not isinstance(tz, str):
            return data
        try:
            tp.get_tz(tz)
        except ValueError:
            return data  # reported by the timezone field
        out = dict(data)
        out["timezone"] = tz
        content = out.get("content")
        if isinstance(content, dict) and content.get("kind") not in ("media", "url", "text"):
            raise ValueError(f"content.kind {content.get('kind')!r} is unknown; use media (an uploaded "
                             "file), url (a stream or file address) or text (spoken by espeak-ng)")
        if "when" in out:
            try:
                out["when"] = _normalize_when(out["when"], tz, now)
            except ValueError as e:
                raise ValueError(f"when: {e}") from None
        return out

    @field_validator("title", mode="before")
    @classmethod
    def _check_title(cls, v: Any) -> str:
        if not isinstance(v, str) or not v.strip():
            raise ValueError("title is empty; name the program (e.g. Bản tin sáng)")
        v = check_name(v, "title")
        if len(v) > MAX_TITLE:
            raise ValueError(f"title is {len(v)} characters; at most {MAX_TITLE}")
        return v

    @field_validator("created_by", mode="before")
    @classmethod
    def _check_creator(cls, v: Any) -> str:
        if not isinstance(v, str) or not v.strip() or len(v.strip()) > 128:
            raise ValueError("created_by must name the user who scheduled it")
        return v.strip()

    @field_validator("duration_s", mode="before")
    @classmethod
    def _check_duration(cls, v: Any) -> int:
        try:
            secs = tp.parse_duration(v, "duration")
        except ValueError as e:
            raise ValueError(str(e)) from None
        if secs <= 0:
            raise ValueError(f"duration must be more than 0 (got {secs} s); e.g. 30m or 1h")
        if secs > MAX_DURATION_S:
            raise ValueError(f"duration {tp.format_duration(secs)} is over 24 h; "
                             "split it into several programs")
        return secs

    @field_validator("volume", mode="before")
    @classmethod
    def _check_volume(cls, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"volume {v!r} must be a whole number 0-100")
        if not 0 <= v <= 100:
            raise ValueError(f"volume {v} is out of range; use 0-100")
        return v

    @field_validator("priority", mode="before")
    @classmethod
    def _check_priority(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in _RANK:
            return v.strip().lower()
        if isinstance(v, Priority):
            return v
        raise ValueError(f"priority {v!r} is unknown; use normal, priority or emergency")

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, v: str) -> str:
        tp.get_tz(v)
        return v

    @field_validator("created_at", mode="after")
    @classmethod
    def _utc_created(cls, v: datetime | None) -> datetime | None:
        return None if v is None else _aware(v, "created_at")

    @model_validator(mode="after")
    def _check_schedule(self, info: ValidationInfo) -> Program:
        ctx = info.context or {}
        try:
            rec = self.recurrence()
        except RuleError as e:
            raise ValueError(f"when: {e}") from None
        if not ctx.get("new"):
            return self
        now = ctx.get("now") or tp.utcnow()
        w = self.when
        if w.start < now - PAST_GRACE:
            raise ValueError(f"when.start {tp.format_local(w.start, self.timezone)} is in the past "
                             f"(now {tp.format_local(now, self.timezone)}); give a future time")
        if isinstance(w, Recurring):
            try:
                check_firing(rec, now, self.duration_s)
            except RuleError as e:
                raise ValueError(f"when: {e}") from None
        return self

    # -- derived -----------------------------------------------------------

    def recurrence(self) -> Recurrence:
        """The occurrence generator for this program (built once, cached)."""
        if self._rec is None:
            w = self.when
            if isinstance(w, Once):
                self._rec = Recurrence(w.start, tz=self.timezone)
            else:
                self._rec = Recurrence(w.start, tz=self.timezone, rule=w.rrule, until=w.until, count=w.count)
        return self._rec

    @property
    def rank(self) -> int:
        """The priority rank (0 normal, 1 priority, 2 emergency)."""
        return self.priority.rank

    def occurrences(self, start: datetime, end: datetime) -> list[datetime]:
        """Starts of the occurrences that overlap ``[start, end)`` (UTC)."""
        return self.recurrence().overlapping(start, end, self.duration_s)

    def next_occurrences(self, now: datetime, n: int = 5, horizon_days: int = 400) -> list[datetime]:
        """The next ``n`` occurrence starts at or after ``now``."""
        out = []
        for occ in self.recurrence().iter_from(now, now + timedelta(days=horizon_days)):
            out.append(occ)
            if len(out) >= n:
                break
        return out

    def describe_when(self) -> str:
        """``daily 06:00``, ``weekdays 17:30``, ``once 2026-12-01 06:00 +07`` or the rule."""
        w = self.when
        if isinstance(w, Once):
            return f"once {tp.format_local(w.start, self.timezone)}"
        end = ""
        if w.until is not None:
            end = f" until {tp.format_local(w.until, self.timezone)}"
        elif w.count is not None:
            end = f" x{w.count}"
        if w.kind in ("daily", "weekdays"):
            return f"{w.kind} {w.at}{end}"
        return f"rrule {w.rrule} from {tp.format_local(w.start, self.timezone)}{end}"

    def label(self) -> str:
        """``'Morning news' (id 12)`` for messages."""
        return f"'{self.title}'" + (f" (id {self.id})" if self.id is not None else "")


def format_validation_error(err: ValidationError) -> list[str]:
    """One ``field: message`` line per problem, with pydantic's union tags left out."""
    lines = []
    tags = {"media", "url", "text", "once", "daily", "weekdays", "rrule"}
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        clean: list[str] = []
        for i, p in enumerate(loc):
            if p in tags and i > 0 and loc[i - 1] in ("content", "when"):
                continue
            clean.append(p)
        msg = e["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            if msg.startswith(prefix):
                msg = msg[len(prefix):]
        if e["type"] == "extra_forbidden":
            msg = "unknown field; remove it"
        elif e["type"] == "missing":
            msg = "is missing"
        field = ".".join(clean)
        if field and msg.startswith(field.split(".")[-1] + ":"):
            field = ".".join(clean[:-1])
        lines.append(f"{field}: {msg}" if field else msg)
    return lines


def new_program(data: dict[str, Any], *, now: datetime | None = None, tz: str | None = None) -> Program:
    """Validate a program an official is scheduling now; raise UsageError listing every problem."""
    now = (now or tp.utcnow()).astimezone(UTC)
    try:
        return Program.model_validate(data, context={"now": now, "new": True, "tz": tz})
    except ValidationError as e:
        raise UsageError("program refused:\n  " + "\n  ".join(format_validation_error(e))) from None


__all__ = [
    "MAX_DURATION_S", "Content", "MediaContent", "Once", "Priority", "Program", "Recurring",
    "Targets", "TextContent", "UrlContent", "format_validation_error", "new_program",
]
