"""References and names as they come in: the one validator every API and file input uses.

A zone path or a node id ends up in MQTT topics, SQL, file names and scopes; a
name ends up on an admin's terminal and an official's screen. Each is checked
once, here, at the edge (pydantic types for the API's models and query
parameters, plain functions for the importers), so no path reaches a topic or a
scope check unvalidated (issue 12, item 1) and no control character reaches a
terminal (item 6; the character rules are in netmgr.text).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from netmgr import zones
from netmgr.text import check_name, check_text

NODE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
NODE_ID_PATTERN = NODE_ID.pattern
_SEG = r"[a-z0-9]+(?:-[a-z0-9]+)*"
ZONE_PATTERN = rf"^{_SEG}(?:/{_SEG}){{0,{zones.MAX_DEPTH - 1}}}$"


def check_zone(path: str) -> str:
    """``path`` if it is a valid zone path, else ValueError saying why (see netmgr.zones)."""
    return zones.validate_path(path)


def check_node_id(node_id: str) -> str:
    """``node_id`` if it is a valid speaker node id (its MQTT identity), else ValueError."""
    if not isinstance(node_id, str) or not NODE_ID.match(node_id):
        raise ValueError(f"node id {node_id!r}: use 1-64 lowercase ASCII letters, digits and '-', "
                         "starting with a letter or digit (it is the node's MQTT identity)")
    return node_id


# What the OpenAPI document says of them (the validators above say why a value is refused).
NODE_ID_SCHEMA = {"pattern": NODE_ID_PATTERN, "minLength": 1, "maxLength": 64}
ZONE_SCHEMA = {"pattern": ZONE_PATTERN, "minLength": 1, "maxLength": zones.MAX_PATH}
ZonePath = Annotated[str, AfterValidator(check_zone),
                     Field(json_schema_extra=ZONE_SCHEMA,
                           description="a zone path: lowercase ASCII slugs joined by '/' "
                           "(e.g. binh-phuoc/dong-xoai/tan-phu)")]
def check_kind(kind: str) -> str:
    """``kind`` if it is a zone kind of devices/zones/kinds.yaml, else ValueError listing them."""
    zones.kinds().get(kind)
    return kind


ZoneKind = Annotated[str, AfterValidator(check_kind),
                     Field(json_schema_extra={"enum": list(zones.kinds().by_id)},
                           description="a zone kind (devices/zones/kinds.yaml)")]
NodeId = Annotated[str, AfterValidator(check_node_id),
                   Field(json_schema_extra=NODE_ID_SCHEMA,
                         description="a speaker node id (its MQTT identity)")]
# What JSON Schema can say of a name: no control or bidi character, something that is not a space.
# (Lone surrogates are refused by check_name but cannot be in a published pattern: regex engines
# that validate JSON Schema, ECMA-262 "u" and Rust's, refuse a surrogate range, and a client's
# generator then ignores the whole pattern.)
NAME_PATTERN = (r"^(?=.*\S)[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029"
                r"\u2066-\u2069]*$")
Name = Annotated[str, AfterValidator(check_name),
                 Field(min_length=1, max_length=255, json_schema_extra={"pattern": NAME_PATTERN})]
TITLE_PATTERN = NAME_PATTERN.replace("(?=.*\\S)", "")  # may be empty
Title = Annotated[str, AfterValidator(lambda v: check_name(v, "title")),
                  Field(max_length=200, json_schema_extra={"pattern": TITLE_PATTERN})]
# A program's title: like a name, at most 200 characters.
ProgramTitle = Annotated[str, AfterValidator(lambda v: check_name(v, "title")),
                         Field(min_length=1, max_length=200, json_schema_extra={"pattern": NAME_PATTERN})]
# A local calendar day: today, tomorrow, yesterday or YYYY-MM-DD (netmgr.broadcast.timeparse).
Day = Annotated[str, Field(max_length=40, json_schema_extra={
    "anyOf": [{"enum": ["today", "tomorrow", "yesterday"]}, {"format": "date", "pattern": r"^2[01]\d\d-"}]})]
Text = Annotated[str, AfterValidator(check_text)]
