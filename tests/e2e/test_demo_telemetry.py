"""`netmgr demo --influxdb-url` against a real VictoriaMetrics: the demo fills the SQLite ring, and
the same points (APs and speakers) arrive in VictoriaMetrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.services import free_port

from netmgr.telemetry.ring import history


def test_demo_fills_the_ring_and_victoriametrics_gets_the_same_points(tmp_path: Path, victoriametrics) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    state = tmp_path / "state"
    r = subprocess.run([sys.executable, "-m", "netmgr", "demo", "--duration", "25", "--state-dir", str(state),
                        "--api-port", str(free_port()), "--influxdb-url", victoriametrics.url],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    ring = state / "telemetry.db"
    node = "loa-tan-phu-01"
    ring_pts = history(ring, "speaker", "node", node, 0, ["online"])
    ring_ap = history(ring, "ap", "ap", "ap-unifi", 0, ["up"])
    assert len(ring_pts) >= 2 and len(ring_ap) >= 2, (len(ring_pts), len(ring_ap))
    victoriametrics.force_flush()
    vm_sp_ts = sorted(ts for s in victoriametrics.export(f'speaker_online{{node="{node}"}}') for ts in s["timestamps"])
    vm_ap_ts = sorted(ts for s in victoriametrics.export('ap_up{ap="ap-unifi"}') for ts in s["timestamps"])
    assert vm_sp_ts == sorted(p["ts"] // 10**6 for p in ring_pts)
    assert vm_ap_ts == sorted(p["ts"] // 10**6 for p in ring_ap)
