"""`netmgr run` polling APs served by snmpsim: status, clients, a dead AP going down alone."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import yaml
from support.services import free_port, http_get
from support.waiting import wait_for

from netmgr.paths import devices_dir

EXPECTED = yaml.safe_load((devices_dir() / "sim" / "expected.yaml").read_text())
ZONE = "binh-phuoc/dong-xoai/tan-phu"


def cli(env, *args):
    r = subprocess.run([sys.executable, "-m", "netmgr", *args], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_daemon_polls_the_fleet(tmp_path, snmpsim):
    port = free_port()
    cfg = tmp_path / "netmgr.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[api]\nport = {port}\n[mqtt]\nenabled = false\n'
                   "[snmp]\ninterval = 2\ntimeout = 0.5\nretries = 0\ndown_after = 3\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env.update(NETMGR_CONFIG=str(cfg), NETMGR_SERVER=f"http://127.0.0.1:{port}", XDG_CONFIG_HOME=str(tmp_path))
    env["NETMGR_TOKEN"] = json.loads(cli(env, "user", "add", "root", "--role", "admin", "--json"))["token"]
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blackhole.bind(("127.0.0.1", 0))
    with open(tmp_path / "daemon.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "netmgr", "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 30, "the API")
        zones = tmp_path / "zones.yaml"
        zones.write_text("- {path: binh-phuoc, name: Bình Phước}\n- {path: binh-phuoc/dong-xoai, name: Đồng Xoài}\n"
                         f"- {{path: {ZONE}, name: Tân Phú}}\n", encoding="utf-8")
        cli(env, "zone", "import", str(zones))
        aps = [{"name": f"ap-{n}", "host": "127.0.0.1", "port": snmpsim.port, "zone": ZONE, "community": n}
               for n in EXPECTED]
        aps.append({"name": "ap-dead", "host": "127.0.0.1", "port": blackhole.getsockname()[1], "zone": ZONE})
        f = tmp_path / "aps.yaml"
        f.write_text(yaml.safe_dump(aps), encoding="utf-8")
        cli(env, "ap", "import", str(f))  # no SIGHUP: the API tells the poller to re-read its APs

        def settled():
            items = {a["name"]: a for a in json.loads(cli(env, "ap", "list", "--json"))}
            live = [items[f"ap-{n}"] for n in EXPECTED]
            ok = all(a["status"] == "up" for a in live) and items["ap-dead"]["status"] == "down"
            return items if ok else None

        items = wait_for(settled, 30, "live APs up and the dead one down", interval=0.5)
        for n, want in EXPECTED.items():
            a = items[f"ap-{n}"]
            assert a["clients"] == want["clients_total"], n
            assert a["matched_profile"] == want["profile"]
        dead = json.loads(cli(env, "ap", "show", "ap-dead", "--json"))
        assert "no SNMP response" in dead["last_error"]
        assert [e["status"] for e in dead["events"]] == ["down"]
        shown = json.loads(cli(env, "ap", "show", "ap-unifi", "--json"))
        assert len(shown["interfaces"]) == EXPECTED["unifi"]["interfaces"]
        assert "WiFi_Mien_Phi_BinhPhuoc" in cli(env, "ap", "show", "ap-unifi")
        health = json.loads(http_get(f"http://127.0.0.1:{port}/healthz")[1])
        assert health["services"]["poller"]["aps"] == len(aps)
        assert health["services"]["poller"]["late_polls"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        blackhole.close()
