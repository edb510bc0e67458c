"""bench/snmp_poll: netmgr's poller against Debian's prometheus-snmp-exporter, same agents, same OIDs.

Both poll N "APs" (spread over K real net-snmp snmpd agents on loopback) for
the SNMPv2-MIB system scalars and eight IF-MIB columns. We count the CPU
seconds of each poller's own process only (the agents are separate processes),
so the ratio holds on a noisy 2-core machine even if absolute numbers move.

    .venv/bin/python bench/snmp_poll.py [--aps 1000] [--agents 4] [--rounds 3]
    .venv/bin/python bench/snmp_poll.py --schedule-aps 10000 --schedule-seconds 120

Prints one JSON line per result, then a human summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

SCALARS = ["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.6.0"]
COLUMNS = {  # IF-MIB columns both pollers walk
    "ifDescr": ("1.3.6.1.2.1.2.2.1.2", "DisplayString"), "ifOperStatus": ("1.3.6.1.2.1.2.2.1.8", "gauge"),
    "ifInOctets": ("1.3.6.1.2.1.2.2.1.10", "counter"), "ifInErrors": ("1.3.6.1.2.1.2.2.1.14", "counter"),
    "ifOutOctets": ("1.3.6.1.2.1.2.2.1.16", "counter"), "ifOutErrors": ("1.3.6.1.2.1.2.2.1.20", "counter"),
    "ifHCInOctets": ("1.3.6.1.2.1.31.1.1.1.6", "counter"), "ifHCOutOctets": ("1.3.6.1.2.1.31.1.1.1.10", "counter"),
}
COMMUNITY = "bench"


def exporter_config() -> str:
    lines = ["bench:", "  walk:"] + [f"  - {oid}" for oid, _ in COLUMNS.values()]
    lines += ["  get:"] + [f"  - {o}" for o in SCALARS]
    lines += ["  metrics:"]
    names = {"1.3.6.1.2.1.1.1": "sysDescr", "1.3.6.1.2.1.1.3": "sysUpTime", "1.3.6.1.2.1.1.5": "sysName",
             "1.3.6.1.2.1.1.6": "sysLocation"}
    for oid, name in names.items():
        typ = "gauge" if name == "sysUpTime" else "DisplayString"
        lines += [f"  - name: {name}", f"    oid: {oid}", f"    type: {typ}"]
    for name, (oid, typ) in COLUMNS.items():
        lines += [f"  - name: {name}", f"    oid: {oid}", f"    type: {typ}", "    indexes:",
                  "    - labelname: ifIndex", "      type: gauge"]
    lines += ["  version: 2", "  max_repetitions: 25", "  retries: 1", "  timeout: 5s", "  auth:",
              f"    community: {COMMUNITY}"]
    return "\n".join(lines) + "\n"


def bench_profile():
    from netmgr.snmp.profiles import Column, Match, Profile, Scalar, Table

    scalars = {f"s{i}": Scalar(name=f"s{i}", oid=o, type="string") for i, o in enumerate(SCALARS)}
    cols = {n.lower(): Column(oid=oid, type="string" if t == "DisplayString" else
                              ("counter64" if "HC" in n else "counter32")) for n, (oid, t) in COLUMNS.items()}
    return Profile("bench", "bench", "bench", Match(), 25, True, scalars,
                   {"if": Table(name="if", index="ifIndex", columns=cols)}, [], None, None, None)


# ------------------------------------------------------------------------------------------- netmgr worker


async def netmgr_rounds(targets: list[tuple[str, int]], rounds: int, concurrency: int) -> dict:
    from netmgr.snmp.client import SnmpClient, Target
    from netmgr.snmp.poller import fetch

    profile = bench_profile()
    ts = [Target(f"ap{i}", h, p, community=COMMUNITY, timeout=5, retries=1) for i, (h, p) in enumerate(targets)]
    sem = asyncio.Semaphore(concurrency)
    failures = 0
    varbinds = 0

    async def one(t):
        nonlocal failures, varbinds
        async with sem:
            try:
                r = await fetch(client, t, profile)
                varbinds += 4 + 8 * len(r.interfaces)
            except Exception:  # noqa: BLE001
                failures += 1

    async with SnmpClient() as client:
        await asyncio.gather(*(one(t) for t in ts[: min(50, len(ts))]))  # warm caches
        failures = varbinds = 0
        c0, w0 = time.process_time(), time.monotonic()
        for _ in range(rounds):
            await asyncio.gather(*(one(t) for t in ts))
        cpu, wall = time.process_time() - c0, time.monotonic() - w0
    return {"cpu_s": cpu, "wall_s": wall, "polls": rounds * len(ts), "failures": failures,
            "varbinds_per_poll": varbinds / max(1, rounds * len(ts) - failures),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


async def netmgr_schedule(targets: list[tuple[str, int]], seconds: float, interval: float,
                          concurrency: int) -> dict:
    from netmgr.snmp.client import SnmpClient, Target
    from netmgr.snmp.poller import Poller
    from netmgr.snmp.profiles import Profiles
    from netmgr.snmp.state import ApRuntime

    profile = bench_profile()
    async with SnmpClient() as client:
        poller = Poller(client, Profiles({"bench": profile}), interval=interval, concurrency=concurrency,
                        down_after=3, up_after=1)
        aps = []
        for i, (h, p) in enumerate(targets):
            ap = ApRuntime(i, f"ap{i:05d}", "z", Target(f"ap{i}", h, p, community=COMMUNITY, timeout=5, retries=1),
                           forced_profile="bench")
            aps.append(ap)
        c0, w0 = time.process_time(), time.monotonic()
        poller.set_aps(aps)
        task = asyncio.create_task(poller.run())
        await asyncio.sleep(seconds)
        task.cancel()
        cpu, wall = time.process_time() - c0, time.monotonic() - w0
    return {"cpu_s": cpu, "wall_s": wall, "polls": poller.polls, "late": poller.late,
            "failures": poller.failures, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# ------------------------------------------------------------------------------------------- exporter


async def exporter_rounds(url: str, pid: int, targets: list[tuple[str, int]], rounds: int, concurrency: int) -> dict:
    import httpx
    import psutil

    proc = psutil.Process(pid)
    sem = asyncio.Semaphore(concurrency)
    failures = 0
    samples = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:

        async def one(h, p):
            nonlocal failures, samples
            async with sem:
                r = await http.get("/snmp", params={"target": f"{h}:{p}", "module": "bench"})
                if r.status_code != 200 or "snmp_scrape_duration" not in r.text:
                    failures += 1
                else:
                    samples += sum(1 for line in r.text.splitlines() if line.startswith(("if", "sys")))

        await asyncio.gather(*(one(h, p) for h, p in targets[: min(50, len(targets))]))
        failures = samples = 0
        t0 = proc.cpu_times()
        w0 = time.monotonic()
        for _ in range(rounds):
            await asyncio.gather(*(one(h, p) for h, p in targets))
        t1 = proc.cpu_times()
        wall = time.monotonic() - w0
    cpu = (t1.user + t1.system) - (t0.user + t0.system)
    return {"cpu_s": cpu, "wall_s": wall, "polls": rounds * len(targets), "failures": failures,
            "varbinds_per_poll": samples / max(1, rounds * len(targets) - failures),
            "max_rss_mb": proc.memory_info().rss / 2**20}


def targets_file(targets: list[tuple[str, int]]) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(targets, f)
    return f.name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aps", type=int, default=1000)
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--schedule-aps", type=int, default=0, help="also run the scheduled poller with this many APs")
    ap.add_argument("--schedule-seconds", type=float, default=120)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--targets", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        targets = [tuple(x) for x in json.loads(Path(args.targets).read_text())]
        if args.worker == "rounds":
            out = asyncio.run(netmgr_rounds(targets, args.rounds, args.concurrency))
        else:
            out = asyncio.run(netmgr_schedule(targets, args.schedule_seconds, 60.0, args.concurrency))
        print(json.dumps(out))
        return

    from support import services

    agents = [services.Snmpd(community=COMMUNITY) for _ in range(args.agents)]
    targets = [("127.0.0.1", agents[i % len(agents)].port) for i in range(args.aps)]
    d = services.workdir("snmp-exporter")
    (d / "snmp.yml").write_text(exporter_config())
    services.chown(d)
    port = services.free_port()
    exporter = services.ServerProcess(
        "snmp_exporter", [services.require("prometheus-snmp-exporter"), f"--config.file={d / 'snmp.yml'}",
                          f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"],
        lambda: services.http_get(f"http://127.0.0.1:{port}/")[0] == 200, cwd=d).start()
    results = []
    try:
        exp = asyncio.run(exporter_rounds(f"http://127.0.0.1:{port}", exporter.proc.pid, targets, args.rounds,
                                          args.concurrency))
        worker = subprocess.run([sys.executable, __file__, "--worker", "rounds", "--targets", targets_file(targets),
                                 "--rounds", str(args.rounds), "--concurrency", str(args.concurrency)],
                                capture_output=True, text=True, check=True)
        nm = json.loads(worker.stdout.strip().splitlines()[-1])
        for name, r in (("snmp_exporter", exp), ("netmgr", nm)):
            line = {"bench": "snmp_poll", "poller": name, "aps": args.aps, "agents": args.agents,
                    "rounds": args.rounds, "cpu_s_per_1000_polls": round(r["cpu_s"] / r["polls"] * 1000, 3),
                    "polls_per_s": round(r["polls"] / r["wall_s"], 1), "failures": r["failures"],
                    "varbinds_per_poll": round(r["varbinds_per_poll"], 1), "max_rss_mb": round(r["max_rss_mb"], 1)}
            results.append(line)
            print(json.dumps(line))
        ratio = results[1]["cpu_s_per_1000_polls"] / results[0]["cpu_s_per_1000_polls"]
        print(json.dumps({"bench": "snmp_poll", "result": "cpu_ratio_netmgr_over_exporter",
                          "value": round(ratio, 3), "target": "<= 1.0"}))
        sched = None
        if args.schedule_aps:
            st = [("127.0.0.1", agents[i % len(agents)].port) for i in range(args.schedule_aps)]
            w = subprocess.run([sys.executable, __file__, "--worker", "schedule", "--targets", targets_file(st),
                                "--schedule-seconds", str(args.schedule_seconds), "--concurrency", "512"],
                               capture_output=True, text=True, check=True)
            sched = json.loads(w.stdout.strip().splitlines()[-1])
            line = {"bench": "snmp_poll", "result": "schedule", "aps": args.schedule_aps, "interval_s": 60,
                    "seconds": args.schedule_seconds, "polls": sched["polls"], "late_polls": sched["late"],
                    "late_pct": round(100 * sched["late"] / max(1, sched["polls"]), 3),
                    "failures": sched["failures"], "cpu_core_fraction": round(sched["cpu_s"] / sched["wall_s"], 3),
                    "max_rss_mb": round(sched["max_rss_mb"], 1)}
            print(json.dumps(line))
            sched = line
    finally:
        exporter.stop()
        for a in agents:
            a.stop()
    e, n = results
    print(f"\nsnmp_poll: {args.aps} APs x {args.rounds} rounds over {args.agents} snmpd agents, same OIDs "
          f"({n['varbinds_per_poll']:.0f} varbinds/poll netmgr, {e['varbinds_per_poll']:.0f} samples/scrape exporter)")
    print(f"  snmp_exporter {e['cpu_s_per_1000_polls']:.3f} CPU-s per 1000 polls, {e['polls_per_s']:.0f} polls/s")
    print(f"  netmgr        {n['cpu_s_per_1000_polls']:.3f} CPU-s per 1000 polls, {n['polls_per_s']:.0f} polls/s, "
          f"peak RSS {n['max_rss_mb']:.0f} MB")
    print(f"  ratio netmgr/exporter = {ratio:.2f} (target <= 1.0)")
    if sched:
        print(f"  scheduled: {sched['aps']} APs at 60 s for {sched['seconds']:.0f} s: {sched['polls']} polls, "
              f"{sched['late_pct']}% late (>5 s), {sched['cpu_core_fraction']:.2f} of a core, "
              f"peak RSS {sched['max_rss_mb']:.0f} MB")


if __name__ == "__main__":
    os.environ.setdefault("MIBS", "")
    main()
