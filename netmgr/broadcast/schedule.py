"""The per-node schedule document: what a speaker plays in the next 48 hours.

Each node keeps this document (retained on ``node/{id}/schedule``) so that it
plays its programs even when its link is down. The document is deterministic:
the same programs and targets give byte-identical ``items`` (sorted by start,
then id) and the same ``hash`` (sha256 of the canonical JSON of ``items``,
16 hex digits), so the daemon can tell whether a node needs a new copy.
``version`` is the monotonic number the caller passes (the store's counter) or,
when none is given, the hash.

Shape (times UTC, ISO 8601 with ``Z``)::

    {"node": "spk-0042", "version": 17, "hash": "3f1c...", "generated": "...",
     "from": "2026-11-30T22:00:00Z", "to": "2026-12-02T22:00:00Z",
     "items": [{"id": "p12-20261130T230000Z", "occurrence": "p12-20261130T230000Z",
                "program": 12, "title": "Bản tin sáng", "start": "2026-11-30T23:00:00Z",
                "end": "2026-12-01T00:00:00Z", "offset_s": 0, "url": "https://.../media/<sha>",
                "volume": 80, "priority": "normal"}]}

An occurrence suspended by a higher priority appears as several items: the
first keeps the occurrence id, later pieces get ``.2``, ``.3``; ``offset_s`` is
how far into the content the piece starts (a file resumes where it was cut).
Items whose audio is not ready (text not yet synthesized) are left out and
logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from netmgr.broadcast.model import MediaContent, Program, TextContent, UrlContent
from netmgr.broadcast.planner import Timeline, ZoneIndex, resolve_plan

log = logging.getLogger(__name__)

HOURS = 48


def _iso(ts: int | datetime) -> str:
    dt = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def content_url(program: Program, media_url: Callable[[str], str]) -> str | None:
    """The URL a node fetches for ``program``'s content (None if its audio is not ready)."""
    c = program.content
    if isinstance(c, UrlContent):
        return c.url
    if isinstance(c, MediaContent):
        return media_url(c.media_id)
    if isinstance(c, TextContent) and c.media_id is not None:
        return media_url(c.media_id)
    return None


def items_hash(items: Sequence[dict[str, Any]]) -> str:
    """16 hex digits of sha256 over the canonical JSON of ``items``."""
    blob = json.dumps(list(items), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def timeline_items(timeline: Timeline, now: datetime,
                   media_url: Callable[[str], str]) -> list[dict[str, Any]]:
    """The schedule items of a resolved timeline that have not ended by ``now``."""
    now_ts = int(now.timestamp())
    items: list[dict[str, Any]] = []
    pieces: dict[str, int] = {}
    for slot in timeline.slots:
        occ = slot.occ
        oid = occ.occurrence_id
        n = pieces[oid] = pieces.get(oid, 0) + 1
        if slot.end <= now_ts:
            continue
        p = occ.program
        url = content_url(p, media_url)
        if url is None:
            log.warning("schedule item skipped program=%s occurrence=%s reason=audio-not-ready "
                        "(text not yet synthesized)", p.id, oid)
            continue
        items.append({
            "id": oid if n == 1 else f"{oid}.{n}",
            "occurrence": oid,
            "program": p.id,
            "title": p.title,
            "start": _iso(slot.start),
            "end": _iso(slot.end),
            "offset_s": slot.start - occ.start,
            "url": url,
            "volume": p.volume,
            "priority": p.priority.value,
        })
    items.sort(key=lambda it: (it["start"], it["id"]))
    return items


def node_schedules(programs: Sequence[Program], index: ZoneIndex, *, now: datetime,
                   media_url: Callable[[str], str], hours: int = HOURS,
                   speakers: Iterable[str] | None = None,
                   version: int | None = None) -> dict[str, dict[str, Any]]:
    """Schedule documents for every speaker (or ``speakers``), planned once for all."""
    now = now.astimezone(UTC).replace(microsecond=0)
    end = now + timedelta(hours=hours)
    plan = resolve_plan(programs, index, now, end, speakers=speakers)
    scope = list(speakers) if speakers is not None else sorted(index.speakers)
    empty = Timeline((), ())
    by_timeline: dict[int, tuple[list[dict[str, Any]], str]] = {}
    docs: dict[str, dict[str, Any]] = {}
    for spk in scope:
        k = plan.index_of.get(spk, -1)
        if k not in by_timeline:
            tl = plan.timelines[k] if k >= 0 else empty
            items = timeline_items(tl, now, media_url)
            by_timeline[k] = (items, items_hash(items))
        items, h = by_timeline[k]
        docs[spk] = {
            "node": spk,
            "version": version if version is not None else h,
            "hash": h,
            "generated": _iso(now),
            "from": _iso(now),
            "to": _iso(end),
            "items": [dict(it) for it in items],
        }
    return docs


def node_schedule(speaker: str, programs: Sequence[Program], index: ZoneIndex, *, now: datetime,
                  media_url: Callable[[str], str], hours: int = HOURS,
                  version: int | None = None) -> dict[str, Any]:
    """The schedule document of one speaker (see the module docstring)."""
    return node_schedules(programs, index, now=now, media_url=media_url, hours=hours,
                          speakers=[speaker], version=version)[speaker]


__all__ = ["HOURS", "content_url", "items_hash", "node_schedule", "node_schedules", "timeline_items"]
