"""`netmgr run` as a real process and the real CLI in subprocesses, for the broadcast end-to-end
tests: the two communes and ten nodes they share (``NODES``), their config, seeding and the API
check. ``POLL``: how often those tests' ``until`` conditions are tried (they mostly run the CLI)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from .services import http_get

POLL = 0.3  # seconds between tries of a condition that runs the CLI (waiting.until's default is 0.05)

A = "binh-phuoc/dong-xoai/tan-phu"
B = "binh-phuoc/dong-xoai/tien-thanh"
NODES = {**{f"tp-{i}": A for i in range(6)}, **{f"tt-{i}": B for i in range(4)}}


async def cli(env, *args, ok: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess; with ``ok`` assert it exited 0."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "netmgr", *args, env=env,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    r = subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())
    if ok:
        assert r.returncode == 0, f"netmgr {' '.join(args)}: {r.stderr}{r.stdout}"
    return r


def start_daemon(tmp_path: Path, m, env) -> subprocess.Popen:
    log = (tmp_path / "daemon.log").open("a")
    return subprocess.Popen([sys.executable, "-m", "netmgr", "run"], env=env, stdout=log, stderr=subprocess.STDOUT)


def setup_env(tmp_path: Path, m, port: int) -> dict[str, str]:
    cfg = tmp_path / "netmgr.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[api]\nport = {port}\n[snmp]\nenabled = false\n'
                   f'[mqtt]\nport = {m.port}\ntelemetry_interval = 2\nack_timeout = 3\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env.update(NETMGR_CONFIG=str(cfg), NETMGR_SERVER=f"http://127.0.0.1:{port}", XDG_CONFIG_HOME=str(tmp_path))
    return env


async def api_up(port: int) -> bool:
    try:
        return http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    except OSError:
        return False


async def seed(env, tmp_path: Path) -> dict[str, str]:
    zones = tmp_path / "zones.yaml"
    zones.write_text("- {path: binh-phuoc, name: Bình Phước}\n- {path: binh-phuoc/dong-xoai, name: Đồng Xoài}\n"
                     f"- {{path: {A}, name: Tân Phú}}\n- {{path: {B}, name: Tiến Thành}}\n", encoding="utf-8")
    await cli(env, "zone", "import", str(zones))
    csv = tmp_path / "speakers.csv"
    csv.write_text("id,zone\n" + "".join(f"{n},{z}\n" for n, z in NODES.items()), encoding="utf-8")
    await cli(env, "speaker", "import", str(csv))
    tokens = {}
    for name, args in (("op-a", ["--role", "operator", "--zone", A]),
                       ("op-b", ["--role", "operator", "--zone", B]),
                       ("chief", ["--role", "operator", "--zone", "binh-phuoc/dong-xoai", "--emergency"])):
        tokens[name] = json.loads((await cli(env, "user", "add", name, *args, "--json")).stdout)["token"]
    return tokens
