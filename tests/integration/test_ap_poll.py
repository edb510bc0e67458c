"""`netmgr ap poll` against snmpsim serving every recording (ours, and the real captures if present)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from netmgr.paths import devices_dir

SIM = devices_dir() / "sim"
EXPECTED = yaml.safe_load((SIM / "expected.yaml").read_text())

# What the real LibreNMS captures must match (profile, client total); None: no client table.
CAPTURES = {
    "unifi": ("unifi", 4),
    "routeros": ("routeros", 11),
    "openwrt": ("openwrt", 3),
    "airos_airos8": ("airmax", 1),
    "epmp": ("epmp", 1),
    "ruckuswireless-sz": ("ruckus-sz", 146),
    "ruckuswireless-unleashed": ("ruckus-unleashed", 0),
    "ciscowlc": ("cisco-wlc", None),
    "zyxelnwa": ("zyxel-nwa", 65),
    "linux": ("generic", None),
}


def ap_poll(port, community, *extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    r = subprocess.run([sys.executable, "-m", "netmgr", "ap", "poll", f"127.0.0.1:{port}", "--community",
                        community, "--timeout", "2", "--json", *extra], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_poll_each_recording(snmpsim, name):
    got = ap_poll(snmpsim.port, name)
    want = EXPECTED[name]
    assert got["profile"] == want["profile"]
    assert got["clients_total"] == want["clients_total"]
    assert len(got["interfaces"]) == want["interfaces"]
    assert got["sys_name"] and got["vendor"]


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_poll_real_captures(shared_snmprec, snmpsim_factory, name):
    sim = getattr(test_poll_real_captures, "sim", None) or snmpsim_factory(shared_snmprec)
    test_poll_real_captures.sim = sim
    got = ap_poll(sim.port, name)
    assert (got["profile"], got["clients_total"]) == CAPTURES[name]


def test_unknown_profile_and_dead_agent_are_one_line(snmpsim):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    r = subprocess.run([sys.executable, "-m", "netmgr", "ap", "poll", f"127.0.0.1:{snmpsim.port}",
                        "--community", "no-such-device", "--timeout", "0.3", "--retries", "0"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip() == (f"netmgr: error: 127.0.0.1:{snmpsim.port} (127.0.0.1:{snmpsim.port}): no SNMP "
                                "response within 0.3s after 0 retries; check that the agent is up, reachable "
                                "and uses this community/user")
