"""`netmgr run` with the radio service on mosquitto (TLS, files rendered by `netmgr mqtt render`),
simulated nodes with their own identities, and the speaker CLI as a person uses it — including
what operators and viewers are refused, and that every refusal is in the audit log."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from support.broadcast_stack import cli as _cli
from support.services import free_port, http_get
from support.waiting import until

from netmgr.radio.acl import render_acl, render_passwd
from netmgr.radio.mqtt import Broker
from netmgr.sim.speakers import SimConfig, SpeakerSim

A = "binh-phuoc/dong-xoai/tan-phu"
B = "binh-phuoc/dong-xoai/tien-thanh"
NODES = {**{f"tp-{i}": A for i in range(4)}, **{f"tt-{i}": B for i in range(2)}}
DAEMON_USER, DAEMON_PASS = "netmgr", "daemon-pass-0123456789"


cli = functools.partial(_cli, timeout=60)


async def test_speaker_cli_through_the_daemon(tmp_path: Path, mosquitto_factory) -> None:
    (tmp_path / "passwd0").write_text(render_passwd(DAEMON_USER, DAEMON_PASS, {}))
    (tmp_path / "acl0").write_text(render_acl(DAEMON_USER, {}))
    m = mosquitto_factory(tls=True, passwd_file=tmp_path / "passwd0", acl_file=tmp_path / "acl0")
    port = free_port()
    cfg = tmp_path / "netmgr.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[api]\nport = {port}\n[snmp]\nenabled = false\n'
                   f'[mqtt]\nhost = "127.0.0.1"\nport = {m.tls_port}\ntls = true\nca_file = "{m.ca_file}"\n'
                   f'username = "{DAEMON_USER}"\npassword = "{DAEMON_PASS}"\ntelemetry_interval = 2\n'
                   'ack_timeout = 3\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env.update(NETMGR_CONFIG=str(cfg), NETMGR_SERVER=f"http://127.0.0.1:{port}", XDG_CONFIG_HOME=str(tmp_path))
    admin = json.loads((await cli(env, "user", "add", "root", "--role", "admin", "--json")).stdout)["token"]
    env["NETMGR_TOKEN"] = admin
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "netmgr", "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        async def api_up():
            try:
                return http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200
            except OSError:
                return False
        await until(api_up, 30, "the API", interval=0.2)
        zones = tmp_path / "zones.yaml"
        zones.write_text("- {path: binh-phuoc, name: Bình Phước}\n- {path: binh-phuoc/dong-xoai, name: Đồng Xoài}\n"
                         f"- {{path: {A}, name: Tân Phú}}\n- {{path: {B}, name: Tiến Thành}}\n", encoding="utf-8")
        await cli(env, "zone", "import", str(zones))
        op_b = json.loads((await cli(env, "user", "add", "op-b", "--role", "operator", "--zone", B,
                                     "--json")).stdout)["token"]
        viewer = json.loads((await cli(env, "user", "add", "eye", "--role", "viewer", "--json")).stdout)["token"]
        csv = tmp_path / "speakers.csv"
        csv.write_text("id,zone,name\n" + "".join(f"{n},{z},Cụm loa {n}\n" for n, z in NODES.items()),
                       encoding="utf-8")
        await cli(env, "speaker", "import", str(csv))

        # Identities: one per node, the password shown once; then the broker's files.
        passwords = {}
        for n in NODES:
            r = json.loads((await cli(env, "speaker", "credentials", n, "--json")).stdout)
            assert r["username"] == n and len(r["password"]) >= 24
            passwords[n] = r["password"]
        await cli(env, "mqtt", "render", "--passwd", str(tmp_path / "passwd"), "--acl", str(tmp_path / "acl"))
        assert oct((tmp_path / "passwd").stat().st_mode & 0o777) == "0o640"
        text = (tmp_path / "passwd").read_text()
        assert all(pw not in text for pw in passwords.values()), "passwords must not be stored in clear"
        assert DAEMON_PASS not in text
        m.reload_auth(tmp_path / "passwd", tmp_path / "acl")

        broker = Broker(port=m.tls_port, tls=True, ca_file=m.ca_file, protocol="3.1.1")
        async with SpeakerSim(broker, list(NODES.items()), SimConfig(telemetry_interval=2), passwords) as sim:
            async def all_online():
                r = await cli(env, "speaker", "list", "--status", "online", "--json")
                return len(json.loads(r.stdout)) == len(NODES)
            await until(all_online, 30, "every node online in `speaker list`", interval=0.2)
            table = (await cli(env, "speaker", "list", "--zone", A)).stdout
            assert "tp-0" in table and "tt-0" not in table and "4 online" in table

            r = json.loads((await cli(env, "speaker", "ping", "zone:binh-phuoc/dong-xoai", "--json")).stdout)
            assert r["total"] == len(NODES) and r["summary"] == {"done": len(NODES)}
            assert "rtt ms" in (await cli(env, "speaker", "ping", "tp-1")).stdout

            r = json.loads((await cli(env, "speaker", "volume", "tp-0,tp-1", "35", "--json")).stdout)
            assert r["summary"] == {"done": 2}
            assert sim.nodes["tp-0"].volume == 35 and sim.nodes["tp-2"].volume != 35

            async def telemetry_volume():
                shown = json.loads((await cli(env, "speaker", "show", "tp-0", "--json")).stdout)
                # live telemetry from the registry; history from the ring, written a batch later
                ok = (shown.get("telemetry") or {}).get("volume") == 35 and shown["history"]
                return shown if ok else None
            shown = await until(telemetry_volume, 15, "telemetry and its history showing the new volume",
                                interval=0.2)
            assert shown["history"] and all(h["online"] == 1 for h in shown["history"])
            assert shown["history"][-1]["rssi_dbm"] is not None
            assert "recent telemetry" in (await cli(env, "speaker", "show", "tp-0")).stdout
            assert shown["status"] == "online" and shown["credentials"] is True
            assert [c["method"] for c in shown["commands"]][:2] == ["volume", "ping"]
            assert all(c["state"] == "done" for c in shown["commands"])

            r = json.loads((await cli(env, "speaker", "play", f"zone:{A}", "--url", "http://127.0.0.1/x.mp3",
                                      "--duration", "0.5", "--json")).stdout)
            assert r["total"] == 4 and set(r["summary"]) <= {"accepted", "playing", "done"}, r["summary"]

            # --- refused: an operator outside the zone, a viewer, emergency without the right
            env_b = {**env, "NETMGR_TOKEN": op_b}
            r = await cli(env_b, "speaker", "volume", "tp-0", "90", ok=False)
            assert r.returncode == 1 and "zone " + A in r.stderr, r.stderr
            r = await cli(env_b, "speaker", "ping", f"zone:{A}", ok=False)
            assert r.returncode == 1
            assert (await cli(env_b, "speaker", "ping", "tt-0")).returncode == 0  # inside its zone
            r = await cli({**env, "NETMGR_TOKEN": viewer}, "speaker", "volume", "tt-0", "90", ok=False)
            assert r.returncode == 1 and "viewer" in r.stderr
            r = await cli(env_b, "mqtt", "render", "--passwd", str(tmp_path / "p2"), "--acl", str(tmp_path / "a2"),
                          ok=False)
            assert r.returncode == 1 and not (tmp_path / "p2").exists()
            r = await cli(env_b, "speaker", "credentials", "tp-0", ok=False)
            assert r.returncode == 1
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                         headers={"Authorization": f"Bearer {op_b}"}) as http:
                resp = await http.post("/api/v1/commands", json={
                    "method": "play", "params": {"url": "http://127.0.0.1/x.mp3"}, "nodes": ["tt-0"],
                    "priority": "emergency"})
                assert resp.status_code == 403 and "emergency" in resp.json()["error"]
            assert sim.nodes["tp-0"].volume == 35 and all(n.playing is None for n in sim.nodes.values())

            audit = json.loads((await cli(env, "audit", "list", "--json")).stdout)
            denied = [e for e in audit if e["outcome"] == "denied"]
            actions = sorted(e["action"] for e in denied)
            assert actions.count("speaker.volume") == 2 and "speaker.ping" in actions
            assert "speaker.play" in actions and "speaker.credentials" in actions
            assert any(e["action"] == "speaker.credentials" and e["outcome"] == "ok" for e in audit)

            # A node cut off: its will marks it offline in the CLI.
            await sim.set_offline(["tt-1"])

            async def tt1_offline():
                r = await cli(env, "speaker", "list", "--status", "offline", "--json")
                return [x["id"] for x in json.loads(r.stdout)] == ["tt-1"]
            await until(tt1_offline, 20, "tt-1 offline", interval=0.2)
        health = json.loads(http_get(f"http://127.0.0.1:{port}/healthz")[1])
        assert health["services"]["radio"]["connected"] is True
        assert health["services"]["radio"]["bad_messages"] == {}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        log.close()
    assert "Traceback" not in (tmp_path / "daemon.log").read_text()
    assert DAEMON_PASS not in (tmp_path / "daemon.log").read_text()
