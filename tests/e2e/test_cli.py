"""The CLI as a person uses it, against a real `netmgr run` and the demo."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from support.services import free_port, http_get
from support.waiting import read_until, wait_for

COMMUNE_A = "binh-phuoc/dong-xoai/tan-phu"
COMMUNE_B = "binh-phuoc/dong-xoai/tien-thanh"


def netmgr(*args, env, check=None, timeout=60):
    r = subprocess.run([sys.executable, "-m", "netmgr", *args], env=env, capture_output=True, text=True,
                       timeout=timeout)
    if check is not None:
        assert r.returncode == check, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


@pytest.fixture
def daemon(tmp_path):
    port = free_port()
    cfg = tmp_path / "netmgr.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[api]\nport = {port}\n'
                   "[mqtt]\nenabled = false\n[snmp]\nenabled = false\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env.update(NETMGR_CONFIG=str(cfg), XDG_CONFIG_HOME=str(tmp_path / "xdg"),
               NETMGR_SERVER=f"http://127.0.0.1:{port}")
    with open(tmp_path / "daemon.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "netmgr", "run"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 30, "the daemon's API")
            yield env, tmp_path
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0


def test_engineer_and_operators_through_the_cli(daemon):
    env, tmp = daemon
    admin = json.loads(netmgr("user", "add", "root", "--role", "admin", "--json", env=env, check=0).stdout)
    assert admin["token"].startswith("nmt_")
    out = netmgr("login", "--token", admin["token"], env=env, check=0).stdout
    assert "logged in" in out and "as root (admin)" in out
    creds = tmp / "xdg" / "netmgr" / "credentials.json"
    assert oct(creds.stat().st_mode & 0o777) == "0o600"

    zones = tmp / "zones.csv"
    zones.write_text("path,name\nbinh-phuoc,Bình Phước\nbinh-phuoc/dong-xoai,Đồng Xoài\n"
                     f"{COMMUNE_A},Tân Phú\n{COMMUNE_B},Tiến Thành\n", encoding="utf-8")
    assert "4 zones created" in netmgr("zone", "import", str(zones), env=env, check=0).stdout
    listed = json.loads(netmgr("zone", "list", "--json", env=env, check=0).stdout)
    assert {z["name"] for z in listed} >= {"Tân Phú", "Tiến Thành"}
    assert "Tân Phú" in netmgr("zone", "list", env=env, check=0).stdout

    op = json.loads(netmgr("user", "add", "an", "--role", "operator", "--zone", COMMUNE_A, "--json",
                           env=env, check=0).stdout)
    op_env = dict(env, NETMGR_TOKEN=op["token"])
    netmgr("ap", "add", "ap-a1", "--host", "192.0.2.1", "--community", "c0mm", "--zone", COMMUNE_A,
           env=op_env, check=0)
    r = netmgr("ap", "add", "ap-b1", "--host", "192.0.2.2", "--zone", COMMUNE_B, env=op_env, check=1)
    assert r.stderr.startswith("netmgr: error: operator 'an' may not ap.add in zone " + COMMUNE_B)
    assert "Traceback" not in r.stderr

    bad = tmp / "aps.yaml"
    bad.write_text(f"- {{name: ap-2, host: 192.0.2.2, zone: {COMMUNE_A}}}\n"
                   f"- {{name: ap-3, host: 192.0.2.3, zone: {COMMUNE_A}, port: 99999}}\n", encoding="utf-8")
    r = netmgr("ap", "import", str(bad), env=op_env, check=2)
    assert "line 2: port:" in r.stderr
    aps = json.loads(netmgr("ap", "list", "--json", env=env, check=0).stdout)
    assert [a["name"] for a in aps] == ["ap-a1"]
    assert "c0mm" not in netmgr("ap", "show", "ap-a1", env=env, check=0).stdout

    entries = json.loads(netmgr("audit", "list", "--json", env=env, check=0).stdout)
    assert any(e["actor"] == "an" and e["outcome"] == "ok" and e["target"] == "ap-a1" for e in entries)
    assert any(e["actor"] == "an" and e["outcome"] == "denied" and e["zone"] == COMMUNE_B for e in entries)
    assert any(e["actor"].startswith("local:") and e["action"] == "user.add" for e in entries)

    r = netmgr("ap", "show", "nope", env=env, check=1)
    assert r.stderr.strip() == "netmgr: error: AP 'nope' not found (HTTP 404)"
    r = netmgr("ap", "list", env=dict(env, NETMGR_TOKEN="nmt_wrong"), check=1)
    assert "invalid or disabled token" in r.stderr
    assert netmgr("zone", "add", env=env).returncode == 2  # usage error


def test_unreachable_api_is_one_line(tmp_path):
    env = dict(os.environ, NETMGR_SERVER=f"http://127.0.0.1:{free_port()}", NETMGR_TOKEN="nmt_x",
               XDG_CONFIG_HOME=str(tmp_path))
    r = netmgr("zone", "list", env=env, check=1)
    assert r.stderr.startswith("netmgr: error: cannot reach the netmgr API at http://127.0.0.1:")
    assert len(r.stderr.strip().splitlines()) == 1


def test_help_is_fast():
    env = dict(os.environ)
    netmgr("--help", env=env, check=0)  # warm the bytecode cache
    best = min(_timed(env) for _ in range(3))
    assert best < 0.5, f"netmgr --help took {best:.2f}s"


def _timed(env):
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "netmgr", "--help"], env=env, capture_output=True, check=True)
    return time.perf_counter() - t0


def test_demo_runs_and_serves(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "netmgr", "demo", "--duration", "20",
                             "--api-port", str(free_port())], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = read_until(proc, "export NETMGR_SERVER=", 60)
        exports = dict(kv.split("=", 1) for kv in lines[-1].split()[1:])
        env = dict(env, **exports)
        listed = json.loads(netmgr("zone", "list", "--json", env=env, check=0).stdout)
        assert "Bình Phước" in {z["name"] for z in listed}

        def all_up():
            aps = json.loads(netmgr("ap", "list", "--json", env=env, check=0).stdout)
            return len(aps) >= 2 and all(a["status"] == "up" for a in aps) and aps

        aps = wait_for(all_up, 18, "every simulated AP polled and up", interval=0.5)
        assert any(a["clients"] for a in aps)

        def speakers_online():
            sp = json.loads(netmgr("speaker", "list", "--status", "online", "--json", env=env, check=0).stdout)
            return len(sp) == 44 and sp
        wait_for(speakers_online, 15, "the demo's 44 simulated speakers online", interval=0.5)
        pinged = json.loads(netmgr("speaker", "ping", "zone:binh-phuoc/dong-phu", "--json", env=env, check=0).stdout)
        assert pinged["summary"] == {"done": 22}
        progs = json.loads(netmgr("broadcast", "list", "--json", env=env, check=0).stdout)
        assert {p["title"] for p in progs} == {"Bản tin thử", "Cảnh báo lũ (thử)"}
        emergency = next(p for p in progs if p["priority"] == "emergency")

        def emergency_played():
            shown = json.loads(netmgr("broadcast", "show", str(emergency["id"]), "--json", env=env, check=0).stdout)
            occ = shown["occurrences"]
            return occ and occ[0]["played"] == 22 and occ
        wait_for(emergency_played, 15, "the demo's emergency played on the district's 22 nodes", interval=0.5)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, "".join(lines) + rest
        assert "demo ran for 20s; stopping" in rest
        # The status every 10 s is the compact view for people, not the counters (--verbose).
        assert re.search(r"^status at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, Asia/Ho_Chi_Minh \(UTC\+07:00\)", rest, re.M), rest
        assert re.search(r"^  APs +\d+ up, \d+ down", rest, re.M), rest
        assert re.search(r"^  speakers +44 online of 44", rest, re.M), rest
        assert re.search(r"^  broadcast +.+ at \d\d:\d\d:\d\d: \d+/\d+ played", rest, re.M), rest
        assert re.search(r"^  telemetry +[\d,]+ points in the local ring; InfluxDB off", rest, re.M), rest
        assert re.search(r"^  errors +none", rest, re.M), rest
        assert "points_submitted" not in rest and "{'" not in rest, rest
    finally:
        if proc.poll() is None:
            proc.kill()


def test_demo_stops_cleanly_on_sigterm_and_knows_its_nodes_first(tmp_path):
    """Issue 12, items 12 and 15: no unknown_node warning at start (the inventory is loaded before
    the simulated nodes publish), and a SIGTERM is a requested stop: exit 0, not "unexpectedly"."""
    import signal

    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "netmgr", "demo", "--api-port", str(free_port())],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = read_until(proc, "curl -s", 90)  # the banner's last line: every part has started
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
        out = "".join(lines) + rest
        assert proc.returncode == 0, out
        assert "demo stopped on request" in out and "unexpectedly" not in out
        assert "unknown_node" not in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
