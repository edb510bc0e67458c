"""Command tracking in memory: a finished command keeps only what may still change."""

from __future__ import annotations

import time

from netmgr.radio.commands import TrackedCommand, Tracker
from netmgr.radio.protocol import Command, Reply


def finished_command(now: float) -> tuple[Tracker, TrackedCommand]:
    """A play to 10 nodes that expired 5 minutes ago: 8 done, 1 error, 1 offline throughout."""
    tr = Tracker(ack_timeout=10)
    nodes = [f"spk-{i}" for i in range(10)]
    tc = TrackedCommand(Command("p1-20261129T100000Z", "play", {}, now - 600, now - 300), nodes, ["z"])
    tr.add(tc)
    tc.published_wall = now - 600
    for i, n in enumerate(nodes[:9]):
        tc.deliveries[n].move("sent", now - 600)
        tc.deliveries[n].times["accepted"] = now - 600 + 0.1 * (i + 1)
        tc.deliveries[n].move("error" if i == 8 else "done", now - 590)
    tc.deliveries[nodes[9]].move("offline", now - 600)
    tr.sweep()  # expired: the offline delivery is noted so, to be stored
    for d in tc.deliveries.values():  # the radio service's flush stored everything
        d.dirty = False
    tc.dirty = False
    return tr, tc


def test_a_stored_finished_command_drops_its_final_deliveries_and_keeps_its_figures() -> None:
    now = time.time()
    tr, tc = finished_command(now)
    before = (tc.summary(), tc.total, tr.accept_latencies(tc), tc.complete)
    tr.sweep()
    assert sorted(tc.deliveries) == ["spk-9"]  # the offline node may still report its cached playback
    assert (tc.summary(), tc.total, tr.accept_latencies(tc), tc.complete) == before
    assert tc.to_dict(deliveries=False)["total"] == 10
    # A repeated reply from a dropped node changes nothing; the offline one still moves on.
    assert tr.on_reply("spk-3", Reply(tc.cmd.id, "done", now)) == "stale"
    assert tr.on_reply("nobody", Reply(tc.cmd.id, "done", now)) == "stranger"
    assert tr.on_reply("spk-9", Reply(tc.cmd.id, "done", now)) == "ok"
    assert tc.summary() == {"done": 9, "error": 1} and tc.dirty


def test_nothing_is_dropped_before_it_is_stored_or_while_the_command_runs() -> None:
    now = time.time()
    tr, tc = finished_command(now)
    tc.deliveries["spk-0"].dirty = True  # not yet flushed
    tc.dirty = True
    tr.sweep()
    assert len(tc.deliveries) == 10 and not tc.dropped
    running = TrackedCommand(Command("c-live", "play", {}, now, now + 300), ["a", "b"], [])
    tr.add(running)
    running.deliveries["a"].move("done", now)
    running.deliveries["a"].dirty = running.dirty = False
    tr.sweep()
    assert sorted(running.deliveries) == ["a", "b"]
