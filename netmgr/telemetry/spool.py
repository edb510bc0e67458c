"""A bounded on-disk spool of line-protocol batches: FIFO, crash-safe, capped.

Layout: ``{state_dir}/telemetry-spool/`` holds segment files ``<seq>.seg``
(16 digits, ascending) and ``cursor``. A segment is a sequence of records::

    "NMS1" | u32 payload length | u32 CRC-32 of the payload | u32 points | payload

little-endian; the payload is one batch of line protocol, zlib-compressed (level
1: line protocol shrinks ~8x, so the cap holds ~8x the hours of outage).

Durability (fsync policy): every append is fsynced before it returns, so a
batch that counts as spooled survives a crash or power loss; a new segment's
directory entry is fsynced when it is created. The replay ``cursor`` (segment,
offset) is replaced atomically (write + rename) but not fsynced: after a power
loss the last few replayed records may be sent again (at-least-once; InfluxDB
overwrites a point with the same series and timestamp).

Torn records: a crash can only tear the last record of the newest segment
(older segments were complete and fsynced before the next one started). On
open every record of the newest segment is checked (header, length, CRC) and
the file is cut at the first bad one; older segments are checked while they
are replayed, and a damaged record ends its segment (its remaining points are
counted as dropped).

The cap (``max_bytes``): when an append would exceed it, the *oldest* segments
are deleted and their points counted in ``dropped_points``. Oldest, not newest,
because the NOC watches the present: after a long outage the most recent hours
are worth more than the first ones, and refusing new batches would freeze the
spool at the start of the outage. (Telegraf's metric buffer and Prometheus'
remote-write queue make the same choice.)

Every method is blocking (file I/O) and thread-safe: call it through
``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC = b"NMS1"
HEADER = struct.Struct("<4sIII")
SUFFIX = ".seg"
MAX_RECORD = 256 * 2**20  # a length beyond this is damage, not data


@dataclass(slots=True)
class Segment:
    """One segment file: its valid size and how many points its records hold."""

    seq: int
    path: Path
    size: int = 0
    points: int = 0


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One spooled batch, read for replay; hand it back to :meth:`Spool.commit` once written."""

    seq: int
    offset: int
    end: int
    points: int
    data: bytes


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """FIFO of line-protocol batches on disk, capped at ``max_bytes`` (drop-oldest)."""

    def __init__(self, directory: Path, max_bytes: int, *, segment_bytes: int | None = None,
                 fsync: bool = True) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or min(16 * 2**20, max(64 * 2**10, max_bytes // 8))
        self.fsync = fsync
        self.segments: list[Segment] = []
        self._lock = threading.Lock()
        self._fd: int | None = None  # the newest segment, open for appending
        self._cur_seq = 0
        self._cur_off = 0
        self._cur_points = 0  # points of the cursor's segment already replayed
        self.dropped_points = 0
        self.dropped_bytes = 0
        self.torn_records = 0
        self.corrupt_records = 0
        self.appended_points = 0
        self.replayed_points = 0

    # ------------------------------------------------------------------ state

    @property
    def bytes(self) -> int:
        """Bytes on disk in segment files."""
        return sum(s.size for s in self.segments)

    @property
    def points(self) -> int:
        """Points waiting for replay."""
        return sum(s.points for s in self.segments) - self._cur_points

    @property
    def pending_bytes(self) -> int:
        """Bytes of records not yet replayed (0: nothing to replay)."""
        return self.bytes - self._cur_off if self.segments else 0

    def stats(self) -> dict[str, int]:
        return {"spool_bytes": self.bytes, "spool_points": self.points, "spool_segments": len(self.segments),
                "spool_dropped_points": self.dropped_points, "spool_dropped_bytes": self.dropped_bytes,
                "spool_torn_records": self.torn_records, "spool_corrupt_records": self.corrupt_records}

    # ------------------------------------------------------------------ open/close

    def open(self) -> Spool:
        """Create the folder, find the segments, cut a torn tail, read the cursor."""
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            segs = []
            for p in self.dir.iterdir():
                if p.suffix == SUFFIX and p.stem.isdigit():
                    segs.append(Segment(int(p.stem), p))
                elif p.name.endswith(".tmp"):
                    p.unlink(missing_ok=True)
            segs.sort(key=lambda s: s.seq)
            for i, seg in enumerate(segs):
                self._scan(seg, verify=i == len(segs) - 1)
            self.segments = [s for s in segs if s.size > 0 or s is segs[-1]]
            for s in segs:
                if s not in self.segments:
                    s.path.unlink(missing_ok=True)
            self._read_cursor()
            if self.segments:
                newest = self.segments[-1]
                self._fd = os.open(newest.path, os.O_WRONLY | os.O_APPEND)
            if self.points:
                log.info("telemetry spool holds points=%d bytes=%d dir=%s", self.points, self.bytes, self.dir)
        return self

    def _scan(self, seg: Segment, verify: bool) -> None:
        """Walk a segment's records; with ``verify`` check CRCs and cut a torn or damaged tail."""
        size = seg.path.stat().st_size
        off = points = 0
        with open(seg.path, "rb") as f:
            while off < size:
                head = f.read(HEADER.size)
                ok = len(head) == HEADER.size
                if ok:
                    magic, length, crc, n = HEADER.unpack(head)
                    ok = magic == MAGIC and length <= MAX_RECORD and off + HEADER.size + length <= size
                if ok and verify:
                    ok = zlib.crc32(f.read(length)) == crc
                elif ok:
                    f.seek(length, os.SEEK_CUR)
                if not ok:
                    break
                off += HEADER.size + length
                points += n
        if off < size:
            if verify:
                self.torn_records += 1
                log.warning("telemetry spool: torn record at the end of %s (offset %d of %d bytes): cut",
                            seg.path, off, size)
                os.truncate(seg.path, off)
            else:
                self.corrupt_records += 1
                self.dropped_bytes += size - off
                log.warning("telemetry spool: damaged record in %s at offset %d; the rest of the segment "
                            "is skipped", seg.path, off)
        seg.size, seg.points = off, points

    def _read_cursor(self) -> None:
        self._cur_seq = self.segments[0].seq if self.segments else 0
        self._cur_off = self._cur_points = 0
        try:
            seq, off, pts = (int(x) for x in (self.dir / "cursor").read_text().split())
        except (OSError, ValueError):
            return
        # Segments before the cursor were replayed; a crash kept them from being deleted.
        while self.segments and self.segments[0].seq < seq:
            self.segments.pop(0).path.unlink(missing_ok=True)
        if self.segments and self.segments[0].seq == seq and off <= self.segments[0].size:
            self._cur_seq, self._cur_off, self._cur_points = seq, off, pts
        elif self.segments:
            self._cur_seq = self.segments[0].seq
        else:
            self._cur_seq = seq  # new segments must number after it, or the next open deletes them

    def _write_cursor(self) -> None:
        tmp = self.dir / "cursor.tmp"
        tmp.write_text(f"{self._cur_seq} {self._cur_off} {self._cur_points}\n")
        os.replace(tmp, self.dir / "cursor")

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    # ------------------------------------------------------------------ append

    def append(self, data: bytes, points: int) -> int:
        """Spool one batch (durable when this returns). Returns the points the cap dropped."""
        return self.append_many([(data, points)])

    def append_many(self, batches: list[tuple[bytes, int]]) -> int:
        """Spool batches in order with one fsync. Returns the points the cap dropped."""
        with self._lock:
            before = self.dropped_points
            wrote = False
            for data, points in batches:
                payload = zlib.compress(data, 1)
                rec = HEADER.pack(MAGIC, len(payload), zlib.crc32(payload), points) + payload
                if len(rec) > self.max_bytes:
                    self.dropped_points += points
                    self.dropped_bytes += len(rec)
                    log.warning("telemetry spool: a batch of %d points (%d bytes) is larger than the whole "
                                "spool cap (%d bytes): dropped", points, len(rec), self.max_bytes)
                    continue
                self._make_room(len(rec))
                if not self.segments or self.segments[-1].size + len(rec) > self.segment_bytes:
                    if wrote:
                        self._sync()
                        wrote = False
                    self._rotate()
                seg = self.segments[-1]
                assert self._fd is not None
                view = memoryview(rec)
                while view:
                    view = view[os.write(self._fd, view):]
                seg.size += len(rec)
                seg.points += points
                self.appended_points += points
                wrote = True
            if wrote:
                self._sync()
            return self.dropped_points - before

    def _sync(self) -> None:
        if self.fsync and self._fd is not None:
            os.fsync(self._fd)

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        seq = self.segments[-1].seq + 1 if self.segments else max(self._cur_seq, 1)
        seg = Segment(seq, self.dir / f"{seq:016d}{SUFFIX}")
        self._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        self.segments.append(seg)
        if len(self.segments) == 1:
            self._cur_seq, self._cur_off, self._cur_points = seq, 0, 0
            self._write_cursor()
        if self.fsync:
            _fsync_dir(self.dir)

    def _make_room(self, need: int) -> None:
        """Drop the oldest segments until ``need`` more bytes fit under the cap."""
        while self.segments and self.bytes + need > self.max_bytes:
            seg = self.segments[0]
            lost = seg.points - (self._cur_points if seg.seq == self._cur_seq else 0)
            self._drop_first()
            self.dropped_points += lost
            self.dropped_bytes += seg.size
            log.warning("telemetry spool full (cap %d bytes): dropped the oldest segment %s with %d points",
                        self.max_bytes, seg.path.name, lost)

    def _drop_first(self) -> None:
        seg = self.segments.pop(0)
        if not self.segments and self._fd is not None:
            os.close(self._fd)
            self._fd = None
        seg.path.unlink(missing_ok=True)
        nxt = self.segments[0].seq if self.segments else seg.seq + 1
        self._cur_seq, self._cur_off, self._cur_points = nxt, 0, 0
        with contextlib.suppress(OSError):
            self._write_cursor()

    # ------------------------------------------------------------------ replay

    def peek(self) -> SpoolRecord | None:
        """The oldest record not yet replayed (decompressed), or None when there is none."""
        with self._lock:
            while self.segments:
                seg = self.segments[0]
                if seg.seq != self._cur_seq:
                    self._cur_seq, self._cur_off, self._cur_points = seg.seq, 0, 0
                if self._cur_off >= seg.size:
                    if len(self.segments) == 1:
                        return None
                    self._drop_first()
                    self._write_cursor()
                    continue
                rec = self._read(seg, self._cur_off)
                if rec is not None:
                    return rec
                # Damaged: the rest of this segment cannot be trusted; count it and move on.
                self.corrupt_records += 1
                lost = seg.points - self._cur_points
                self.dropped_points += lost
                self.dropped_bytes += seg.size - self._cur_off
                log.warning("telemetry spool: damaged record in %s at offset %d; %d points skipped",
                            seg.path, self._cur_off, lost)
                seg.points = self._cur_points
                if len(self.segments) == 1:  # the newest: cut it so appends continue cleanly
                    os.truncate(seg.path, self._cur_off)
                seg.size = self._cur_off
            return None

    def _read(self, seg: Segment, off: int) -> SpoolRecord | None:
        try:
            with open(seg.path, "rb") as f:
                f.seek(off)
                head = f.read(HEADER.size)
                if len(head) < HEADER.size:
                    return None
                magic, length, crc, n = HEADER.unpack(head)
                if magic != MAGIC or length > MAX_RECORD or off + HEADER.size + length > seg.size:
                    return None
                payload = f.read(length)
            if len(payload) != length or zlib.crc32(payload) != crc:
                return None
            return SpoolRecord(seg.seq, off, off + HEADER.size + length, n, zlib.decompress(payload))
        except (OSError, zlib.error):
            return None

    def commit(self, rec: SpoolRecord) -> None:
        """``rec`` was written: advance past it (and delete its segment once fully replayed)."""
        with self._lock:
            if not self.segments or rec.seq != self._cur_seq or rec.offset != self._cur_off:
                return  # the cap dropped its segment meanwhile
            self._cur_off = rec.end
            self._cur_points += rec.points
            self.replayed_points += rec.points
            seg = self.segments[0]
            if self._cur_off >= seg.size:
                # Fully replayed: delete it, even the newest (the next append starts a new one).
                self._drop_first()
            self._write_cursor()
