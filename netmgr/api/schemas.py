"""What the OpenAPI document says of the request bodies whose rules pydantic's types cannot say.

The API's models keep their lenient runtime parsing (a program's ``when`` accepts what people
type, the model explains a refusal in words), but the document a client is generated from must
not promise more than the API accepts (issue 12: "the API is stricter than what it publishes").
So each rule that JSON Schema can express is declared here, once, and attached to its model:
exactly one content kind, at least one target, parameters per command method, operators and
their zones. What no schema can say (a file's contents, a time in the future, an RRULE's
grammar, a report's ``to`` after its ``from``) is written in the operation's description and
is the only reason left for a 422 to a schema-valid request (tests/integration/test_api_fuzz.py
holds each such reason by the error it produces).
"""

from __future__ import annotations

from typing import Any

from netmgr.broadcast.recurrence import MAX_COUNT
from netmgr.config import VOICES
from netmgr.refs import NODE_ID_SCHEMA, TITLE_PATTERN, ZONE_SCHEMA

# An http(s) address of an audio file or stream: a host (name or IPv4), a port, a path; no
# whitespace or control character anywhere (nodes fetch it as it is).
URL_SCHEMA = {"type": "string", "maxLength": 2048,
              "pattern": r"^https?://[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})(?::[0-9]{1,5})?"
                         r"(?:[/?#][^\s\u0000-\u001f\u007f-\u009f]*)?$"}
MEDIA_ID_SCHEMA = {"type": "string", "pattern": r"^[0-9a-f]{64}$", "description": "a media id (media list)"}
# Announcement text: something that is not a space, no control character but tab and newline
# (no surrogates either: see refs.NAME_PATTERN).
TEXT_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 5000,
               "pattern": r"^(?=[\s\S]*\S)[^\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f"
                          r"\u202a-\u202e\u2028\u2029\u2066-\u2069]*$"}
VOICE_SCHEMA = {"type": "string", "enum": list(VOICES), "description": "an espeak-ng Vietnamese voice"}
# 30m, 1h30m, 90s, 01:30 (h:mm) or a number of seconds; at most 24 h (the model checks the sum).
DURATION_SCHEMA = {"anyOf": [
    {"type": "integer", "minimum": 1, "maximum": 86400},
    {"type": "string", "pattern": r"^(?:[1-9][0-9]{0,4}[hms]|[0-9]{1,2}:[0-5][0-9](?::[0-5][0-9])?|"
                                  r"(?:[0-9]{1,2}h)(?:[0-9]{1,4}m)?(?:[0-9]{1,5}s)?)$"}],
    "description": "seconds, or 30m, 1h, 1h30m, 01:30; more than 0 and at most 24 h"}
# A point in time as the API takes it: ISO 8601 with its offset, or local "YYYY-MM-DD HH:MM".
TIME_SCHEMA = {"type": "string", "maxLength": 40, "anyOf": [
    {"format": "date-time", "pattern": r"^2[01][0-9]{2}-"},
    {"pattern": r"^2[01][0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8]) "
                r"(?:[01][0-9]|2[0-3]):[0-5][0-9]$"}],
    "description": "an ISO 8601 time with its offset, or local YYYY-MM-DD HH:MM (in the daemon's "
                   "time zone); from 2000 to 2199"}
HHMM_SCHEMA = {"type": "string", "pattern": r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$",
               "description": "HH:MM, local"}
COUNT_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_COUNT}


def _closed(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": False}


_ONE_END = {"not": {"required": ["until", "count"]}}  # RFC 5545: UNTIL or COUNT, not both


CONTENT_SCHEMA = {
    "description": "what plays: an uploaded file (media), an address nodes fetch (url) or text spoken by "
                   "espeak-ng (text)",
    "oneOf": [
        _closed(["kind", "media_id"], kind={"const": "media"}, media_id=MEDIA_ID_SCHEMA),
        _closed(["kind", "url"], kind={"const": "url"}, url=URL_SCHEMA),
        _closed(["kind", "text"], kind={"const": "text"}, text=TEXT_SCHEMA, voice=VOICE_SCHEMA),
    ]}

_ZONES = {"type": "array", "items": {"type": "string", **ZONE_SCHEMA}, "maxItems": 200}
_SPEAKERS = {"type": "array", "items": {"type": "string", **NODE_ID_SCHEMA}, "maxItems": 10000}
# At least one zone or speaker, in either list.
AT_LEAST_ONE_TARGET = [{"required": ["zones"], "properties": {"zones": {"minItems": 1}}},
                       {"required": ["speakers"], "properties": {"speakers": {"minItems": 1}}}]
TARGETS_SCHEMA = {"type": "object", "properties": {"zones": _ZONES, "speakers": _SPEAKERS},
                  "additionalProperties": False, "anyOf": AT_LEAST_ONE_TARGET,
                  "description": "zone paths (every speaker below each) and/or speaker ids; at least one"}

WHEN_SCHEMA = {
    "description": "once at a time; daily or on weekdays at HH:MM; or an RFC 5545 RRULE (e.g. "
                   "FREQ=WEEKLY;BYDAY=MO;BYHOUR=6;BYMINUTE=0). Times are from 2000 to 2199; a once "
                   "must be in the future and a rule must have an occurrence",
    "oneOf": [
        _closed(["kind", "start"], kind={"const": "once"}, start=TIME_SCHEMA),
        _closed(["kind", "at"], kind={"enum": ["daily", "weekdays"]}, at=HHMM_SCHEMA, start=TIME_SCHEMA,
                until=TIME_SCHEMA, count=COUNT_SCHEMA) | _ONE_END,
        _closed(["kind", "rrule"], kind={"const": "rrule"},
                rrule={"type": "string", "minLength": 1, "maxLength": 500}, start=TIME_SCHEMA,
                until=TIME_SCHEMA, count=COUNT_SCHEMA) | _ONE_END,
    ]}

# One of text, media_id or url (JSON null counts as absent).
NOW_CONTENT = {"oneOf": [{"required": [k], "properties": {k: {"type": "string"}}}
                         for k in ("text", "media_id", "url")]}
NOW_TEXT_SCHEMA = TEXT_SCHEMA

# A command's params per method (docs/protocol.md, netmgr.radio.protocol.check_params).
_PLAY = {"type": "object", "required": ["url"], "additionalProperties": False, "properties": {
    "url": URL_SCHEMA, "volume": {"type": "integer", "minimum": 0, "maximum": 100},
    "until": {"type": "number", "minimum": 0},
    "duration_s": {"type": "number", "minimum": 0.1, "maximum": 86400},
    "title": {"type": "string", "maxLength": 200, "pattern": TITLE_PATTERN},
    "item": {"type": "string", "maxLength": 200, "pattern": TITLE_PATTERN}}}
_NO_PARAMS = {"type": "object", "maxProperties": 0}
COMMAND_SCHEMA = {"allOf": [
    {"anyOf": [{"required": ["nodes"], "properties": {"nodes": {"minItems": 1}}},
               {"required": ["zones"], "properties": {"zones": {"minItems": 1}}}]},
    {"oneOf": [
        {"properties": {"method": {"const": "play"}, "params": _PLAY}, "required": ["params"]},
        {"properties": {"method": {"const": "stop"}, "params": {
            "type": "object", "additionalProperties": False,
            "properties": {"target": {"type": "string", "maxLength": 200, "pattern": TITLE_PATTERN}}}}},
        {"properties": {"method": {"const": "volume"}, "params": {
            "type": "object", "required": ["level"], "additionalProperties": False,
            "properties": {"level": {"type": "integer", "minimum": 0, "maximum": 100}}}},
         "required": ["params"]},
        {"properties": {"method": {"enum": ["sync", "reboot", "ping"]}, "params": _NO_PARAMS}},
    ]}]}

# Operators have zones (at least one); admins and viewers none.
USER_SCHEMA = {"oneOf": [
    {"properties": {"role": {"const": "operator"}, "zones": {"minItems": 1}}, "required": ["zones"]},
    {"properties": {"role": {"enum": ["admin", "viewer"]}, "zones": {"maxItems": 0}}},
]}
