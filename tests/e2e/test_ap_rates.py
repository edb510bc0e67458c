"""`netmgr ap show` against real snmpd (v2c and v3 authPriv): rates across a Counter32 wrap, none across a restart."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from support import services
from support.services import SERVERS, chown, free_port, http_get
from support.waiting import wait_for

WRAP = 2**32
ZONE = "binh-phuoc"


@pytest.fixture(scope="module")
def agent(snmpd_factory):
    d = services.workdir("ifpass-e2e")
    shutil.copy(SERVERS / "ifpass.py", d / "ifpass.py")
    (d / "counters.json").write_text("{}")
    chown(d)
    (d / "counters.json").chmod(0o666)
    a = snmpd_factory(extra_config=f"pass_persist .1.3.6.1.2.1.2.2 /usr/bin/python3 {d / 'ifpass.py'}",
                      disable_modules="ifTable,ifXTable,interfaces")
    a.counters = d / "counters.json"
    return a


def set_counters(agent, in_octets, out_octets):
    tmp = agent.counters.with_suffix(".tmp")
    tmp.write_text(json.dumps({"1": {"descr": "eth0", "type": 6, "speed": 100_000_000, "oper": 1,
                                     "in": in_octets, "out": out_octets}}))
    os.chmod(tmp, 0o666)
    tmp.replace(agent.counters)  # atomic: the pass script never reads half a file


def cli(env, *args):
    r = subprocess.run([sys.executable, "-m", "netmgr", *args], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, agent):
    tmp = tmp_path_factory.mktemp("rates")
    port = free_port()
    cfg = tmp / "netmgr.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{tmp / "state"}"\n[api]\nport = {port}\n[mqtt]\nenabled = false\n'
                   "[snmp]\ninterval = 5\ntimeout = 1\nretries = 1\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env.update(NETMGR_CONFIG=str(cfg), NETMGR_SERVER=f"http://127.0.0.1:{port}", XDG_CONFIG_HOME=str(tmp))
    env["NETMGR_TOKEN"] = json.loads(cli(env, "user", "add", "root", "--role", "admin", "--json"))["token"]
    set_counters(agent, 1000, 1000)
    log = open(tmp / "daemon.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "netmgr", "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_for(lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 30, "the API")
    cli(env, "zone", "add", ZONE, "--name", "Bình Phước")
    v3 = agent.v3
    cli(env, "ap", "add", "ap-v2c", "--host", "127.0.0.1", "--port", str(agent.port), "--community", agent.community,
        "--zone", ZONE, "--profile", "generic")
    cli(env, "ap", "add", "ap-v3", "--host", "127.0.0.1", "--port", str(agent.port), "--v3-user", v3["user"],
        "--auth-key", v3["auth_key"], "--priv-key", v3["priv_key"], "--zone", ZONE, "--profile", "generic")
    proc.send_signal(signal.SIGHUP)
    yield env
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    log.close()


def eth0(env, name):
    shown = json.loads(cli(env, "ap", "show", name, "--json"))
    return next((i for i in shown.get("interfaces", []) if i["name"] == "eth0"), None), shown


def wait_in_octets(env, name, value, what):
    def seen():
        itf, _ = eth0(env, name)
        return itf if itf and itf["in_octets"] == value else None

    try:
        return wait_for(seen, 20, f"{name} to poll {what}", interval=0.1)
    except TimeoutError:
        print(json.dumps(eth0(env, name)[1], indent=1)[:3000])
        raise


@pytest.mark.parametrize("name", ["ap-v2c", "ap-v3"])
def test_rates_in_ap_show(daemon, agent, name):
    env = daemon
    a_in, a_out = WRAP - 40_000, 7_000_000
    set_counters(agent, a_in, a_out)
    wait_in_octets(env, name, a_in, "the counters before the wrap")
    b_in, b_out = 60_000, 7_000_000 + 300_000
    set_counters(agent, b_in, b_out)
    itf = wait_in_octets(env, name, b_in, "the wrapped counters")
    assert itf["in_prev_octets"] == a_in and itf["out_prev_octets"] == a_out
    dt = itf["rate_interval_s"]
    assert 2 < dt < 12
    assert itf["in_bps"] == pytest.approx((WRAP - a_in + b_in) * 8 / dt)
    assert itf["out_bps"] == pytest.approx(300_000 * 8 / dt)
    human = cli(env, "ap", "show", name)
    assert "eth0" in human and "kbit/s" in human


def test_no_rate_across_agent_restart(daemon, agent):
    env = daemon
    set_counters(agent, 5_000_000, 5_000_000)
    for name in ("ap-v2c", "ap-v3"):
        wait_in_octets(env, name, 5_000_000, "before the restart")
    agent.restart()
    set_counters(agent, 100, 200)  # counters reset with the agent
    import httpx

    first: dict[str, dict] = {}
    headers = {"Authorization": f"Bearer {env['NETMGR_TOKEN']}"}

    def both_seen():
        # Record each AP's first poll after the restart: a later poll may rightly show 0 bit/s.
        for name in ("ap-v2c", "ap-v3"):
            if name in first:
                continue
            shown = httpx.get(f"{env['NETMGR_SERVER']}/api/v1/aps/{name}", headers=headers, timeout=5).json()
            itf = next((i for i in shown.get("interfaces", []) if i["name"] == "eth0"), None)
            if itf and itf["in_octets"] == 100:
                first[name] = itf
        return len(first) == 2

    wait_for(both_seen, 30, "both APs to poll after the agent restart", interval=0.05)
    for name, itf in first.items():
        # The poller saw the restart (sysUpTime went back) on this counter...
        assert itf["in_restart_age_s"] is not None and itf["out_restart_age_s"] is not None, (name, itf)
        if itf["in_prev_octets"] == 5_000_000:
            # ...and the poll that straddled it gave no rate;
            assert itf["in_bps"] is None and itf["out_bps"] is None, (name, itf)
        else:
            # or, if a later poll is what we caught (a loaded machine), its rate is from
            # post-restart samples only: counters unchanged since, so exactly zero, never a spike.
            assert itf["in_prev_octets"] == 100 and itf["in_bps"] == 0.0 and itf["out_bps"] == 0.0, (name, itf)
