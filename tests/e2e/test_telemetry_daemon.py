"""`netmgr run` end to end: polls land in VictoriaMetrics and in the ring; `ap show` prints the history."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.parse

from support.services import free_port, http_get
from support.waiting import wait_for

ZONE = "binh-phuoc/dong-xoai/tan-phu"


def cli(env, *args):
    r = subprocess.run([sys.executable, "-m", "netmgr", *args], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def vm_last(vm, name: str, **labels: str) -> float | None:
    sel = ",".join(f'{k}="{v}"' for k, v in labels.items())
    vm.force_flush()
    q = urllib.parse.urlencode({"query": f"last_over_time({name}{{{sel}}}[10m])"})
    status, body = http_get(f"{vm.url}/api/v1/query?{q}")
    assert status == 200, body
    result = json.loads(body)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_daemon_feeds_victoriametrics_and_the_ring(tmp_path, snmpsim, victoriametrics):
    port = free_port()
    state = tmp_path / "state"
    cfg = tmp_path / "netmgr.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{state}"\n[api]\nport = {port}\n[mqtt]\nenabled = false\n'
                   "[snmp]\ninterval = 2\ntimeout = 0.5\nretries = 0\ndown_after = 2\n"
                   f'[influxdb]\nurl = "{victoriametrics.url}"\ntoken = "e2e-secret-token"\nflush_interval = 0.5\n',
                   encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env.update(NETMGR_CONFIG=str(cfg), NETMGR_SERVER=f"http://127.0.0.1:{port}", XDG_CONFIG_HOME=str(tmp_path))
    env["NETMGR_TOKEN"] = json.loads(cli(env, "user", "add", "root", "--role", "admin", "--json"))["token"]
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blackhole.bind(("127.0.0.1", 0))
    run = f"e2e{os.getpid()}"
    with open(tmp_path / "daemon.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "netmgr", "run"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 30, "the API")
        zones = tmp_path / "zones.yaml"
        zones.write_text("- {path: binh-phuoc, name: Bình Phước}\n- {path: binh-phuoc/dong-xoai, name: Đồng Xoài}\n"
                         f"- {{path: {ZONE}, name: Tân Phú}}\n", encoding="utf-8")
        cli(env, "zone", "import", str(zones))
        aps = tmp_path / "aps.csv"
        aps.write_text("name,host,port,zone,community,lat,lon\n"
                       f"{run}-unifi,127.0.0.1,{snmpsim.port},{ZONE},unifi,11.53,106.88\n"
                       f"{run}-routeros,127.0.0.1,{snmpsim.port},{ZONE},routeros,,\n"
                       f"{run}-dead,127.0.0.1,{blackhole.getsockname()[1]},{ZONE},x,,\n", encoding="utf-8")
        cli(env, "ap", "import", str(aps))
        proc.send_signal(signal.SIGHUP)

        wait_for(lambda: vm_last(victoriametrics, "ap_if_rx_bps", ap=f"{run}-unifi", ifname="eth0") is not None,
                 30, "interface rates of the unifi AP in VictoriaMetrics", interval=0.5)
        assert vm_last(victoriametrics, "ap_up", ap=f"{run}-unifi", vendor="Ubiquiti", district="binh-phuoc/dong-xoai") == 1
        assert vm_last(victoriametrics, "ap_clients", ap=f"{run}-unifi") == 28
        assert vm_last(victoriametrics, "ap_lat", ap=f"{run}-unifi") == 11.53
        assert vm_last(victoriametrics, "ap_radio_channel", ap=f"{run}-routeros", radio="wlan2", band="5") == 36
        wait_for(lambda: vm_last(victoriametrics, "ap_up", ap=f"{run}-dead") == 0, 30, "the dead AP down",
                 interval=0.5)
        # The daemon's own figures, every 10 s.
        wait_for(lambda: (vm_last(victoriametrics, "netmgr_polls", component="poller") or 0) > 0
                 and vm_last(victoriametrics, "netmgr_queue_depth", component="telemetry") is not None,
                 30, "netmgr points of the poller and of telemetry", interval=0.5)

        shown = json.loads(cli(env, "ap", "show", f"{run}-unifi", "--json"))
        assert shown["history"], "no history from the ring"
        last = shown["history"][-1]
        assert last["up"] == 1 and last["clients"] == 28 and last["response_ms"] > 0
        assert last["ifname"] and last["rx_bps"] is not None
        table = cli(env, "ap", "show", f"{run}-unifi")
        assert "polls" in table and "rx Mbit/s" in table
        dead = json.loads(cli(env, "ap", "show", f"{run}-dead", "--json", "--history", "3"))
        assert 1 <= len(dead["history"]) <= 3 and dead["history"][-1]["up"] == 0
        assert dead["history"][-1]["response_ms"] is None
        health = json.loads(http_get(f"http://127.0.0.1:{port}/healthz")[1])["services"]["telemetry"]
        assert health["points_written"] > 0 and health["points_dropped"] == 0 and health["write_errors"] == 0
        assert victoriametrics.url in health["influxdb"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        blackhole.close()
    logtext = (tmp_path / "daemon.log").read_text()
    assert "telemetry drained" in logtext and "e2e-secret-token" not in logtext
    assert (state / "telemetry.db").exists()
    assert not list((state / "telemetry-spool").glob("*.seg"))  # everything reached the server
