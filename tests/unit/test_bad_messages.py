"""Issue 12, item 12: bad MQTT messages are counted, and logged within a global budget per kind."""

from __future__ import annotations

import logging
import time

from netmgr.radio.inbound import BadMessageLog


def test_spoofed_node_ids_make_a_bounded_number_of_lines(caplog):
    bad = BadMessageLog(kind_budget=20, every=0.3)
    with caplog.at_level(logging.WARNING, logger="netmgr.radio"):
        for i in range(3000):
            bad.report(f"spoof-{i}", "unknown_node", "status from a node not in the inventory")
        bad.report("loa-1", "bad_telemetry", "volume: not a number")
        lines = [r.getMessage() for r in caplog.records]
        assert len([m for m in lines if "kind=unknown_node" in m]) == 20
        assert any("kind=bad_telemetry" in m for m in lines)  # another kind has its own budget
        assert bad.counts["unknown_node"] == 3000
        deadline = time.monotonic() + 5
        while not any("suppressed" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "no summary line after the window"
            bad.summarize()
            time.sleep(0.05)
    summary = [r.getMessage() for r in caplog.records if "suppressed" in r.getMessage()]
    assert len(summary) == 1 and "2,980 more unknown_node messages suppressed" in summary[0]


def test_one_node_is_logged_once_a_window_and_escaped(caplog):
    bad = BadMessageLog(kind_budget=20, every=60)
    with caplog.at_level(logging.WARNING, logger="netmgr.radio"):
        for _ in range(100):
            bad.report("loa-1", "bad_status", "state: \x1b[31mred\x1b[0m")
    assert len(caplog.records) == 1 and "\x1b" not in caplog.records[0].getMessage()
    assert bad.counts["bad_status"] == 100
