"""The poller against real net-snmp snmpd: rates across a Counter32 wrap, none across a restart."""

from __future__ import annotations

import json
import shutil

import pytest
from support.services import SERVERS, chown

from netmgr.snmp.client import SnmpClient, Target
from netmgr.snmp.poller import Poller
from netmgr.snmp.profiles import load_profiles
from netmgr.snmp.state import ApRuntime

WRAP = 2**32


@pytest.fixture(scope="module")
def counter_agent(snmpd_factory, tmp_path_factory):
    """snmpd whose ifTable comes from a counters.json the test writes."""
    from support import services

    d = services.workdir("ifpass")
    shutil.copy(SERVERS / "ifpass.py", d / "ifpass.py")
    (d / "counters.json").write_text("{}")
    chown(d)
    (d / "counters.json").chmod(0o666)
    agent = snmpd_factory(extra_config=f"pass_persist .1.3.6.1.2.1.2.2 /usr/bin/python3 {d / 'ifpass.py'}",
                          disable_modules="ifTable,ifXTable,interfaces")
    agent.counters = d / "counters.json"
    return agent


def write(agent, in_octets, out_octets, speed=4_000_000_000):
    agent.counters.write_text(json.dumps({"1": {"descr": "eth0", "type": 6, "speed": speed, "oper": 1,
                                                "in": in_octets, "out": out_octets}}))


def targets(agent):
    v3 = agent.v3
    return {
        "v2c": Target("ap-v2c", "127.0.0.1", agent.port, community=agent.community, timeout=2, retries=1),
        "v3": Target("ap-v3", "127.0.0.1", agent.port, version="3", v3_user=v3["user"], auth_proto="SHA",
                     auth_key=v3["auth_key"], priv_proto="AES", priv_key=v3["priv_key"], timeout=2, retries=1),
    }


@pytest.mark.parametrize("version", ["v2c", "v3"])
async def test_rates_across_wrap_and_restart(counter_agent, version):
    profiles = load_profiles()
    async with SnmpClient() as client:
        poller = Poller(client, profiles, interval=60, concurrency=4, down_after=3, up_after=1)
        ap = ApRuntime(1, "ap-test", "z", targets(counter_agent)[version], forced_profile="generic")

        write(counter_agent, WRAP - 5_000, 1_000_000)
        assert await poller.poll_one(ap), ap.last_error
        assert ap.reach.status == "up"
        t1 = ap.samples[(1, "in")].t
        assert ap.rates[1]["in_bps"] is None  # first sample: no rate yet

        write(counter_agent, 20_000, 1_250_000)  # in wraps; out moves 250,000
        assert await poller.poll_one(ap), ap.last_error
        dt = ap.samples[(1, "in")].t - t1
        assert ap.rates[1]["in_bps"] == pytest.approx((5_000 + 20_000) * 8 / dt)
        assert ap.rates[1]["out_bps"] == pytest.approx(250_000 * 8 / dt)

        counter_agent.restart()  # sysUpTime starts again from 0
        write(counter_agent, 10, 20)
        assert await poller.poll_one(ap), ap.last_error
        assert (ap.rates[1]["in_bps"], ap.rates[1]["out_bps"]) == (None, None)

        write(counter_agent, 10 + 12_500, 20)
        t_prev = ap.samples[(1, "in")].t
        assert await poller.poll_one(ap), ap.last_error
        dt = ap.samples[(1, "in")].t - t_prev
        assert ap.rates[1]["in_bps"] == pytest.approx(12_500 * 8 / dt)
        assert ap.rates[1]["out_bps"] == 0


async def test_reachability_hysteresis(counter_agent):
    profiles = load_profiles()
    write(counter_agent, 1, 1)
    async with SnmpClient() as client:
        poller = Poller(client, profiles, interval=60, concurrency=4, down_after=3, up_after=1)
        t = targets(counter_agent)["v2c"]
        ap = ApRuntime(1, "ap-h", "z", t, forced_profile="generic")
        assert await poller.poll_one(ap) and ap.reach.status == "up"
        counter_agent.stop()
        try:
            from dataclasses import replace

            ap.target = replace(t, timeout=0.2, retries=0)
            for expected in ("up", "up", "down"):
                assert not await poller.poll_one(ap)
                assert ap.reach.status == expected
            assert f"ap-v2c (127.0.0.1:{counter_agent.port}): no SNMP response" in ap.last_error
        finally:
            counter_agent.start()
        ap.target = t
        assert await poller.poll_one(ap)
        assert ap.reach.status == "up" and ap.reach.flaps == 2
        assert [e[1] for e in ap.events] == ["up", "down", "up"]


async def test_one_blackholed_ap_among_500_changes_nothing(snmpd):
    """The issue's test: 500 APs polled with and without one dead AP among them."""
    import socket
    import statistics
    import time
    from dataclasses import replace

    from netmgr.snmp.profiles import Profiles

    generic = load_profiles()["generic"]
    # System group and ifTable only: the agent's HOST-RESOURCES tables are slow to compute
    # and would make this a test of snmpd.
    light = replace(generic, name="light", tables={"if": generic.tables["if"]})
    profiles = Profiles({"light": light, "generic": generic})
    # Generous timeouts for the live agent: on a loaded CI machine snmpd itself can be slow,
    # and that is not what this test is about.
    live = Target("live", "127.0.0.1", snmpd.port, community=snmpd.community, timeout=5, retries=2)
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hole.bind(("127.0.0.1", 0))
    dead = Target("dead", "127.0.0.1", hole.getsockname()[1], timeout=2, retries=1)

    async def round_of(with_dead: bool) -> tuple[list[float], float]:
        import asyncio

        async with SnmpClient() as client:
            poller = Poller(client, profiles, interval=60, concurrency=32, down_after=3, up_after=1)
            aps = [ApRuntime(i, f"ap{i}", "z", live, forced_profile="light") for i in range(499)]
            aps.append(ApRuntime(499, "ap-dead", "z", dead if with_dead else live, forced_profile="light"))
            async def scheduled(ap):  # what the scheduler does: polls bounded by the semaphore
                async with poller.sem:
                    return await poller.poll_one(ap)

            t0 = time.monotonic()
            dead_task = asyncio.ensure_future(scheduled(aps[499]))  # the dead AP goes first
            live_done = asyncio.gather(*(scheduled(a) for a in aps[:499]))
            results = await live_done
            wall = time.monotonic() - t0
            await dead_task
            assert all(results), (client.transport.stats, with_dead, sum(1 for r in results if not r))
            return [a.response_ms for a in aps[:499]], wall

    try:
        base_times, base_wall = await round_of(False)
        times, wall = await round_of(True)
    finally:
        hole.close()
    # The 499 live APs finish as fast with the dead one among them: its 2 s x 2 tries block nobody.
    assert wall < max(base_wall * 1.5, base_wall + 1.0), (wall, base_wall)
    assert statistics.median(times) < max(statistics.median(base_times) * 1.5, statistics.median(base_times) + 50)
