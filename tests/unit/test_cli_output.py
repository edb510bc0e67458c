"""Output for people, one convention everywhere (issue 13): the formatters, the daemon's time zone
asked of the API (not the local config's), and every ``list``/``show``/``report``/``plan``/``status``
command of the Click tree rendered at 100 columns with long Vietnamese names and zone paths: no
header may be cut, no line may pass 100 columns, ``--wide`` shows what was left out, and
``--json`` still prints the API's exact values.

The commands run for real (click.testing.CliRunner) against an API stand-in that answers with
responses shaped as the daemon's (captured from `netmgr demo`); the local ones (user, db,
config) against a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click
import pytest
from click.testing import CliRunner
from rich.cells import cell_len
from support.apistack import api_stack

from netmgr.cli import cli
from netmgr.cli.context import CliContext
from netmgr.cli.output import print_table
from netmgr.errors import ApiError
from netmgr.humanize import (
    format_bytes,
    format_duration,
    format_time,
    to_datetime,
    yes_no,
    zone_label,
    zone_labels,
)
from netmgr.zones import kinds as zone_kinds

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
WIDTH = 100


# --- the formatters --------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "2026-12-03T18:47:05Z", "2026-12-03T18:47:05.823412+00:00", "2026-12-04T01:47:05+07:00",
    "2026-12-03T18:47:05", "2026-12-04 01:47:05 +07", datetime(2026, 12, 3, 18, 47, 5, 999, tzinfo=UTC),
    datetime(2026, 12, 3, 18, 47, 5), 1796323625.823, 1796323625823,
])
def test_a_time_in_any_of_its_forms_reads_local_without_microseconds(value):
    assert format_time(value, HCM) == "2026-12-04 01:47:05"
    assert format_time(value, ZoneInfo("Europe/Paris")) == "2026-12-03 19:47:05"
    assert format_time(value, HCM, date=False, seconds=False) == "01:47"


def test_what_is_no_time_is_shown_as_it_is_and_none_is_empty():
    assert format_time(None, HCM) == "" and format_time("", HCM) == ""
    assert format_time("soon", HCM) == "soon"
    with pytest.raises(ValueError):
        to_datetime(True)


def test_the_zone_is_named_with_its_offset():
    assert zone_label(HCM) == "Asia/Ho_Chi_Minh (UTC+07:00)"
    assert zone_label(ZoneInfo("America/St_Johns"), datetime(2026, 1, 5, tzinfo=UTC)) == \
        "America/St_Johns (UTC-03:30)"
    assert zone_label(ZoneInfo("UTC")) == "UTC"


@pytest.mark.parametrize(("seconds", "text"), [
    (86425.23, "1 d 0 h"), (3 * 86400 + 5 * 3600 + 59, "3 d 5 h"), (3 * 3600 + 12 * 60 + 7, "3 h 12 min"),
    (303, "5 min 3 s"), (45.3, "45 s"), (2.5, "2.5 s"), (3.0, "3 s"), (-0.25, "-0.2 s"), (None, ""),
])
def test_durations_use_the_two_largest_units(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize(("n", "text"), [
    (33046528, "31.5 MiB"), (63881216, "60.9 MiB"), (171216, "167.2 KiB"), (512, "512 B"),
    (5 * 1024**3, "5.0 GiB"), (None, ""),
])
def test_bytes_use_binary_units(n, text):
    assert format_bytes(n) == text


def test_booleans_are_words():
    assert (yes_no(True), yes_no(False), yes_no(None)) == ("yes", "no", "")
    assert yes_no(False, "late", "on time") == "on time"


def test_zones_read_by_name_and_two_of_a_name_by_their_parent_too():
    labels = zone_labels([
        {"path": "bp", "name": "Bình Phước", "parent": None},
        {"path": "bp/dx", "name": "Đồng Xoài", "parent": "bp"},
        {"path": "bp/dp", "name": "Đồng Phú", "parent": "bp"},
        {"path": "bp/dx/tan-phu", "name": "Tân Phú", "parent": "bp/dx"},
        {"path": "bp/dp/tan-phu", "name": "Tân Phú", "parent": "bp/dp"},
    ])
    assert labels["bp/dx"] == "Đồng Xoài"
    assert labels["bp/dx/tan-phu"] == "Tân Phú (Đồng Xoài)" and labels["bp/dp/tan-phu"] == "Tân Phú (Đồng Phú)"


# --- the daemon's zone, from the API it talks to ------------------------------------------------

NOW = datetime.now(UTC).replace(microsecond=0)


def iso(dt: datetime, micro: int = 0) -> str:
    return dt.replace(microsecond=micro).isoformat()


class FakeApi:
    """Answers as the daemon's API would (shapes captured from `netmgr demo`), recording calls."""

    def __init__(self, routes: dict[str, Any], timezone: str | None = "Asia/Ho_Chi_Minh") -> None:
        self.routes = routes
        self.timezone = timezone
        self.calls: list[str] = []

    def get(self, path: str, **params: Any) -> Any:
        self.calls.append(path)
        if path == "/api/v1/info":
            if self.timezone is None:
                raise ApiError(404, "Not Found (HTTP 404)")
            return {"version": "0.1.0", "timezone": self.timezone}
        if path not in self.routes:
            raise AssertionError(f"the stand-in has no {path}")
        return json.loads(json.dumps(self.routes[path]))  # a fresh copy, as from the wire

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.get(path)


def test_times_are_in_the_daemons_zone_not_the_local_configs(tmp_path, monkeypatch):
    """The trap of issue 13: a remote daemon in Asia/Ho_Chi_Minh, a laptop configured for Paris."""
    cfg = tmp_path / "netmgr.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{tmp_path}"\ntimezone = "Europe/Paris"\n', encoding="utf-8")
    poll = NOW - timedelta(seconds=20)
    fake = FakeApi(province_routes())
    monkeypatch.setattr(CliContext, "client", lambda self: fake)
    out = run(["--config", str(cfg), "ap", "list", "--wide"])
    assert format_time(poll, HCM) in out and "times in Asia/Ho_Chi_Minh (UTC+07:00)" in out
    assert format_time(poll, ZoneInfo("Europe/Paris")) not in out
    assert "/api/v1/info" in fake.calls

    fake.timezone = None  # an older daemon without GET /api/v1/info: the local config
    out = run(["--config", str(cfg), "ap", "list", "--wide"])
    assert format_time(poll, ZoneInfo("Europe/Paris")) in out and "Europe/Paris" in out


async def test_the_api_tells_its_zone_to_any_reader(tmp_path):
    async with api_stack(tmp_path, settings={"daemon": {"timezone": "America/Bogota"}}) as st:
        r = await st.call("GET", "/api/v1/info", "vy")
        assert r.status_code == 200 and r.json()["timezone"] == "America/Bogota"
        assert (await st.call("GET", "/api/v1/info", None)).status_code == 401


# --- every list and show at 100 columns ----------------------------------------------------------

# The test tree is a pre-2025 one: province / district / commune / village (kinds.yaml).
OLD_TIERS = ["province", "legacy", "commune", "village"]
OLD_KINDS = ["tinh", "huyen-cu", "xa", "thon"]

ZONES = [
    ("binh-phuoc", "Bình Phước", None),
    ("binh-phuoc/bu-gia-map", "Bù Gia Mập", "binh-phuoc"),
    ("binh-phuoc/bu-gia-map/phu-nghia", "Phú Nghĩa", "binh-phuoc/bu-gia-map"),
    ("binh-phuoc/bu-gia-map/phu-nghia/thon-bu-dak-ngoai-o", "Thôn Bù Đăk Ngoài Ô (điểm trường cũ)",
     "binh-phuoc/bu-gia-map/phu-nghia"),
    ("binh-phuoc/dong-xoai", "Đồng Xoài", "binh-phuoc"),
    ("binh-phuoc/dong-xoai/tan-phu", "Tân Phú", "binh-phuoc/dong-xoai"),
]
VILLAGE = ZONES[3][0]
COMMUNE = ZONES[5][0]
TITLE = "Thông báo lịch tiêm chủng mở rộng tháng 12 cho trẻ em dưới 5 tuổi tại trạm y tế xã"


def ap_item(i: int) -> dict[str, Any]:
    zone = VILLAGE if i % 2 else COMMUNE
    return {"name": f"ap-ubnd-xa-phu-nghia-hoi-truong-thon-{i:02d}", "host": f"10.20.{i}.254", "port": 161,
            "zone": zone, "lat": 11.9, "lon": 106.9, "tags": {"pole": str(i)},
            "snmp": {"version": "2c", "community": "********"}, "profile": None, "enabled": True,
            "status": ["up", "down", "unknown"][i % 3], "status_since": iso(NOW - timedelta(hours=3), 774),
            "flaps": i, "clients": 1873 if i % 3 == 0 else None,
            "last_poll": iso(NOW - timedelta(seconds=20), 593120), "last_ok": iso(NOW - timedelta(seconds=20)),
            "response_ms": 5.4, "uptime_s": 86425.23, "vendor": "Generic SNMP",
            "model": "agent (SNMPv2-MIB, IF-MIB, HOST-RESOURCES-MIB) on Linux 4.4.153 UAP-AC-Lite",
            "matched_profile": "generic-linux", "sys_name": "bp-bgm-phunghia-ubnd-hoi-truong-01",
            "cpu_pct": 17.0, "mem_used": 33046528, "mem_total": 63881216,
            "last_error": "no SNMP response from 10.20.1.254:161 after 2 tries (timeout 1 s)" if i % 3 == 1 else None}


def ap_detail() -> dict[str, Any]:
    itf = {"index": 1, "name": "wlan-1-1-phu-nghia-guest-5ghz", "alias": "", "oper_status": 1,
           "speed_bps": 866000000, "counter_bits": 64, "in_octets": 4731831227766, "out_octets": 9311051922630,
           "in_errors": 42, "out_errors": 2, "in_bps": 3999873.679706557, "in_prev_octets": 4731826267817,
           "rate_interval_s": 9.920211, "in_restart_age_s": None, "out_bps": 3999873.679706557,
           "out_prev_octets": 9311046962681, "out_restart_age_s": None}
    return {**ap_item(1), "sys_descr": "Linux 4.4.153 #1 SMP Tue Mar 12 2024 mips UAP-AC-Lite 6.6.65",
            "sys_object_id": "1.3.6.1.4.1.10002.1", "sys_location": "UBND xã Phú Nghĩa", "family": "UniFi AP",
            "interfaces": [itf, {**itf, "index": 2, "name": "eth0", "oper_status": 2, "in_bps": None}],
            "radios": [{"name": "ng", "channel": 6, "noise_dbm": -95, "clients": 17, "tx_power": None}],
            "clients_by_ssid": {"WiFi_Mien_Phi_BinhPhuoc": 23, "UBND_PhuNghia_Can_Bo": 5},
            "clients_by_radio": {"ng": 17}, "events": [{"ts": iso(NOW - timedelta(hours=3), 907202),
                                                         "status": "up", "detail": ""}]}


def ap_history() -> list[dict[str, Any]]:
    return [{"ts": iso(NOW - timedelta(seconds=10 * k)), "up": 1, "response_ms": 3.061304000027576,
             "clients": 28, "cpu_pct": 17.0, "mem_used_pct": 51.73, "uptime_s": 86545.28,
             "ifname": "wlan-1-1-phu-nghia-guest-5ghz", "rx_bps": 6002767.7, "tx_bps": 6002766.1}
            for k in range(5, 0, -1)]


def speaker_item(i: int) -> dict[str, Any]:
    return {"id": f"loa-thon-bu-dak-ngoai-o-{i:02d}", "name": f"Cụm loa ấp Đồng Tiến {i}, cạnh nhà văn hoá",
            "zone": VILLAGE, "model": "VN-SPK-40-4G-OUTDOOR", "credentials": i % 2 == 0,
            "status": ["online", "stale", "offline"][i % 3], "session": 1796409129773 + i,
            "since": iso(NOW - timedelta(minutes=5), 916702), "last_seen": iso(NOW - timedelta(seconds=3), 101078),
            "fw": "2.1.0-rc3+build.20261201", "skew_s": -0.001, "schedule_version": 1796409130514,
            "telemetry": {"ts": NOW.timestamp() - 3.9, "rssi_dbm": -65, "volume": 70,
                          "playing": "p12-20261204T183309Z", "priority": "normal", "temperature_c": 41.0,
                          "voltage_v": 12.2, "uptime_s": 86425.23, "net": "4g", "late": False,
                          "fw": "2.1.0-rc3+build.20261201"}}


def speaker_detail() -> dict[str, Any]:
    cmd = {"id": "p12-20261204T183309Z", "method": "play", "priority": "emergency",
           "issued": iso(NOW - timedelta(minutes=1), 639457), "state": "error",
           "error": "the node refused: a higher-priority item plays (emergency p11-20261204T183000Z)",
           "times": {"accepted": iso(NOW - timedelta(minutes=1), 639487)}}
    return {**speaker_item(1), "commands": [cmd]}


def speaker_history() -> list[dict[str, Any]]:
    return [{"ts": iso(NOW - timedelta(seconds=10 * k)), "online": 1, "rssi_dbm": -65.0, "volume": 70,
             "playing": 1, "priority": 1, "temperature_c": 41.0, "voltage_v": 12.2, "uptime_s": 70.4}
            for k in range(5, 0, -1)]


def occurrence(i: int, start: datetime) -> dict[str, Any]:
    return {"id": f"p{i}-{start:%Y%m%dT%H%M%SZ}", "start": start.isoformat(),
            "start_local": start.astimezone(HCM).strftime("%Y-%m-%d %H:%M:%S +07"), "state": "sent",
            "sent_at": iso(start, 634526), "targets": 100, "played": 98, "accepted": 0, "failed": 1,
            "offline": 1, "expired": 0, "late": i % 2 == 1, "missed": False, "deliveries": {"done": 98},
            "detail": ""}


def program(i: int) -> dict[str, Any]:
    nxt = NOW + timedelta(hours=i)
    return {"id": i, "title": f"{TITLE} (lần {i})", "zone": VILLAGE, "priority": "emergency" if i == 2 else "normal",
            "when": "rrule FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=17;BYMINUTE=30 from 2026-12-01 17:30:00 +07 "
                    "until 2027-06-30 17:30:00 +07",
            "duration_s": 1800, "volume": 80,
            "content": {"kind": "text", "text": TITLE, "voice": "vi-vn-x-south", "media_id": "d1729f2da03a" * 5},
            "targets": {"zones": [VILLAGE], "speakers": []}, "created_by": "can-bo-van-hoa-xa-phu-nghia",
            "created_at": iso(NOW - timedelta(days=3), 509405), "cancelled_at": None,
            "next": nxt.astimezone(HCM).strftime("%Y-%m-%d %H:%M:%S +07"), "next_utc": nxt.isoformat()}


def province_routes() -> dict[str, Any]:
    start = NOW - timedelta(minutes=30)
    occs = [occurrence(i, start - timedelta(days=i)) for i in (1, 2)]
    items = [{**o, "program": 1, "title": f"{TITLE} (lần {n})", "zone": VILLAGE, "priority": "normal"}
             for n, o in enumerate(occs, 1)]
    for it in items:
        it.pop("detail")
    plan_item = {"program": 1, "title": TITLE, "priority": "normal", "occurrence": "p1-x",
                 "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "end": (start + timedelta(minutes=30)).strftime(
                     "%Y-%m-%dT%H:%M:%SZ"), "start_local": "", "end_local": "", "cut": True}
    media = {"id": "d1729f2da03a0122f1dd206edd321ebd56f4f6e860b71522f6fb99469445d6d4", "format": "wav",
             "title": TITLE, "kind": "tts", "duration_s": 3725.881, "size": 171216000,
             "created": iso(NOW - timedelta(days=1), 498000), "created_by": "can-bo-van-hoa-xa-phu-nghia",
             "sample_rate": 22050, "channels": 1, "filename": "", "text": TITLE, "voice": "vi",
             "ext": "wav", "content_type": "audio/wav", "url": "http://127.0.0.1:8470/media/d17.wav"}
    audit = {"id": 6, "ts": iso(NOW - timedelta(minutes=2), 562536), "actor": "can-bo-van-hoa-xa-phu-nghia",
             "role": "operator", "action": "program.add", "target": TITLE, "zone": VILLAGE, "outcome": "denied",
             "detail": "operator 'can-bo-van-hoa-xa-phu-nghia' may not send emergency broadcasts", "remote": "10.0.0.7"}
    zones = [{"path": p, "name": n, "level": OLD_TIERS[p.count("/")], "kind": OLD_KINDS[p.count("/")],
              "kind_name": zone_kinds().get(OLD_KINDS[p.count("/")]).vi, "code": "689" if p.count("/") == 1 else None,
              "parent": par} for p, n, par in ZONES]
    speakers = [speaker_item(i) for i in range(1, 7)]
    return {
        "/api/v1/aps": {"items": [ap_item(i) for i in range(1, 7)], "count": 6},
        f"/api/v1/aps/{ap_item(1)['name']}": ap_detail(),
        f"/api/v1/aps/{ap_item(1)['name']}/history": {"items": ap_history()},
        "/api/v1/speakers-status": {"items": speakers, "count": len(speakers)},
        f"/api/v1/speakers/{speaker_item(1)['id']}/status": speaker_detail(),
        f"/api/v1/speakers/{speaker_item(1)['id']}/history": {"items": speaker_history()},
        "/api/v1/programs": {"items": [program(1), program(2)], "count": 2},
        "/api/v1/programs/1": {**program(1), "next_occurrences": [program(1)["next"]], "occurrences": occs},
        "/api/v1/plan": {"zone": VILLAGE, "day": "today", "from": "", "to": "", "timezone": "Asia/Ho_Chi_Minh",
                         "groups": [{"speakers": [s["id"] for s in speakers], "items": [plan_item], "lost": [
                             {"message": f"{TITLE} (lần 2) is cut by Cảnh báo lũ khẩn cấp at 17:45"}]}]},
        "/api/v1/reports": {"from": "", "to": "", "zone": None, "items": items, "count": len(items),
                            "totals": {"targets": 200, "played": 196, "failed": 2, "offline": 2, "expired": 0,
                                       "late": 1, "missed": 0}},
        "/api/v1/media": {"items": [media], "count": 1},
        "/api/v1/audit": {"items": [audit] * 3, "count": 3},
        "/api/v1/zones": {"items": zones, "count": len(zones)},
        f"/api/v1/zones/{VILLAGE}": zones[3],
    }


# Arguments of every people-facing read command; a new one without an entry fails the test.
CASES: dict[str, list[str]] = {
    "ap list": [],
    "ap show": [ap_item(1)["name"]],
    "speaker list": [],
    "speaker show": [speaker_item(1)["id"]],
    "broadcast list": [],
    "broadcast show": ["1"],
    "broadcast plan": ["--zone", VILLAGE],
    "broadcast report": ["--from", "yesterday", "--to", "today"],
    "media list": [],
    "audit list": [],
    "zone list": [],
    "zone show": [VILLAGE],
    "user list": [],
    "db status": [],
    "config show": [],
}
READ_NAMES = {"list", "show", "report", "plan", "status"}
LOCAL = {"user list", "db status", "config show"}  # no API: the state store and config are here


def read_commands() -> list[tuple[str, click.Command]]:
    """Every list/show/report/plan/status command, found by walking the Click tree."""
    found = []
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            found += [(f"{name} {sub}", cmd.commands[sub]) for sub in sorted(cmd.commands) if sub in READ_NAMES]
        elif name in READ_NAMES:
            found.append((name, cmd))
    return found


def run(args: list[str], width: int = WIDTH) -> str:
    r = CliRunner().invoke(cli, args, env={"COLUMNS": str(width)}, catch_exceptions=True)
    assert r.exit_code == 0, f"netmgr {' '.join(args)}: exit {r.exit_code}\n{r.output}\n{r.exception!r}"
    return r.output


def cut_headers(out: str) -> list[str]:
    """The table headers of ``out`` that are not whole on one line: shortened ("…"), cropped at
    the edge, or wrapped (a header row of more than one line)."""
    bad, block = [], []
    for line in [*out.splitlines(), ""]:
        if line.startswith("┃"):
            block.append(line)
            continue
        if len(block) > 1 or any("…" in h or not h.rstrip().endswith("┃") for h in block):
            bad.append("\n".join(block))
        block = []
    return bad


def header_cells(out: str) -> set[str]:
    return {cell.strip() for line in out.splitlines() if line.startswith("┃")
            for cell in line.strip("┃").split("┃")}


async def seed_zones(url: str) -> None:
    from netmgr.store import db
    from netmgr.store.models import Zone

    engine = db.create_engine(url)
    try:
        async with db.sessionmaker(engine)() as s:
            for path, name, parent in ZONES:
                s.add(Zone(path=path, name=name, level=OLD_TIERS[path.count("/")],
                           kind=OLD_KINDS[path.count("/")], parent=parent))
            await s.commit()
    finally:
        await engine.dispose()


@pytest.fixture
def local_store(tmp_path, monkeypatch):
    cfg = tmp_path / "netmgr.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n', encoding="utf-8")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    run(["--config", str(cfg), "db", "upgrade"])
    asyncio.run(seed_zones(f"sqlite+aiosqlite:///{tmp_path / 'state' / 'netmgr.db'}"))
    for name, role, zone in (("can-bo-van-hoa-xa-phu-nghia-huyen-bu-gia-map", "operator", VILLAGE),
                             ("quan-tri-vien-so-thong-tin-truyen-thong", "admin", None)):
        run(["--config", str(cfg), "user", "add", name, "--role", role, *(["--zone", zone] if zone else [])])
    return cfg


def test_the_cut_header_check_sees_a_cut_header(monkeypatch):
    """The check below is worth something: it finds what rich cuts when nothing fits."""
    from click.testing import CliRunner as Runner

    @click.command()
    def narrow() -> None:
        print_table([{"a": "x" * 40, "b": "y"}], [("a", "a long header", "essential"),
                                                  ("b", "another long header", "essential")])

    fits = Runner().invoke(narrow, env={"COLUMNS": "60"}).output
    assert not cut_headers(fits) and "another long header ┃" in fits and "a long header " in fits, fits
    narrower = Runner().invoke(narrow, env={"COLUMNS": "20"}).output
    assert cut_headers(narrower), narrower
    assert all(cell_len(line) <= 20 for line in narrower.splitlines()), narrower


def test_every_list_and_show_fits_100_columns_without_a_cut_header(local_store, monkeypatch):
    fake = FakeApi(province_routes())
    monkeypatch.setattr(CliContext, "client", lambda self: fake)
    commands = read_commands()
    names = {n for n, _ in commands}
    assert names >= {"ap list", "speaker show", "broadcast report", "zone show"}, names
    assert not names - set(CASES), f"give these commands a case in CASES: {sorted(names - set(CASES))}"
    for name, cmd in commands:
        out = run(["--config", str(local_store), *name.split(), *CASES[name]])
        assert out.strip(), name
        assert not cut_headers(out), f"netmgr {name}: cut header at {WIDTH} columns:\n{out}"
        too_wide = [line for line in out.splitlines() if cell_len(line) > WIDTH]
        assert not too_wide, f"netmgr {name}: lines wider than {WIDTH} columns:\n" + "\n".join(too_wide)
        assert ".823412" not in out and "593120" not in out, f"netmgr {name}: microseconds shown:\n{out}"
        if name not in LOCAL and "times in" not in out:
            assert "2026-" not in out and f"{NOW.year}-" not in out, f"netmgr {name}: times without their zone"
        wide = {p.name for p in cmd.params} >= {"wide"}
        if wide and "(--wide adds" in out:
            hidden = out.split("(--wide adds ", 1)[1].split(")", 1)[0].split(", ")
            full = run(["--config", str(local_store), *name.split(), *CASES[name], "--wide"])
            assert "(--wide adds" not in full and not cut_headers(full), full
            assert set(hidden) <= header_cells(full), (name, hidden, full)


@pytest.mark.parametrize(("name", "path"), [
    ("ap list", "/api/v1/aps"), ("speaker list", "/api/v1/speakers-status"), ("broadcast list", "/api/v1/programs"),
    ("media list", "/api/v1/media"), ("audit list", "/api/v1/audit"), ("broadcast report", "/api/v1/reports"),
    ("broadcast show", "/api/v1/programs/1"),
])
def test_json_keeps_the_apis_exact_values(name, path, monkeypatch):
    routes = province_routes()
    monkeypatch.setattr(CliContext, "client", lambda self: FakeApi(routes))
    data = json.loads(run([*name.split(), *CASES[name], "--json"]))
    want = routes[path]
    assert data == (want["items"] if name.endswith("list") else want)


def test_people_read_units_words_and_zone_names(monkeypatch):
    monkeypatch.setattr(CliContext, "client", lambda self: FakeApi(province_routes()))
    ap = run(["ap", "show", ap_item(1)["name"]])
    assert re.search(r"^uptime +1 d 0 h$", ap, re.M) and "86425" not in ap, ap
    assert re.search(r"^memory +31\.5 MiB of 60\.9 MiB \(52%\)$", ap, re.M) and "bytes" not in ap, ap
    assert "Thôn Bù Đăk Ngoài Ô (điểm trường cũ)" in ap
    spk = run(["speaker", "show", speaker_item(1)["id"]])
    assert re.search(r"^credentials +no$", spk, re.M) and re.search(r"^  late +no$", spk, re.M), spk
    assert "False" not in spk and str(NOW.timestamp() - 3.9) not in spk, spk
    assert f"at {format_time(NOW.timestamp() - 3.9, HCM)}" in spk
    assert re.search(r"^  uptime +1 d 0 h$", spk, re.M) and "-65 dBm" in spk, spk
    rep = run(["broadcast", "report", "--from", "yesterday", "--to", "today"])
    assert "98/100" in rep and "late" in rep and "on time" in rep and "False" not in rep
    media = run(["media", "list"])
    assert "1 h 2 min" in media and "163.3 MiB" in media


# --- the demo's status ---------------------------------------------------------------------------

def health(**over: Any) -> dict[str, Any]:
    """/healthz as the demo's daemon answers it (captured), with ``over`` merged per service."""
    services = {
        "api": {"state": "running", "ready": True, "restarts": 0, "listen": "127.0.0.1:8470"},
        "poller": {"state": "running", "restarts": 0, "aps": 15, "up": 13, "down": 1, "polls": 111,
                   "failures": 0, "late_polls": 0, "in_flight": 0, "poll_ms_p50": 3.7, "poll_ms_p99": 8.48},
        "telemetry": {"state": "running", "restarts": 0, "influxdb": "http://127.0.0.1:8428 (VictoriaMetrics)",
                      "points_submitted": 12930, "points_written": 12000, "points_dropped": 0, "write_errors": 0,
                      "spool_bytes": 1536000, "spool_points": 930, "ring_points": 12930, "ring_errors": 0,
                      "last_error": None},
        "radio": {"state": "running", "restarts": 0, "connected": True, "nodes": {
            "online": 98, "stale": 1, "offline": 1, "unknown": 0}, "bad_messages": {}},
        "scheduler": {"state": "running", "restarts": 0, "programs": 2, "sent": 2},
    }
    for name, values in over.items():
        services[name] = {**services[name], **values}
    return {"status": "ok", "services": services}


def test_the_demo_status_is_what_a_person_reads():
    from netmgr.demo import status_lines

    start = NOW - timedelta(minutes=2)
    last = {**occurrence(1, start), "title": "Cảnh báo lũ (thử)"}
    lines = dict(status_lines(health(), last, HCM))
    assert lines["APs"] == "13 up, 1 down, 1 not polled yet"
    assert lines["speakers"] == "98 online of 100 (1 stale, 1 offline)"
    assert lines["broadcast"] == f"Cảnh báo lũ (thử) at {format_time(start, HCM, date=False)}: 98/100 played, " \
                                 "2 not (late)"
    assert lines["telemetry"] == "12,000 points written, 930 spooled (1.5 MiB); 12,930 points in the local ring"
    assert lines["errors"] == "none"

    bad = dict(status_lines(health(poller={"failures": 4}, radio={"bad_messages": {"json": 2}, "connected": False},
                                   telemetry={"influxdb": "off (SQLite ring only)", "restarts": 1,
                                              "state": "backoff"}), None, HCM))
    assert bad["broadcast"] == "none yet" and bad["telemetry"].endswith("; InfluxDB off")
    assert bad["speakers"].endswith("; broker link down")
    assert bad["errors"] == "4 failed polls, 2 bad messages, 1 restarts, telemetry backoff"
