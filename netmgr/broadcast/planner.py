"""Who plays what, when, on each speaker: priorities, preemption and conflicts.

Rules of the resolved timeline (per speaker):

* At any instant a speaker plays at most one occurrence.
* A higher priority preempts a lower one: the lower occurrence is suspended for
  the overlap and resumes afterwards if it is still running (it may lose its
  start, its end, a middle piece, or everything). The lost pieces are kept in
  the plan as :class:`Loss` with ``kind="preempted"``.
* Between equal priorities the occurrence that started first keeps the speaker
  (an announcement is not cut off by another of the same rank); at the same
  start the older program (lower id) wins. The loser's pieces are losses with
  ``kind="conflict"``. New equal-priority overlaps are refused at schedule time
  (:func:`check_conflicts`) unless forced, so conflicts in a plan come from
  ``--force``.

Targets are resolved with zone-subtree semantics: a program for a district
reaches the speakers of all its communes and villages (:class:`ZoneIndex`).

Speed: speakers reached by the same set of programs share one timeline, so the
work is per distinct target set, not per node; within one timeline only
clusters of overlapping occurrences go through the sweep, on integer seconds.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from netmgr.broadcast import timeparse as tp
from netmgr.broadcast.model import Program, Targets
from netmgr.errors import NotFound
from netmgr.zones import ancestors

_NO_ID = 1 << 62  # a program not yet stored sorts after every stored one


def _ts(dt: datetime) -> int:
    return int(dt.timestamp())


def _dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _iso(ts: int) -> str:
    return _dt(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


class ZoneIndex:
    """Speakers by zone, with subtree lookups.

    ``zone_speakers`` maps each zone path to the speakers *directly* in it (a
    zone with no speakers may be listed with an empty list so that it is known).
    ``speakers_under("a/b")`` is every speaker in ``a/b`` and below.
    """

    def __init__(self, zone_speakers: Mapping[str, Iterable[str]]) -> None:
        self._direct: dict[str, tuple[str, ...]] = {
            z: tuple(sorted(set(s))) for z, s in zone_speakers.items()}
        self._zones = sorted(self._direct)
        self._known: set[str] = set()
        for z in self._zones:
            self._known.update(ancestors(z))
        self._zone_of: dict[str, str] = {}
        for z, spks in self._direct.items():
            for s in spks:
                self._zone_of[s] = z
        self._cache: dict[str, frozenset[str]] = {}

    @property
    def speakers(self) -> frozenset[str]:
        """Every speaker known."""
        return frozenset(self._zone_of)

    def zone_of(self, speaker: str) -> str | None:
        """The zone a speaker is directly in."""
        return self._zone_of.get(speaker)

    def has_zone(self, zone: str) -> bool:
        """True if ``zone`` is listed or is an ancestor of a listed zone."""
        return zone in self._known

    def speakers_under(self, zone: str) -> frozenset[str]:
        """Every speaker in ``zone`` or below it (NotFound if the zone is unknown)."""
        hit = self._cache.get(zone)
        if hit is not None:
            return hit
        if zone not in self._known:
            raise NotFound(f"unknown zone {zone}; see `netmgr zone list`")
        out: set[str] = set(self._direct.get(zone, ()))
        lo = bisect.bisect_left(self._zones, zone + "/")
        hi = bisect.bisect_left(self._zones, zone + "0")  # '0' sorts right after '/'
        for z in self._zones[lo:hi]:
            out.update(self._direct[z])
        res = frozenset(out)
        self._cache[zone] = res
        return res

    def resolve(self, targets: Targets, *, strict: bool = True) -> frozenset[str]:
        """The speakers a program's targets reach.

        With ``strict`` an unknown zone or speaker raises NotFound naming it;
        without, unknown ones are skipped (a stored program whose zone was
        removed still plans for the rest).
        """
        out: set[str] = set()
        for z in targets.zones:
            if z in self._known:
                out |= self.speakers_under(z)
            elif strict:
                raise NotFound(f"unknown zone {z}; see `netmgr zone list`")
        for s in targets.speakers:
            if s in self._zone_of:
                out.add(s)
            elif strict:
                raise NotFound(f"unknown speaker {s}; see `netmgr speaker list`")
        return frozenset(out)


@dataclass(frozen=True, slots=True, eq=False)
class Occ:
    """One occurrence of a program, ``[start, end)`` in epoch seconds."""

    program: Program
    start: int
    end: int
    key: tuple[int, int, int]  # winner order: highest rank, then earliest start, then oldest program

    @property
    def program_id(self) -> int | None:
        """The program's id."""
        return self.program.id

    @property
    def occurrence_id(self) -> str:
        """``p12-20261130T230000Z``: stable name of this occurrence (program id, UTC start); also the
        id of its confirming command and of the nodes' schedule item (docs/protocol.md ids)."""
        return f"p{self.program.id}-{_dt(self.start):%Y%m%dT%H%M%SZ}"


def make_occ(program: Program, start: datetime) -> Occ:
    """The occurrence of ``program`` starting at ``start``."""
    s = _ts(start)
    return Occ(program, s, s + program.duration_s,
               (-program.rank, s, program.id if program.id is not None else _NO_ID))


@dataclass(frozen=True, slots=True)
class Slot:
    """A piece of an occurrence that plays: ``[start, end)`` epoch seconds."""

    occ: Occ
    start: int
    end: int

    @property
    def cut(self) -> bool:
        """True if this is not the whole occurrence."""
        return self.start != self.occ.start or self.end != self.occ.end


@dataclass(frozen=True, slots=True)
class Loss:
    """A piece of an occurrence that does not play, and which occurrence took the speaker."""

    occ: Occ
    start: int
    end: int
    by: Occ
    kind: Literal["preempted", "conflict"]


@dataclass(frozen=True, slots=True)
class Timeline:
    """The resolved timeline of one speaker (shared by speakers with the same programs)."""

    slots: tuple[Slot, ...]
    losses: tuple[Loss, ...]

    def to_dict(self, tz: Any = None) -> dict[str, Any]:
        """JSON-ready items and losses, with UTC ISO and local times."""
        return {"items": [_slot_dict(s, tz) for s in self.slots],
                "lost": [_loss_dict(x, tz) for x in self.losses]}


def _prog_dict(occ: Occ) -> dict[str, Any]:
    p = occ.program
    return {"program": p.id, "title": p.title, "priority": p.priority.value, "occurrence": occ.occurrence_id}


def _slot_dict(s: Slot, tz: Any) -> dict[str, Any]:
    d = _prog_dict(s.occ)
    d.update(start=_iso(s.start), end=_iso(s.end), start_local=tp.format_local(_dt(s.start), tz),
             end_local=tp.format_local(_dt(s.end), tz), cut=s.cut)
    return d


def _loss_dict(x: Loss, tz: Any) -> dict[str, Any]:
    d = _prog_dict(x.occ)
    d.update(start=_iso(x.start), end=_iso(x.end), start_local=tp.format_local(_dt(x.start), tz),
             end_local=tp.format_local(_dt(x.end), tz), kind=x.kind, by=x.by.program.id,
             by_title=x.by.program.title)
    return d


def resolve_timeline(occs: Sequence[Occ]) -> Timeline:
    """Resolve one speaker's occurrences into played slots and lost pieces."""
    ordered = sorted(occs, key=lambda o: o.key[1:] + (o.key[0],))
    slots: list[Slot] = []
    losses: list[Loss] = []
    n = len(ordered)
    i = 0
    while i < n:
        first = ordered[i]
        j, cl_end = i + 1, first.end
        while j < n and ordered[j].start < cl_end:
            if ordered[j].end > cl_end:
                cl_end = ordered[j].end
            j += 1
        if j == i + 1:
            slots.append(Slot(first, first.start, first.end))
        else:
            _sweep(ordered[i:j], slots, losses)
        i = j
    losses.sort(key=lambda x: (x.start, x.occ.key))
    return Timeline(tuple(slots), tuple(losses))


def _sweep(cluster: Sequence[Occ], slots: list[Slot], losses: list[Loss]) -> None:
    """Elementary-interval sweep over one cluster of overlapping occurrences."""
    bounds = sorted({o.start for o in cluster} | {o.end for o in cluster})
    active: list[Occ] = []
    j = 0
    last_loss: dict[int, int] = {}  # id(occ) -> index in losses of its latest loss
    cur: Slot | None = None
    for t, t2 in itertools.pairwise(bounds):
        while j < len(cluster) and cluster[j].start <= t:
            active.append(cluster[j])
            j += 1
        active = [o for o in active if o.end > t]
        if not active:
            continue
        win = min(active, key=lambda o: o.key)
        if cur is not None and cur.occ is win and cur.end == t:
            cur = Slot(win, cur.start, t2)
        else:
            if cur is not None:
                slots.append(cur)
            cur = Slot(win, t, t2)
        for o in active:
            if o is win:
                continue
            kind: Literal["preempted", "conflict"] = "conflict" if o.key[0] == win.key[0] else "preempted"
            k = last_loss.get(id(o))
            if k is not None and losses[k].end == t and losses[k].by is win:
                prev = losses[k]
                losses[k] = Loss(o, prev.start, t2, win, kind)
            else:
                last_loss[id(o)] = len(losses)
                losses.append(Loss(o, t, t2, win, kind))
    if cur is not None:
        slots.append(cur)


@dataclass
class Plan:
    """Resolved timelines for a set of speakers over a window."""

    start: datetime
    end: datetime
    timelines: list[Timeline] = field(default_factory=list)
    speakers_of: list[list[str]] = field(default_factory=list)
    index_of: dict[str, int] = field(default_factory=dict)

    def groups(self) -> list[tuple[list[str], Timeline]]:
        """(speakers, timeline) for each distinct timeline, speakers sorted, groups by first speaker."""
        out = [(sorted(s), t) for s, t in zip(self.speakers_of, self.timelines, strict=True)]
        out.sort(key=lambda g: g[0][0] if g[0] else "")
        return out

    def to_dict(self, tz: Any = None) -> dict[str, Any]:
        """JSON form for ``broadcast plan --json``; times in UTC ISO and local."""
        return {
            "from": self.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "to": self.end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "timezone": str(tp.get_tz(tz)),
            "groups": [{"speakers": spk, **tl.to_dict(tz)} for spk, tl in self.groups()],
        }


def resolve_plan(programs: Sequence[Program], index: ZoneIndex, start: datetime, end: datetime,
                 speakers: Iterable[str] | None = None) -> Plan:
    """Resolve every speaker's timeline (or only ``speakers``') over ``[start, end)``.

    Items are whole occurrences or their pieces as played; an occurrence that
    overlaps the window is included with its real times (not clipped).
    Unknown targets in stored programs are skipped (see ZoneIndex.resolve).
    """
    scope = frozenset(speakers) if speakers is not None else index.speakers
    reach: dict[str, list[int]] = defaultdict(list)
    active_programs: list[int] = []
    for pi, p in enumerate(programs):
        spk = index.resolve(p.targets, strict=False)
        if speakers is not None:
            spk = spk & scope
        if not spk:
            continue
        active_programs.append(pi)
        for s in spk:
            reach[s].append(pi)
    occs = {pi: [make_occ(programs[pi], s) for s in programs[pi].occurrences(start, end)]
            for pi in active_programs}
    by_sig: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for s in scope:
        by_sig[tuple(p for p in reach.get(s, ()) if occs[p])].append(s)
    plan = Plan(start, end)
    for sig, spks in by_sig.items():
        merged: list[Occ] = []
        for pi in sig:
            merged.extend(occs[pi])
        k = len(plan.timelines)
        plan.timelines.append(resolve_timeline(merged))
        plan.speakers_of.append(spks)
        for s in spks:
            plan.index_of[s] = k
    return plan


def plan_zone(programs: Sequence[Program], index: ZoneIndex, zone: str, day: date | str,
              tz: Any = None, *, now: datetime | None = None) -> Plan:
    """The resolved timeline of every speaker in ``zone`` (and below) for one local day."""
    d = tp.parse_day(day, tz=tz, now=now)
    start, end = tp.day_bounds(d, tz)
    return resolve_plan(programs, index, start, end, speakers=index.speakers_under(zone))


@dataclass(frozen=True)
class ConflictInfo:
    """An equal-priority program overlapping a new one on at least one common speaker."""

    program: Program
    speakers: tuple[str, ...]
    at: datetime

    def message(self, tz: Any = None) -> str:
        """``overlaps 'Morning news' (id 12) on spk-0042 at 2026-12-01 06:00 +07``."""
        more = len(self.speakers) - 1
        where = self.speakers[0] + (f" and {more} other speaker{'s' if more > 1 else ''}" if more else "")
        return f"overlaps {self.program.label()} on {where} at {tp.format_local(self.at, tz)}"

    def to_dict(self, tz: Any = None) -> dict[str, Any]:
        """JSON form for the API's 409 answer."""
        return {"program": self.program.id, "title": self.program.title,
                "speakers": list(self.speakers), "at": self.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "at_local": tp.format_local(self.at, tz), "message": self.message(tz)}


def check_conflicts(new: Program, existing: Iterable[Program], index: ZoneIndex, *,
                    now: datetime | None = None, horizon_days: int = 400,
                    max_occurrences: int = 10_000) -> list[ConflictInfo]:
    """The stored programs of the same priority that overlap ``new`` on a common speaker.

    Looks from ``now`` up to ``horizon_days`` ahead, or up to the end of the
    ``max_occurrences``-th occurrence of ``new`` if that comes first. Each
    conflict names the other program, the common speakers (sorted) and the
    first overlapping instant. Sorted by that instant, then program id. Unknown
    targets of ``new`` raise NotFound.
    """
    now = (now or tp.utcnow()).astimezone(UTC)
    mine = index.resolve(new.targets, strict=True)
    cands = []
    for p in existing:
        if p.rank != new.rank or (new.id is not None and p.id == new.id):
            continue
        common = mine & index.resolve(p.targets, strict=False)
        if common:
            cands.append((p, common))
    if not cands:
        return []
    horizon = now + timedelta(days=horizon_days)
    rec = new.recurrence()
    dur = new.duration_s
    n_start: list[int] = []
    for s in rec.iter_from(now - timedelta(seconds=dur), horizon):
        n_start.append(_ts(s))
        if len(n_start) >= max_occurrences:
            break
    if not n_start:
        return []
    n_end = [s + dur for s in n_start]
    hi = _dt(n_end[-1])
    out = []
    for p, common in cands:
        d = p.duration_s
        i = 0
        for s_dt in p.recurrence().iter_from(_dt(n_start[0] - d + 1), hi):
            s = _ts(s_dt)
            while i < len(n_start) and n_end[i] <= s:
                i += 1
            if i == len(n_start):
                break
            if n_start[i] < s + d:
                at = max(s, n_start[i], _ts(now))
                out.append(ConflictInfo(p, tuple(sorted(common)), _dt(at)))
                break
    out.sort(key=lambda c: (c.at, c.program.id if c.program.id is not None else _NO_ID))
    return out


__all__ = [
    "ConflictInfo", "Loss", "Occ", "Plan", "Slot", "Timeline", "ZoneIndex", "check_conflicts",
    "make_occ", "plan_zone", "resolve_plan", "resolve_timeline",
]
