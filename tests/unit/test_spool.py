"""The on-disk spool: FIFO order, restart, torn tails, damaged records, the cap (drop-oldest)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from netmgr.telemetry.spool import HEADER, Spool


def batch(i: int, points: int = 10) -> tuple[bytes, int]:
    """A batch whose content says which one it is (and does not compress away)."""
    body = "\n".join(f"m,b={i} v={j}i,r=\"{os.urandom(8).hex()}\" {i * 1000 + j}" for j in range(points))
    return body.encode(), points


def replay_all(sp: Spool) -> list[bytes]:
    out = []
    while (rec := sp.peek()) is not None:
        out.append(rec.data)
        sp.commit(rec)
    return out


def ids(datas: list[bytes]) -> list[int]:
    return [int(d.split(b",b=", 1)[1].split(b" ", 1)[0]) for d in datas]


def test_fifo_order_across_segments_and_nothing_left(tmp_path):
    sp = Spool(tmp_path, 10 * 2**20, segment_bytes=2000).open()
    batches = [batch(i) for i in range(50)]
    for data, n in batches:
        assert sp.append(data, n) == 0
    assert len(sp.segments) > 3 and sp.points == 500
    assert replay_all(sp) == [d for d, _ in batches]
    assert sp.points == 0 and sp.pending_bytes == 0 and sp.segments == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cursor"]
    data, n = batch(99)
    sp.append(data, n)  # appends after a full replay start a fresh segment
    assert replay_all(sp) == [data]


def test_restart_resumes_where_replay_stopped(tmp_path):
    sp = Spool(tmp_path, 10 * 2**20, segment_bytes=3000).open()
    batches = [batch(i) for i in range(20)]
    sp.append_many(batches)
    for _ in range(7):
        rec = sp.peek()
        assert rec is not None
        sp.commit(rec)
    rec = sp.peek()  # read but not committed (the write failed, or we crashed): it comes again
    sp.close()
    sp2 = Spool(tmp_path, 10 * 2**20, segment_bytes=3000).open()
    assert sp2.points == 130
    assert ids(replay_all(sp2)) == list(range(7, 20))
    assert rec is not None and ids([rec.data]) == [7]


def test_torn_tail_is_cut_and_appends_continue(tmp_path):
    sp = Spool(tmp_path, 10 * 2**20).open()
    for i in range(3):
        sp.append(*batch(i))
    sp.close()
    seg = next(tmp_path.glob("*.seg"))
    good_size = seg.stat().st_size
    full = HEADER.size + 500
    with open(seg, "ab") as f:  # a crash in the middle of the fourth append
        f.write(HEADER.pack(b"NMS1", 500, 0, 10) + b"x" * 100)
    sp2 = Spool(tmp_path, 10 * 2**20).open()
    assert sp2.torn_records == 1 and seg.stat().st_size == good_size < good_size + full
    assert sp2.points == 30
    sp2.append(*batch(3))
    assert ids(replay_all(sp2)) == [0, 1, 2, 3]


def test_bad_crc_in_the_newest_segment_cuts_there(tmp_path):
    sp = Spool(tmp_path, 10 * 2**20).open()
    for i in range(3):
        sp.append(*batch(i))
    sp.close()
    seg = next(tmp_path.glob("*.seg"))
    raw = bytearray(seg.read_bytes())
    first_len = HEADER.unpack_from(raw, 0)[1]
    second = HEADER.size + first_len
    raw[second + HEADER.size + 3] ^= 0xFF  # flip a byte inside the second record's payload
    seg.write_bytes(bytes(raw))
    sp2 = Spool(tmp_path, 10 * 2**20).open()
    assert sp2.torn_records == 1 and sp2.points == 10
    assert ids(replay_all(sp2)) == [0]


def test_damage_in_an_older_segment_skips_its_rest_and_counts_it(tmp_path):
    sp = Spool(tmp_path, 10 * 2**20, segment_bytes=2000).open()
    sp.append_many([batch(i) for i in range(12)])
    sp.close()
    segs = sorted(tmp_path.glob("*.seg"))
    assert len(segs) >= 2
    first = segs[0]
    raw = bytearray(first.read_bytes())
    n_first = 0
    off = 0
    while off < len(raw):
        off += HEADER.size + HEADER.unpack_from(raw, off)[1]
        n_first += 1
    assert n_first >= 2
    first_len = HEADER.unpack_from(raw, 0)[1]
    raw[HEADER.size + first_len + HEADER.size + 1] ^= 0xFF  # second record of the oldest segment
    first.write_bytes(bytes(raw))
    sp2 = Spool(tmp_path, 10 * 2**20, segment_bytes=2000).open()
    got = ids(replay_all(sp2))
    assert got == [0] + list(range(n_first, 12))
    assert sp2.corrupt_records == 1 and sp2.dropped_points == 10 * (n_first - 1)


def test_cap_drops_the_oldest_segments_and_counts_their_points(tmp_path):
    cap = 20_000
    sp = Spool(tmp_path, cap, segment_bytes=2500).open()
    appended = 0
    for i in range(200):
        sp.append(*batch(i))
        appended += 10
        assert sp.bytes <= cap
    on_disk = sum(p.stat().st_size for p in tmp_path.glob("*.seg"))
    assert on_disk == sp.bytes <= cap
    kept = ids(replay_all(sp))
    assert kept == list(range(200 - len(kept), 200))  # the newest survive, in order
    assert sp.dropped_points == appended - 10 * len(kept) > 0
    assert sp.stats()["spool_dropped_points"] == sp.dropped_points


def test_cap_while_replaying_counts_only_what_was_not_replayed(tmp_path):
    sp = Spool(tmp_path, 6000, segment_bytes=1500).open()
    for i in range(6):
        sp.append(*batch(i))
    sp.commit(sp.peek())  # batch 0 replayed
    held = sp.peek()  # batch 1 read, its write in flight
    for i in range(6, 40):
        sp.append(*batch(i))
    assert sp.dropped_points > 0
    sp.commit(held)  # its segment was dropped meanwhile: a no-op, nothing breaks
    assert sp.replayed_points == 10
    assert sp.points + sp.dropped_points + sp.replayed_points == 400
    rest = ids(replay_all(sp))
    assert rest == list(range(40 - len(rest), 40))


def test_a_batch_larger_than_the_cap_is_refused_and_counted(tmp_path):
    sp = Spool(tmp_path, 1000).open()
    data, n = batch(1, points=200)
    assert sp.append(data, n) == 200
    assert sp.points == 0 and sp.dropped_points == 200


WRITER = """
import sys
sys.path.insert(0, {repo!r})
from netmgr.telemetry.spool import Spool
sp = Spool(__import__("pathlib").Path({d!r}), 1 << 30, segment_bytes=50_000).open()
i = 0
while True:
    sp.append(("m,b=%d v=%di " % (i, i) + "x" * 3000 + " 1").encode(), 1)
    i += 1
    print(i, flush=True)
"""


def test_killed_mid_append_loses_nothing_that_was_acknowledged(tmp_path):
    repo = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-c", WRITER.format(repo=repo, d=str(tmp_path))],
                            stdout=subprocess.PIPE, text=True)
    acked = 0
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while acked < 300 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert acked >= 300, "the writer did not get going"
    sp = Spool(tmp_path, 1 << 30, segment_bytes=50_000).open()
    got = [int(d.split(b",b=", 1)[1].split(b" ", 1)[0]) for d in replay_all(sp)]
    assert got == list(range(len(got)))  # in order, no gap, no damage read back
    assert len(got) >= acked
