"""docs/protocol.md's "Be a node with mosquitto_pub and mosquitto_sub" section, run as written:
the shell blocks marked ``# node-example: NAME`` against mosquitto (TLS, rendered password and
ACL files) and the radio service. If the doc and the daemon drift apart, this fails."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from support.radio_stack import DAEMON_PASS, DAEMON_USER, running
from support.waiting import until

from netmgr.radio.acl import mosquitto_hash, new_password, render_acl, render_passwd
from netmgr.radio.mqtt import Broker
from netmgr.radio.service import RadioService

DOC = Path(__file__).parents[2] / "docs" / "protocol.md"


def examples() -> dict[str, str]:
    blocks = re.findall(r"```sh\n# node-example: (\S+)\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return {name: body for name, body in blocks}


def run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-euc", script], env=env, capture_output=True, text=True, timeout=30)


async def test_a_person_can_act_as_a_node_with_mosquitto_clients(tmp_path: Path, mosquitto_factory) -> None:
    ex = examples()
    assert set(ex) >= {"listen", "birth", "telemetry", "reply", "goodbye"}, sorted(ex)
    node, zone = "manual-01", "binh-phuoc/dong-xoai/tan-phu"
    password = new_password()
    (tmp_path / "passwd").write_text(render_passwd(DAEMON_USER, DAEMON_PASS, {node: mosquitto_hash(password)}))
    (tmp_path / "acl").write_text(render_acl(DAEMON_USER, {node: zone}))
    m = mosquitto_factory(tls=True, passwd_file=tmp_path / "passwd", acl_file=tmp_path / "acl")
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(m.tls_port), "CAFILE": str(m.ca_file),
           "NODE": node, "PASS": password, "ZONE": zone, "SESSION": str(int(time.time() * 1000))}
    svc = RadioService.standalone(Broker(port=m.tls_port, tls=True, ca_file=m.ca_file,
                                         username=DAEMON_USER, password=DAEMON_PASS),
                                  {node: zone}, client_id="netmgr-doc")
    async with running(svc):
        out = tmp_path / "sub.out"
        with out.open("w") as f:
            listener = subprocess.Popen(["bash", "-euc", "exec " + ex["listen"].strip()], env=env, stdout=f,
                                        stderr=subprocess.STDOUT)
        try:
            # mosquitto_sub has subscribed once a retained message of its own reaches it: use
            # the command round trip itself (below) as the proof instead of guessing a delay.
            r = run(ex["birth"], env)
            assert r.returncode == 0, r.stderr
            await until(lambda: svc.registry.is_online(node), 10, "the node online after the birth")

            r = run(ex["telemetry"], env)
            assert r.returncode == 0, r.stderr
            await until(lambda: svc.registry.nodes[node].telemetry is not None, 10, "the telemetry")
            assert svc.registry.nodes[node].telemetry.rssi_dbm == -70

            # A ping from the daemon reaches the listening terminal; answer it with its id.
            async def ping_seen() -> str:
                tc = await svc.issue("ping", nodes=[node], ttl=60)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    if tc.cmd.id in out.read_text():
                        return tc.cmd.id
                    await asyncio.sleep(0.05)
                return ""
            cmd_id = ""
            for _ in range(10):  # the first ping may beat mosquitto_sub's SUBSCRIBE
                cmd_id = await ping_seen()
                if cmd_id:
                    break
            assert cmd_id, out.read_text()
            line = next(x for x in out.read_text().splitlines() if cmd_id in x)
            assert line.startswith(f"netmgr/v1/node/{node}/cmd ")
            r = run(ex["reply"], {**env, "CMD_ID": cmd_id})
            assert r.returncode == 0, r.stderr
            tc = svc.tracker.commands[cmd_id]
            await until(lambda: tc.deliveries[node].state == "done", 10, "the ping to be done")
            assert svc.bad.counts == {}, svc.bad.counts

            # Killed without a goodbye: the broker publishes the last will, the daemon marks it offline.
            listener.send_signal(signal.SIGKILL)
            listener.wait(10)
            await until(lambda: not svc.registry.is_online(node), 20, "the last will to mark it offline")

            # Back, then a clean goodbye.
            env["SESSION"] = str(int(env["SESSION"]) + 1)
            assert run(ex["birth"], env).returncode == 0
            await until(lambda: svc.registry.is_online(node), 10, "online again with a new session")
            assert run(ex["goodbye"], env).returncode == 0
            await until(lambda: not svc.registry.is_online(node), 10, "offline after the goodbye")
        finally:
            if listener.poll() is None:
                listener.kill()
                listener.wait(5)
