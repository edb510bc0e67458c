"""The real CLI (subprocesses) against create_app served by a real uvicorn on a free port.

``user add`` works locally on the store; everything else goes through the API.
Exit codes: 0 ok, 1 failed (403/404/401), 2 usage (bad options, 422, no token).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from support.apistack import ApiThread
from support.services import free_port

COMMUNE_A = "binh-phuoc/dong-xoai/tan-phu"
COMMUNE_B = "binh-phuoc/dong-xoai/tien-thanh"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"cli-{request.param}")
    db_line = ""
    if request.param == "postgresql":
        db_line = f'[database]\nurl = "{request.getfixturevalue("postgres").fresh_database()}"\n'
    cfg = tmp / "netmgr.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{tmp / "state"}"\n{db_line}', encoding="utf-8")
    from netmgr.config import load_settings

    settings, _ = load_settings(str(cfg))
    port = free_port()
    api = ApiThread(settings, port)
    api.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env.update(NETMGR_CONFIG=str(cfg), XDG_CONFIG_HOME=str(tmp / "xdg"), COLUMNS="200")
    try:
        yield {"env": env, "url": f"http://127.0.0.1:{port}", "tmp": tmp}
    finally:
        api.stop()


def netmgr(stack, *args, code=0, token=None, server=True):
    env = dict(stack["env"])
    if server:
        env["NETMGR_SERVER"] = stack["url"]
    if token:
        env["NETMGR_TOKEN"] = token
    r = subprocess.run([sys.executable, "-m", "netmgr", *args], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == code, f"netmgr {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def test_cli_through_the_api(stack):
    admin = json.loads(netmgr(stack, "user", "add", "root", "--role", "admin", "--json").stdout)["token"]
    assert admin.startswith("nmt_")
    r = netmgr(stack, "zone", "list", code=2)  # no token anywhere yet
    assert "no API token" in r.stderr
    r = netmgr(stack, "login", "--server", stack["url"], "--token", "nmt_not-a-real-token", code=1,
               server=False)
    assert "invalid or disabled token (HTTP 401)" in r.stderr
    r = netmgr(stack, "login", "--server", stack["url"], "--token", admin, server=False)
    assert "as root (admin)" in r.stdout

    # From here the saved credentials are used (no NETMGR_SERVER/NETMGR_TOKEN).
    for path, name, more in [("binh-phuoc", "Bình Phước", []),
                             ("binh-phuoc/dong-xoai", "Đồng Xoài", ["--kind", "huyen-cu", "--code", "689"]),
                             (COMMUNE_A, "Tân Phú", ["--kind", "phuong"]), (COMMUNE_B, "Tiến Thành", [])]:
        netmgr(stack, "zone", "add", path, "--name", name, *more, server=False)
    r = netmgr(stack, "zone", "add", COMMUNE_A, "--name", "Tân Phú", code=1, server=False)
    assert f"zone {COMMUNE_A} exists (HTTP 409)" in r.stderr
    r = netmgr(stack, "zone", "add", "binh-phuoc/Dong Phu", "--name", "Đồng Phú", code=2, server=False)
    assert "body.path:" in r.stderr and "(HTTP 422)" in r.stderr
    listed = json.loads(netmgr(stack, "zone", "list", "--json", "--under", "binh-phuoc/dong-xoai",
                               server=False).stdout)
    assert [(z["path"], z["level"], z["kind"], z["code"]) for z in listed] == [
        ("binh-phuoc/dong-xoai", "legacy", "huyen-cu", "689"), (COMMUNE_A, "commune", "phuong", None),
        (COMMUNE_B, "commune", "xa", None)]  # a commune's default kind: xã
    tree = netmgr(stack, "zone", "list", server=False).stdout  # the tree for people
    assert "Xã Tiến Thành" in tree and "Phường Tân Phú" in tree and "689" in tree
    found = json.loads(netmgr(stack, "zone", "list", "--json", "--search", "tien thanh", server=False).stdout)
    assert [z["path"] for z in found] == [COMMUNE_B]  # without diacritics
    assert [z["path"] for z in json.loads(netmgr(stack, "zone", "list", "--json", "--search", "689",
                                                 server=False).stdout)] == ["binh-phuoc/dong-xoai"]
    r = netmgr(stack, "zone", "add", "binh-phuoc/dong-phu", "--name", "Đồng Phú", "--kind", "huyen-cu", "--code", "689",
               code=1, server=False)
    assert "code 689 is already the code of binh-phuoc/dong-xoai (HTTP 409)" in r.stderr
    # The official directory (codes made up for the test): a dry run says what it would do.
    directory_csv = stack["tmp"] / "danh-muc.csv"
    directory_csv.write_text("Tỉnh Thành Phố,Mã TP,Phường Xã,Mã PX,Cấp\n"
                             "Tỉnh Đồng Nai,75,Phường Bình Phước,90001,Phường\n", encoding="utf-8")
    out = netmgr(stack, "zone", "directory", str(directory_csv), "--dry-run", server=False).stdout
    assert "2 zones would be created" in out and "create      75  Đồng Nai (dong-nai)" in out
    assert "(dry run: nothing changed" in out
    out = netmgr(stack, "zone", "directory", str(directory_csv), server=False).stdout
    assert "2 zones were created" in out
    assert "Phường Bình Phước" in netmgr(stack, "zone", "list", "--under", "dong-nai", server=False).stdout
    # Tiến Thành became part of phường Đồng Xoài on 1 July 2025: a rename keeps the old name.
    out = netmgr(stack, "zone", "rename", COMMUNE_B, "--name", "Đồng Xoài", "--kind", "phuong",
                 "--effective", "2025-07-01", "--dry-run", server=False).stdout
    assert f"Xã Tiến Thành ({COMMUNE_B}) would become Phường Đồng Xoài, from 2025-06-30T17:00:00+00:00" in out
    netmgr(stack, "zone", "rename", COMMUNE_B, "--name", "Đồng Xoài", "--kind", "phuong",
           "--effective", "2025-07-01", server=False)
    shown = json.loads(netmgr(stack, "zone", "show", COMMUNE_B, "--json", server=False).stdout)
    assert (shown["name"], [h["name"] for h in shown["history"]]) == ("Đồng Xoài", ["Tiến Thành"])
    assert "Tiến Thành (until 2025-07-01 00:00:00)" in netmgr(stack, "zone", "show", COMMUNE_B, server=False).stdout
    r = netmgr(stack, "zone", "rename", COMMUNE_B, "--name", "X", "--effective", "1 July", code=2, server=False)
    assert "--effective" in r.stderr

    out = netmgr(stack, "user", "add", "an", "--role", "operator", "--zone", COMMUNE_A).stdout
    an = out.split("token (shown once, keep it safe): ")[1].strip()
    netmgr(stack, "user", "add", "vy", "--role", "operator", code=2)  # operator without --zone

    # The operator: allowed in their commune, refused (exit 1, zone named) in the other.
    netmgr(stack, "ap", "add", "ap-a1", "--host", "192.0.2.10", "--community", "s3cret-comm",
           "--zone", COMMUNE_A, "--lat", "11.53", "--lon", "106.88", "--tag", "vendor=unifi", token=an)
    r = netmgr(stack, "ap", "add", "ap-b1", "--host", "192.0.2.11", "--zone", COMMUNE_B, code=1, token=an)
    assert f"in zone {COMMUNE_B}: outside their zones {COMMUNE_A} (HTTP 403)" in r.stderr
    netmgr(stack, "ap", "add", "ap-x", "--host", "192.0.2.12", "--zone", COMMUNE_A, "--port", "0",
           code=2, token=an)  # click refuses before any request
    netmgr(stack, "ap", "add", "ap-v3", "--host", "192.0.2.13", "--zone", COMMUNE_A, "--v3-user", "mon",
           "--auth-key", "authkey-123", "--priv-key", "privkey-456", "--auth-proto", "SHA256", token=an)

    aps = json.loads(netmgr(stack, "ap", "list", "--json", "--zone", COMMUNE_A, token=an).stdout)
    assert [a["name"] for a in aps] == ["ap-a1", "ap-v3"]
    assert aps[0]["tags"] == {"vendor": "unifi"} and aps[0]["snmp"]["community"] == "********"
    for args in (("ap", "show", "ap-a1"), ("ap", "show", "ap-v3", "--json"), ("ap", "list")):
        out = netmgr(stack, *args, token=an).stdout
        assert "s3cret-comm" not in out and "authkey-123" not in out and "privkey-456" not in out
    shown = json.loads(netmgr(stack, "ap", "show", "ap-v3", "--json", token=an).stdout)
    assert shown["snmp"]["auth_key"] == "********" and shown["snmp"]["auth_proto"] == "SHA256"
    r = netmgr(stack, "ap", "show", "nope", code=1, token=an)
    assert "AP 'nope' not found (HTTP 404)" in r.stderr

    # An import with bad lines is refused whole, with line numbers (exit 2), nothing written.
    bad = stack["tmp"] / "aps.csv"
    bad.write_text("name,host,zone,community\n"
                   f"ap-a2,192.0.2.20,{COMMUNE_A},c\n"
                   f"ap-a3,not a host!,{COMMUNE_A},c\n"
                   f"ap-a2,192.0.2.22,{COMMUNE_A},c\n", encoding="utf-8")
    r = netmgr(stack, "ap", "import", str(bad), code=2, token=an)
    assert "line 3: host:" in r.stderr and "line 4: duplicate ap ap-a2 (also on line 2)" in r.stderr
    assert len(json.loads(netmgr(stack, "ap", "list", "--json", token=an).stdout)) == 2
    good = stack["tmp"] / "aps.yaml"
    good.write_text(f"- {{name: ap-a2, host: 192.0.2.20, zone: {COMMUNE_A}, tags: {{pole: '7'}}}}\n"
                    f"- {{name: ap-a1, host: 192.0.2.10, zone: {COMMUNE_A}, community: new-comm}}\n",
                    encoding="utf-8")
    assert "1 created, 1 updated" in netmgr(stack, "ap", "import", str(good), token=an).stdout

    # Speakers.
    netmgr(stack, "speaker", "add", "spk-0001", "--zone", COMMUNE_A, "--name", "Cụm loa ấp 1", token=an)
    netmgr(stack, "speaker", "add", "spk-0002", "--zone", COMMUNE_B, code=1, token=an)
    spk = stack["tmp"] / "speakers.csv"
    spk.write_text(f"id,zone,name\nspk-0002,{COMMUNE_B},Cụm loa 2\nspk-0003,{COMMUNE_B},Cụm loa 3\n",
                   encoding="utf-8")
    assert "2 created" in netmgr(stack, "speaker", "import", str(spk), server=False).stdout  # admin
    listed = json.loads(netmgr(stack, "speaker", "list", "--json", "--zone", COMMUNE_B, server=False).stdout)
    assert [s["id"] for s in listed] == ["spk-0002", "spk-0003"]
    # an operator reads only its own commune (docs/architecture.md, "Who may read what")
    assert json.loads(netmgr(stack, "speaker", "list", "--json", "--zone", COMMUNE_B, token=an).stdout) == []
    netmgr(stack, "speaker", "show", "spk-0002", code=1, token=an)
    assert json.loads(netmgr(stack, "speaker", "show", "spk-0001", "--json", token=an).stdout)["name"] \
        == "Cụm loa ấp 1"
    netmgr(stack, "speaker", "remove", "spk-0002", code=1, token=an)  # not their commune
    netmgr(stack, "speaker", "remove", "spk-0001", token=an)
    netmgr(stack, "speaker", "show", "spk-0001", code=1, token=an)

    # The audit log holds the allowed and the refused writes, and the local user creation.
    denied = json.loads(netmgr(stack, "audit", "list", "--json", "--actor", "an", "--outcome", "denied",
                               server=False).stdout)
    assert {(e["action"], e["target"], e["zone"]) for e in denied} >= {
        ("ap.add", "ap-b1", COMMUNE_B), ("speaker.add", "spk-0002", COMMUNE_B),
        ("speaker.remove", "spk-0002", COMMUNE_B)}
    ok = json.loads(netmgr(stack, "audit", "list", "--json", "--actor", "an", "--outcome", "ok",
                           server=False).stdout)
    assert ("ap.add", "ap-a1", COMMUNE_A) in {(e["action"], e["target"], e["zone"]) for e in ok}
    assert all(e["remote"] == "127.0.0.1" for e in denied + ok)
    local = json.loads(netmgr(stack, "audit", "list", "--json", "--action", "user.add", server=False).stdout)
    assert {e["target"] for e in local} == {"root", "an"}
    assert all(e["actor"].startswith("local:") for e in local)
    assert "ap.add" in netmgr(stack, "audit", "list", "--actor", "an", server=False).stdout

    # Users: listed without tokens; a disabled user's token stops working (401, exit 1).
    users = json.loads(netmgr(stack, "user", "list", "--json").stdout)
    assert [(u["name"], u["role"], u["zones"]) for u in users] == [
        ("an", "operator", [COMMUNE_A]), ("root", "admin", [])]
    assert "token" not in json.dumps(users) and an not in json.dumps(users)
    netmgr(stack, "user", "disable", "an")
    r = netmgr(stack, "ap", "list", code=1, token=an)
    assert "(HTTP 401)" in r.stderr
    netmgr(stack, "ap", "remove", "ap-a1", server=False)
    netmgr(stack, "ap", "remove", "ap-a1", code=1, server=False)


def test_bulk_speaker_credentials_go_to_a_new_private_file(stack):
    """`speaker credentials --missing --out FILE`: one identity per speaker without one, the
    passwords in a new 0600 file (never on the terminal); an existing file is never overwritten."""
    token = json.loads(netmgr(stack, "user", "add", "onboarder", "--role", "admin", "--json").stdout)["token"]
    zone = "quang-tri"
    netmgr(stack, "zone", "add", zone, "--name", "Quảng Trị", token=token)
    for i in range(3):
        netmgr(stack, "speaker", "add", f"qt-{i}", "--zone", zone, token=token)
    out = stack["tmp"] / f"creds-{time.time_ns()}.csv"
    r = netmgr(stack, "speaker", "credentials", "--missing", "--zone", zone, "--out", str(out), token=token)
    assert "created credentials for 3 speakers" in r.stdout
    rows = out.read_text().splitlines()
    assert rows[0] == "node,username,password" and sorted(x.split(",")[0] for x in rows[1:]) == ["qt-0", "qt-1", "qt-2"]
    assert all(x.split(",")[2] not in r.stdout for x in rows[1:])
    assert out.stat().st_mode & 0o777 == 0o600
    r = netmgr(stack, "speaker", "credentials", "--missing", "--zone", zone, "--out", str(out), code=2, token=token)
    assert f"{out} exists" in r.stderr and out.read_text().splitlines() == rows
    again = out.with_suffix(".2.csv")
    r = netmgr(stack, "speaker", "credentials", "--missing", "--zone", zone, "--out", str(again), token=token)
    assert "created credentials for 0 speakers" in r.stdout
    netmgr(stack, "speaker", "credentials", "--missing", code=2, token=token)  # no --out: refused


def test_untrusted_strings_cannot_drive_the_terminal(stack):
    """Issue 12, item 6: names stored before input was checked (or by another tool) are printed
    with their control characters escaped, never as terminal escapes or rich markup."""

    from netmgr.config import load_settings
    from netmgr.store import db
    from netmgr.store.models import Speaker, Zone

    hostile = "\x1b]0;pwned\x07Cụm [red]loa\x1b[31m \u202egnp.exe\x9b"

    async def plant() -> None:
        settings, _ = load_settings(stack["env"]["NETMGR_CONFIG"], environ={})
        engine = db.create_engine(settings.database_url)
        async with db.sessionmaker(engine)() as s:
            s.add(Zone(path="tinh-x", name=hostile, level="province", kind="tinh", parent=None))
            await s.flush()
            s.add(Speaker(id="loa-evil", zone="tinh-x", name=hostile, model=hostile, tags={"k": hostile}))
            await s.commit()
        await engine.dispose()

    asyncio.run(plant())
    token = json.loads(netmgr(stack, "user", "add", "render", "--role", "admin", "--json").stdout)["token"]
    for args in (["speaker", "show", "loa-evil"], ["speaker", "list", "--zone", "tinh-x"],
                 ["zone", "list"], ["zone", "show", "tinh-x"], ["speaker", "show", "loa-evil", "--json"]):
        r = netmgr(stack, *args, token=token)
        out = r.stdout + r.stderr
        assert not any(c in out for c in "\x1b\x07\x9b\u202e"), (args, out)
        if "--json" in args:
            assert json.loads(r.stdout)["name"] == hostile  # JSON keeps the data, escaped
        elif args[1] != "list" or args[0] == "zone":  # `speaker list` has no name column
            assert "\\x1b]0;pwned\\x07" in out and "[red]loa" in out, (args, out)
