"""bench/broadcast: the broadcast planner, and an emergency `now` to 2,000 nodes through mosquitto.

1. Plan: resolve every speaker's timeline for 2,000 nodes x 50 programs x 7 days (mixed
   priorities, zones and single speakers, daily/weekday/RRULE), and build the 48 h schedule
   documents of all 2,000 nodes (what the scheduler publishes). Target: plan <= 1 s.
2. `now --emergency`: `netmgr run` (API, scheduler, radio) as a real process, the simulator with
   2,000 nodes in another process, one mosquitto on loopback. POST /api/v1/broadcast/now for the
   province; from the confirming command's per-node times: first accept and 50/99/100% accepted,
   measured from the publish and from the API call. Target: 99% accepted within 1 s.
   Reference in the same run: the same zone command sent by the radio service alone (bench/radio's
   path), so the scheduler's and API's share is visible.

    .venv/bin/python bench/broadcast.py [--nodes 2000] [--programs 50] [--days 7]

Prints one JSON line per result, then a human summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))


def emit(result: dict) -> None:
    print(json.dumps(result), flush=True)


def communes(nodes: int) -> dict[str, list[str]]:
    zones = [f"binh-phuoc/district-{d}/commune-{c}" for d in range(4) for c in range(10)]
    out: dict[str, list[str]] = {z: [] for z in zones}
    for i in range(nodes):
        out[zones[i % len(zones)]].append(f"sim-{i:04d}")
    return out


def bench_plan(nodes: int, programs: int, days: int) -> dict:
    from netmgr.broadcast.model import new_program
    from netmgr.broadcast.planner import ZoneIndex, resolve_plan
    from netmgr.broadcast.schedule import node_schedules

    zones = communes(nodes)
    index = ZoneIndex(zones)
    names = sorted(zones)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    progs = []
    for i in range(programs):
        kind = i % 4
        if kind == 0:
            when = {"kind": "daily", "at": f"{5 + i % 13:02d}:{(7 * i) % 60:02d}"}
        elif kind == 1:
            when = {"kind": "weekdays", "at": f"{16 + i % 4:02d}:{(11 * i) % 60:02d}"}
        elif kind == 2:
            when = {"kind": "rrule", "rrule": f"FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR={6 + i % 12};BYMINUTE={i % 60}"}
        else:
            when = {"kind": "once", "start": (now + timedelta(hours=3 + i)).isoformat()}
        if i % 10 == 9:
            targets = {"zones": ["binh-phuoc/district-" + str(i % 4)]}  # district-wide
        elif i % 10 == 8:
            targets = {"speakers": [f"sim-{(37 * i + k) % nodes:04d}" for k in range(5)]}
        else:
            targets = {"zones": [names[i % len(names)]]}
        p = new_program({"title": f"Chương trình {i}", "content": {"kind": "url", "url": "http://x/a.mp3"},
                         "targets": targets, "when": when, "duration_s": f"{20 + i % 40}m", "volume": 80,
                         "priority": ("normal", "normal", "priority", "emergency")[i % 4] if i % 7 else "normal",
                         "created_by": "bench"}, now=now)
        progs.append(p.model_copy(update={"id": i + 1}))
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        plan = resolve_plan(progs, index, now, now + timedelta(days=days))
        runs.append(time.perf_counter() - t0)
    items = sum(len(tl.slots) for tl in plan.timelines)
    t0 = time.perf_counter()
    docs = node_schedules(progs, index, now=now, media_url=lambda m: f"http://x/media/{m}")
    sched_s = time.perf_counter() - t0
    res = {"bench": "broadcast", "result": "plan", "nodes": nodes, "programs": programs, "days": days,
           "plan_s_median": round(statistics.median(runs), 4), "plan_s_max": round(max(runs), 4),
           "timelines": len(plan.timelines), "slots": items, "schedule_docs": len(docs),
           "schedule_docs_s": round(sched_s, 4)}
    emit(res)
    return res


def api(port: int, token: str, method: str, path: str, body: dict | None = None) -> dict:
    import httpx

    r = httpx.request(method, f"http://127.0.0.1:{port}{path}", json=body,
                      headers={"Authorization": f"Bearer {token}"}, timeout=30)
    r.raise_for_status()
    return r.json()


def accepted_times(cmd: dict, t0: float) -> list[float]:
    out = []
    for d in cmd["deliveries"]:
        t = d["times"].get("accepted")
        if t:
            out.append(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() - t0)
    return sorted(out)


def quantiles(acc: list[float], n: int) -> dict:
    res = {"accepted": len(acc), "first_ack_s": round(acc[0], 4) if acc else None}
    for q in (50, 99, 100):
        k = -(-n * q // 100) - 1
        res[f"p{q}_s"] = round(acc[k], 4) if len(acc) > k else None
    return res


def bench_now(nodes: int, rounds: int) -> list[dict]:
    from support import services

    m = services.Mosquitto()
    work = Path(services.workdir("bench-broadcast"))
    port = services.free_port()
    cfg = work / "netmgr.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{work / "state"}"\nlog_level = "warning"\n[api]\nport = {port}\n'
                   f'[snmp]\nenabled = false\n[mqtt]\nport = {m.port}\ntelemetry_interval = 30\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env.update(NETMGR_CONFIG=str(cfg), NETMGR_SERVER=f"http://127.0.0.1:{port}", XDG_CONFIG_HOME=str(work))
    netmgr = [sys.executable, "-m", "netmgr"]
    token = json.loads(subprocess.run([*netmgr, "user", "add", "bench", "--role", "admin", "--json"], env=env,
                                      capture_output=True, text=True, check=True).stdout)["token"]
    env["NETMGR_TOKEN"] = token
    daemon = subprocess.Popen([*netmgr, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sim = None
    out = []
    try:
        services.wait_for(lambda: services.http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 30, "the API")
        zones = communes(nodes)
        zf = work / "zones.yaml"
        zf.write_text("- {path: binh-phuoc, name: Bình Phước}\n"
                      + "".join(f"- {{path: binh-phuoc/district-{d}, name: D{d}}}\n" for d in range(4))
                      + "".join(f"- {{path: {z}, name: {z.rsplit('/', 1)[1]}}}\n" for z in zones), encoding="utf-8")
        subprocess.run([*netmgr, "zone", "import", str(zf)], env=env, check=True, capture_output=True)
        inv = work / "speakers.csv"
        inv.write_text("id,zone\n" + "".join(f"{n},{z}\n" for z, ns in zones.items() for n in ns), encoding="utf-8")
        subprocess.run([*netmgr, "speaker", "import", str(inv)], env=env, check=True, capture_output=True)
        sim = subprocess.Popen([*netmgr, "sim", "speakers", "--inventory", str(inv), "--broker",
                                f"mqtt://127.0.0.1:{m.port}", "--telemetry-interval", "30"], env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd=str(REPO))

        def online() -> bool:
            items = api(port, token, "GET", "/api/v1/speakers-status?status=online")["items"]
            return len(items) == nodes
        services.wait_for(online, 180, f"{nodes} nodes online", interval=1.0)
        for r in range(rounds):
            t_call = time.time()
            resp = api(port, token, "POST", "/api/v1/broadcast/now",
                       {"zones": ["binh-phuoc"], "url": "http://127.0.0.1:9/storm.mp3", "emergency": True,
                        "duration": "3s", "title": f"Bão số {r + 1}"})
            occ = resp["occurrence"]
            t_resp = time.time()

            def answered(occ: str = occ) -> dict | None:
                try:
                    c = api(port, token, "GET", f"/api/v1/commands/{occ}")
                except Exception:  # noqa: BLE001 - not issued yet
                    return None
                ok = sum(1 for d in c["deliveries"] if "accepted" in d["times"])
                return c if ok >= nodes else None
            cmd = services.wait_for(answered, 60, "every node to accept", interval=0.2)
            t_pub = datetime.fromisoformat(cmd["published"].replace("Z", "+00:00")).timestamp()
            res = {"bench": "broadcast", "result": "now_emergency", "round": r + 1, "nodes": nodes,
                   "api_call_s": round(t_resp - t_call, 4), "api_to_publish_s": round(t_pub - t_call, 4),
                   "from_publish": quantiles(accepted_times(cmd, t_pub), nodes),
                   "from_api_call": quantiles(accepted_times(cmd, t_call), nodes)}
            emit(res)
            out.append(res)
            services.wait_for(lambda occ=occ: api(port, token, "GET", f"/api/v1/commands/{occ}")["complete"], 60,
                              "the emergency to finish", interval=0.5)
    finally:
        if sim is not None:
            sim.terminate()
            sim.wait(30)
        daemon.terminate()
        daemon.wait(30)
        m.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=2000)
    ap.add_argument("--programs", type=int, default=50)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    plan = bench_plan(args.nodes, args.programs, args.days)
    now = bench_now(args.nodes, args.rounds)
    p99 = statistics.median(r["from_publish"]["p99_s"] for r in now)
    p99_api = statistics.median(r["from_api_call"]["p99_s"] for r in now)
    print(f"""
bench/broadcast on {os.cpu_count()} cores
  plan: {args.nodes} nodes x {args.programs} programs x {args.days} days resolved in {plan['plan_s_median'] * 1000:.0f} ms (median of 5; max {plan['plan_s_max'] * 1000:.0f} ms)   (target <= 1000 ms: {'met' if plan['plan_s_max'] <= 1 else 'NOT met'})
        48 h schedule documents for all {plan['schedule_docs']} nodes in {plan['schedule_docs_s'] * 1000:.0f} ms
  now --emergency to {args.nodes} nodes (netmgr run + simulator + mosquitto, separate processes), median of {len(now)}:
    99% accepted {p99 * 1000:.0f} ms after the publish   (target <= 1000 ms: {'met' if p99 <= 1 else 'NOT met'})
    99% accepted {p99_api * 1000:.0f} ms after the API call (the scheduler is woken at once)""")


if __name__ == "__main__":
    main()
