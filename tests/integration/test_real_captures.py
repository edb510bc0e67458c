"""Every profile against the real device captures in ../shared/data/snmprec (optional).

The captures (LibreNMS test fixtures, GPL-3.0) stay outside the project; these tests
skip when they are absent (the ``shared_snmprec`` fixture in tests/conftest.py). Each
capture is served in memory by snmprec.Agent with GET/GETNEXT semantics, identified
(sysObjectID, sysDescr, probes) and evaluated exactly as a live poll would be. Expected
values were read from the capture files.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from netmgr.snmp import evaluate, snmprec
from netmgr.snmp.discover import identify
from netmgr.snmp.profiles import load_profiles

# capture -> (profile, clients_total, interfaces, extra checks on the result)
CAPTURES = {
    # mtxrWlApClientCount 7 + 0 + 0 + 4 over four wireless interfaces; 12 IF-MIB rows.
    "routeros": ("routeros", 11, 12, {"clients_by_radio": {"wlan1": 7, "wlan2": 0, "wlan3": 0, "wlan4": 4}}),
    # NET-SNMP-EXTEND clients-wlan0 = 2, clients-wlan1 = 1 (clients-wlan = 3 is their sum, not added again).
    "openwrt": ("openwrt", 3, 18, {"clients_by_radio": {"wlan0": 2, "wlan1": 1}}),
    # unifiVapNumStations 0 + 1 + 3 + 0; the agent exposes no IF-MIB.
    "unifi": ("unifi", 4, 0, {"clients_by_ssid": {"Main SSID": 1, "guest": 3, "Maintenance": 0}}),
    # ubntWlStatStaCount.1 = 1; 9 IF-MIB rows.
    "airos_airos8": ("airmax", 1, 9, {}),
    # cambiumAPNumberOfConnectedSTA.0 = 1; LAN and WLAN interfaces.
    "epmp": ("epmp", 1, 2, {}),
    # ruckusSZSystemStatsNumSta.0 = 146.
    "ruckuswireless-sz": ("ruckus-sz", 146, 0, {}),
    # ruckusUnleashedSystemStatsNumSta.0 = 0 (a real zero, not missing).
    "ruckuswireless-unleashed": ("ruckus-unleashed", 0, 0, {}),
    # Per-radio stations 11 + 54 = 65, the same as the total scalar.
    "zyxelnwa": ("zyxel-nwa", 65, 0, {"clients_by_radio": {"1": 11, "2": 54}}),
    # System group only: the controller is recognised, no client data to report.
    "ciscowlc": ("cisco-wlc", None, 0, {}),
    # A plain net-snmp host: the generic fallback, CPU from hrProcessorLoad.
    "linux": ("generic", None, 0, {}),
}

PROFILES = load_profiles()


def evaluate_capture(path: Path) -> evaluate.PollResult:
    agent = snmprec.Agent(snmprec.load(path))

    async def get(oids):
        return [agent.get(o) for o in oids]

    profile, _, _ = asyncio.run(identify(get, PROFILES))
    scalars, columns = profile.fetch_plan()
    return evaluate.evaluate(profile, {o: agent.get(o) for o in scalars}, agent.walk(columns))


def test_every_capture_is_covered(shared_snmprec):
    assert {p.stem for p in shared_snmprec.glob("*.snmprec")} <= set(CAPTURES)


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_capture_matches_its_profile_and_client_count(shared_snmprec, name):
    path = shared_snmprec / f"{name}.snmprec"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    profile, clients, interfaces, extra = CAPTURES[name]
    r = evaluate_capture(path)
    assert r.profile == profile
    assert r.clients_total == clients
    assert len(r.interfaces) == interfaces
    for key, want in extra.items():
        assert getattr(r, key) == want, key
    assert r.sys_object_id  # every capture has the system group


def test_capture_details(shared_snmprec):
    """A few values beyond client counts, read from the captures by hand."""
    r = evaluate_capture(shared_snmprec / "routeros.snmprec")
    assert r.cpu_pct is not None and r.mem_total_bytes and r.mem_used_bytes
    assert {x.name: x.channel for x in r.radios}["wlan1"] == 2412
    r = evaluate_capture(shared_snmprec / "openwrt.snmprec")
    assert [(x.name, x.channel, x.noise_dbm, x.clients) for x in r.radios] == [
        ("wlan0", 5180, -90, 2), ("wlan1", 2462, -65, 1)]
    r = evaluate_capture(shared_snmprec / "epmp.snmprec")
    assert [i.counter_bits for i in r.interfaces] == [64, 64]  # ifHCInOctets present
    assert r.interfaces[0].in_octets == 3377931056550
    r = evaluate_capture(shared_snmprec / "zyxelnwa.snmprec")
    assert [(x.name, x.channel, x.clients) for x in r.radios] == [("1", 4, 11), ("2", 124, 54)]
    assert r.cpu_pct == 42.0
