"""The API over a real store (SQLite and PostgreSQL): scopes, audit, errors, atomic imports."""

from __future__ import annotations

import httpx
import pytest
from support.apistack import COMMUNE_A, COMMUNE_B, ZONES_YAML

from netmgr.api.app import create_app
from netmgr.auth import create_user
from netmgr.config import Settings
from netmgr.store import db


@pytest.fixture(params=["sqlite", "postgresql"])
async def api(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'netmgr.db'}"
    else:
        pg = request.getfixturevalue("postgres")
        url = pg.fresh_database().replace("postgresql://", "postgresql+asyncpg://")
    engine = db.create_engine(url)
    await db.upgrade(engine)
    sessions = db.sessionmaker(engine)
    tokens = {}
    async with sessions() as s:
        _, tokens["admin"] = await create_user(s, "root", "admin", [], actor="local:test")
        await s.commit()
    app = create_app(Settings(), sessions, lambda: {"status": "ok", "services": {}})
    transport = httpx.ASGITransport(app=app, client=("10.9.8.7", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        client.engine = engine  # for the tests that count connection checkouts

        def as_(who):
            return {"Authorization": f"Bearer {tokens[who]}"}

        r = await client.post("/api/v1/zones/import", json={"format": "yaml", "text": ZONES_YAML},
                              headers=as_("admin"))
        assert r.status_code == 200, r.text
        for name, role, zones in [("an", "operator", [COMMUNE_A]), ("vy", "viewer", [])]:
            r = await client.post("/api/v1/users", json={"name": name, "role": role, "zones": zones},
                                  headers=as_("admin"))
            assert r.status_code == 201, r.text
            tokens[name] = r.json()["token"]
        yield client, as_
    await engine.dispose()


def ap_body(name, zone, **kw):
    return {"name": name, "host": "192.0.2.10", "zone": zone, "snmp": {"community": "s3cret-comm"}, **kw}


async def audit(client, as_, **params):
    r = await client.get("/api/v1/audit", params=params, headers=as_("admin"))
    assert r.status_code == 200
    return r.json()["items"]


async def test_operator_scoped_to_commune(api):
    client, as_ = api
    r = await client.post("/api/v1/aps", json=ap_body("ap-a1", COMMUNE_A), headers=as_("an"))
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/aps", json=ap_body("ap-b1", COMMUNE_B), headers=as_("an"))
    assert r.status_code == 403
    assert COMMUNE_B in r.json()["error"] and "outside their zones" in r.json()["error"]
    r = await client.get("/api/v1/aps", headers=as_("an"))
    assert [a["name"] for a in r.json()["items"]] == ["ap-a1"]  # nothing half-written
    entries = await audit(client, as_, actor="an")
    by_outcome = {e["outcome"]: e for e in entries}
    assert by_outcome["ok"]["action"] == "ap.add" and by_outcome["ok"]["zone"] == COMMUNE_A
    assert by_outcome["denied"]["target"] == "ap-b1" and by_outcome["denied"]["zone"] == COMMUNE_B
    assert by_outcome["denied"]["remote"] == "10.9.8.7"


async def test_operator_may_add_village_in_own_commune_only(api):
    client, as_ = api
    r = await client.post("/api/v1/zones", json={"path": f"{COMMUNE_A}/ap-1", "name": "Ấp 1"},
                          headers=as_("an"))
    assert r.status_code == 201 and r.json()["level"] == "village"
    r = await client.post("/api/v1/zones", json={"path": f"{COMMUNE_B}/ap-1", "name": "Ấp 1"},
                          headers=as_("an"))
    assert r.status_code == 403


async def test_viewer_reads_but_cannot_write(api):
    client, as_ = api
    assert (await client.get("/api/v1/zones", headers=as_("vy"))).status_code == 200
    r = await client.post("/api/v1/speakers", json={"id": "spk-1", "zone": COMMUNE_A}, headers=as_("vy"))
    assert r.status_code == 403 and "read-only" in r.json()["error"]
    assert (await client.get("/api/v1/users", headers=as_("vy"))).status_code == 403


async def test_tokens(api):
    client, as_ = api
    r = await client.get("/api/v1/zones")
    assert r.status_code == 401 and "missing bearer token" in r.json()["error"]
    r = await client.post("/api/v1/zones", json={"path": "x", "name": "X"},
                          headers={"Authorization": "Bearer nmt_forged-token-value"})
    assert r.status_code == 401
    denied = await audit(client, as_, outcome="denied")
    assert any(e["actor"] == "(anonymous)" and e["detail"] == "invalid or disabled token" for e in denied)
    r = await client.post("/api/v1/users/vy/disable", headers=as_("admin"))
    assert r.status_code == 200
    assert (await client.get("/api/v1/zones", headers=as_("vy"))).status_code == 401


async def test_errors_have_one_shape(api):
    client, as_ = api
    r = await client.post("/api/v1/aps", json={"host": "h", "zone": COMMUNE_A, "port": 0},
                          headers=as_("admin"))
    assert r.status_code == 422
    err = r.json()["error"]
    assert "body.name: Field required" in err and "body.port:" in err
    r = await client.get("/api/v1/aps/nope", headers=as_("admin"))
    assert r.status_code == 404 and r.json()["error"] == "AP 'nope' not found"
    r = await client.post("/api/v1/aps", json=ap_body("ap-x", COMMUNE_A), headers=as_("admin"))
    assert r.status_code == 201
    r = await client.post("/api/v1/aps", json=ap_body("ap-x", COMMUNE_A), headers=as_("admin"))
    assert r.status_code == 409
    r = await client.post("/api/v1/aps", json=ap_body("ap-y", "binh-phuoc/nowhere"), headers=as_("admin"))
    assert r.status_code == 409 and "unknown zone binh-phuoc/nowhere" in r.json()["error"]


async def test_secrets_never_returned(api):
    client, as_ = api
    body = ap_body("ap-v3", COMMUNE_A, snmp={"v3_user": "mon", "auth_key": "authkey-123",
                                             "priv_key": "privkey-456"})
    r = await client.post("/api/v1/aps", json=body, headers=as_("admin"))
    assert r.status_code == 201, r.text
    for resp in (r, await client.get("/api/v1/aps/ap-v3", headers=as_("admin")),
                 await client.get("/api/v1/aps", headers=as_("admin"))):
        assert "authkey-123" not in resp.text and "privkey-456" not in resp.text
    assert r.json()["snmp"] == {"version": "3", "v3_user": "mon", "auth_proto": "SHA", "priv_proto": "AES",
                                "auth_key": "********", "priv_key": "********"}


async def test_ap_import_is_all_or_nothing(api):
    client, as_ = api
    csv_text = ("name,host,zone,community\n"
                f"ap-1,192.0.2.1,{COMMUNE_A},c1\n"
                f"ap-2,not a host!,{COMMUNE_A},c1\n"
                f"ap-1,192.0.2.3,{COMMUNE_A},c1\n"
                "ap-4,192.0.2.4,binh-phuoc/nowhere,c1\n")
    r = await client.post("/api/v1/aps/import", json={"format": "csv", "text": csv_text},
                          headers=as_("admin"))
    assert r.status_code == 422
    problems = r.json()["detail"]
    assert any(p.startswith("line 3: host:") for p in problems)
    assert any(p.startswith("line 4: duplicate ap ap-1 (also on line 2)") for p in problems)
    assert (await client.get("/api/v1/aps", headers=as_("admin"))).json()["count"] == 0
    good = [*csv_text.splitlines()[0:2], f"ap-2,192.0.2.2,{COMMUNE_A},c1", f"ap-3,192.0.2.3,{COMMUNE_B},c1"]
    r = await client.post("/api/v1/aps/import", json={"format": "csv", "text": "\n".join(good)},
                          headers=as_("an"))
    assert r.status_code == 403 and COMMUNE_B in r.json()["error"]
    assert (await client.get("/api/v1/aps", headers=as_("admin"))).json()["count"] == 0
    r = await client.post("/api/v1/aps/import", json={"format": "csv", "text": "\n".join(good)},
                          headers=as_("admin"))
    assert r.status_code == 200 and r.json() == {"created": 3, "updated": 0}


async def test_zone_import_refused_whole_with_line_numbers(api):
    client, as_ = api
    text = ("- {path: binh-phuoc/dong-phu, name: Đồng Phú}\n"
            "- {path: binh-phuoc/dong-phu, name: Đồng Phú}\n"
            "- {path: binh-phuoc/chon-thanh/minh-hung, name: Minh Hưng}\n"
            "- {path: Bad Path, name: X}\n")
    r = await client.post("/api/v1/zones/import", json={"format": "yaml", "text": text}, headers=as_("admin"))
    assert r.status_code == 422
    problems = r.json()["detail"]
    assert "line 2: duplicate zone binh-phuoc/dong-phu (also on line 1)" in problems
    assert any(p.startswith("line 3: unknown parent zone binh-phuoc/chon-thanh") for p in problems)
    assert any(p.startswith("line 4: zone path 'Bad Path'") for p in problems)
    r = await client.get("/api/v1/zones", params={"under": "binh-phuoc/dong-phu"}, headers=as_("admin"))
    assert r.json()["count"] == 0


async def test_speakers_crud(api):
    client, as_ = api
    r = await client.post("/api/v1/speakers", json={"id": "spk-0001", "zone": COMMUNE_A, "name": "Cụm loa 1"},
                          headers=as_("an"))
    assert r.status_code == 201
    r = await client.post("/api/v1/speakers", json={"id": "SPK BAD", "zone": COMMUNE_A}, headers=as_("an"))
    assert r.status_code == 422 and "body.id" in r.json()["error"]
    r = await client.get("/api/v1/speakers", params={"zone": "binh-phuoc"}, headers=as_("vy"))
    assert [x["id"] for x in r.json()["items"]] == ["spk-0001"]
    assert (await client.delete("/api/v1/speakers/spk-0001", headers=as_("vy"))).status_code == 403
    assert (await client.delete("/api/v1/speakers/spk-0001", headers=as_("an"))).status_code == 200
    assert (await client.get("/api/v1/speakers/spk-0001", headers=as_("an"))).status_code == 404


async def test_healthz_reports_store(api):
    client, _ = api
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json()["store"] == "ok"


async def test_user_creation_audited_once_and_refusals_name_the_zone(api):
    client, as_ = api
    adds = await audit(client, as_, action="user.add")
    assert sorted(e["target"] for e in adds) == ["an", "root", "vy"]  # one entry per user
    assert {e["actor"] for e in adds if e["target"] == "an"} == {"root"}
    r = await client.post("/api/v1/users", json={"name": "ba", "role": "viewer"}, headers=as_("an"))
    assert r.status_code == 403 and "only admins" in r.json()["error"]
    r = await client.post("/api/v1/zones/import", headers=as_("an"), json={
        "format": "yaml", "text": f"- {{path: {COMMUNE_A}/ap-2, name: Ấp 2}}\n"
                                  f"- {{path: {COMMUNE_B}/ap-2, name: Ấp 2}}\n"})
    assert r.status_code == 403 and f"in zone {COMMUNE_B}:" in r.json()["error"]
    r = await client.get("/api/v1/zones", params={"under": COMMUNE_A}, headers=as_("an"))
    assert r.json()["count"] == 1  # the allowed line was not written either
    denied = await audit(client, as_, actor="an", outcome="denied")
    assert [(e["action"], e["zone"]) for e in denied] == [("zone.import", COMMUNE_B), ("user.add", None)]
    # an operator reads the audit of their own zones and actions only
    r = await client.get("/api/v1/audit", headers=as_("an"))
    assert r.status_code == 200 and {e["actor"] for e in r.json()["items"]} == {"an"}


async def test_one_session_per_request(api):
    """Auth, reads and the write share the request's one session: one connection at a time,
    one transaction for a write and its 'ok' entry; a refusal's entry in a second one."""
    from sqlalchemy import event

    client, as_ = api
    log, held = [], [0, 0]  # now, max

    def checkout(*_):
        log.append("checkout")
        held[0] += 1
        held[1] = max(held)

    def checkin(*_):
        held[0] -= 1

    event.listen(client.engine.sync_engine, "checkout", checkout)
    event.listen(client.engine.sync_engine, "checkin", checkin)
    calls = [("post", "/api/v1/aps", ap_body("ap-a9", COMMUNE_A), "an", 201, 1),
             ("post", "/api/v1/aps", ap_body("ap-b9", COMMUNE_B), "an", 403, 2),
             ("get", "/api/v1/aps", None, "an", 200, 1),
             ("delete", "/api/v1/aps/ap-a9", None, "an", 200, 1),
             ("delete", "/api/v1/aps/ap-a9", None, "forged", 401, 2)]
    for method, url, body, who, status, transactions in calls:
        log.clear()
        held[1] = 0
        kw = {"json": body} if body else {}
        headers = {"Authorization": "Bearer nmt_forged"} if who == "forged" else as_(who)
        r = await getattr(client, method)(url, headers=headers, **kw)
        assert r.status_code == status, r.text
        assert len(log) == transactions, f"{method} {url} as {who}: {len(log)} connection checkouts"
        assert held[1] == 1, f"{method} {url} as {who}: {held[1]} connections held at once"


async def test_the_official_directory_creates_and_codes_zones_all_or_nothing(api):
    """POST /zones/directory (issue 16): refused to an operator (a province is outside any commune),
    a dry run changes nothing, the import creates the province and its communes with codes and
    kinds, a second import changes nothing, the .xlsx export gives the same."""
    import base64
    import io

    import openpyxl

    client, as_ = api
    # Đồng Nai (75) after 1 July 2025; the 5-digit codes are made up for the test.
    text = ("Tỉnh Thành Phố,Mã TP,Phường Xã,Mã PX,Cấp\n"
            "Tỉnh Đồng Nai,75,Phường Bình Phước,90001,Phường\n"
            "Tỉnh Đồng Nai,75,Xã Đăk Ơ,90004,Xã\n")
    body = {"format": "csv", "data": text}
    r = await client.post("/api/v1/zones/directory", json=body, headers=as_("an"))
    assert r.status_code == 403, r.text
    [denied] = [e for e in await audit(client, as_, actor="an") if e["action"] == "zone.directory"]
    assert denied["outcome"] == "denied"
    r = await client.post("/api/v1/zones/directory", json=body | {"dry_run": True}, headers=as_("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["dry_run"] is True and r.json()["counts"] == {"create": 3, "set_code": 0, "differs": 0,
                                                                  "unchanged": 0}
    assert (await client.get("/api/v1/zones", params={"q": "75"}, headers=as_("admin"))).json()["items"] == []
    r = await client.post("/api/v1/zones/directory", json=body, headers=as_("admin"))
    assert r.status_code == 200 and r.json()["counts"]["create"] == 3, r.text
    [province] = (await client.get("/api/v1/zones", params={"q": "75"}, headers=as_("vy"))).json()["items"]
    assert (province["path"], province["kind"], province["name"]) == ("dong-nai", "tinh", "Đồng Nai")
    ward = (await client.get("/api/v1/zones/dong-nai/binh-phuoc", headers=as_("vy"))).json()
    assert (ward["kind"], ward["kind_name"], ward["code"], ward["name"]) == ("phuong", "Phường", "90001",
                                                                             "Bình Phước")
    found = (await client.get("/api/v1/zones", params={"q": "dak o"}, headers=as_("vy"))).json()["items"]
    assert [z["path"] for z in found] == ["dong-nai/dak-o"]  # by name, without diacritics
    wb = openpyxl.Workbook()
    for line in text.splitlines():
        wb.active.append(line.split(","))
    buf = io.BytesIO()
    wb.save(buf)
    r = await client.post("/api/v1/zones/directory", headers=as_("admin"), json={
        "format": "xlsx", "data": base64.b64encode(buf.getvalue()).decode()})
    assert r.status_code == 200 and r.json()["counts"] == {"create": 0, "set_code": 0, "differs": 0,
                                                           "unchanged": 3}, r.text
    r = await client.post("/api/v1/zones/directory", headers=as_("admin"), json={"format": "xlsx", "data": "%%"})
    assert r.status_code == 422 and "base64" in r.json()["error"]
    # A unit whose code a zone holds under another name is reported and left as it is (a rename
    # keeps history); the rest of the file is applied.
    r = await client.post("/api/v1/zones/directory", headers=as_("admin"), json={"format": "csv", "data": (
        text + "Tỉnh Đồng Nai,75,Xã Phú Lý,90011,Xã\n").replace("Xã Đăk Ơ,90004", "Xã Đắk Ơ,90004")})
    assert r.status_code == 200, r.text
    assert [(c["action"], c["path"]) for c in r.json()["changes"]] == [
        ("differs", "dong-nai/dak-o"), ("create", "dong-nai/phu-ly")]
    assert (await client.get("/api/v1/zones/dong-nai/dak-o", headers=as_("vy"))).json()["name"] == "Đăk Ơ"


async def test_a_renamed_commune_keeps_its_old_name_for_the_days_before(api):
    """PATCH /zones/{path} (issue 16): a xã that became a phường on 1 July 2025 under a new name
    keeps its path, scopes and speakers; GET shows the name it had until then, and a report of
    a day before shows the old name, one after the new. Refusals: out of scope (audited), a kind
    out of place, a code another zone has, a time in the future, nothing to change."""
    from datetime import UTC, datetime

    from netmgr.store.models import OccurrenceRow, ProgramRow

    client, as_ = api
    july = "2025-07-01T00:00:00+07:00"
    sessions = db.sessionmaker(client.engine)
    async with sessions() as s:
        prog = ProgramRow(title="Bản tin sáng", zone=COMMUNE_A, priority="normal", data={}, created_by="root")
        s.add(prog)
        await s.flush()
        # 30 June and 2 July 2025 at 06:00 in Asia/Ho_Chi_Minh (23:00 UTC the day before).
        for oid, start in (("occ-30", datetime(2025, 6, 29, 23, tzinfo=UTC)),
                           ("occ-2", datetime(2025, 7, 1, 23, tzinfo=UTC))):
            s.add(OccurrenceRow(id=oid, program_id=prog.id, start=start, end=start, state="sent", targets=1))
        await s.commit()
    r = await client.patch(f"/api/v1/zones/{COMMUNE_B}", json={"name": "X"}, headers=as_("an"))
    assert r.status_code == 403
    assert [e["outcome"] for e in await audit(client, as_, actor="an") if e["action"] == "zone.rename"] == ["denied"]
    for body, status, message in [
        ({"name": "Bình Phước", "kind": "tinh"}, 422, "a province (Tỉnh) cannot be under a district"),
        ({"name": "Bình Phước", "code": "689"}, 422, "has 5 digits"),
        ({"name": "Bình Phước", "effective": "2999-01-01T00:00:00+07:00"}, 422, "must be in the past"),
        ({"name": "Tân Phú"}, 422, "nothing to change"),
    ]:
        r = await client.patch(f"/api/v1/zones/{COMMUNE_A}", json=body, headers=as_("admin"))
        assert r.status_code == status and message in r.json()["error"], (body, r.text)
    r = await client.patch(f"/api/v1/zones/{COMMUNE_A}", headers=as_("admin"), json={
        "name": "Bình Phước", "kind": "phuong", "code": "90001", "effective": july, "dry_run": True})
    assert r.status_code == 200 and r.json()["after"]["name"] == "Bình Phước", r.text
    assert (await client.get(f"/api/v1/zones/{COMMUNE_A}", headers=as_("vy"))).json()["name"] == "Tân Phú"
    r = await client.patch(f"/api/v1/zones/{COMMUNE_A}", headers=as_("an"), json={
        "name": "Bình Phước", "kind": "phuong", "code": "90001", "effective": july})
    assert r.status_code == 403  # a commune belongs to its parent: the operator cannot rename it
    r = await client.patch(f"/api/v1/zones/{COMMUNE_A}", headers=as_("admin"), json={
        "name": "Bình Phước", "kind": "phuong", "code": "90001", "effective": july})
    assert r.status_code == 200, r.text
    z = (await client.get(f"/api/v1/zones/{COMMUNE_A}", headers=as_("vy"))).json()
    assert (z["name"], z["kind"], z["code"]) == ("Bình Phước", "phuong", "90001")
    assert [(h["name"], h["kind"], h["valid_until"][:19]) for h in z["history"]] == [
        ("Tân Phú", "xa", "2025-06-30T17:00:00")]
    r = await client.get("/api/v1/reports", params={"from": "2025-06-29", "to": "2025-07-03"},
                         headers=as_("an"))  # the operator's scope did not move
    assert r.status_code == 200, r.text
    assert [(i["id"], i["zone"], i["zone_name"]) for i in r.json()["items"]] == [
        ("occ-30", COMMUNE_A, "Tân Phú"), ("occ-2", COMMUNE_A, "Bình Phước")]
    r = await client.patch(f"/api/v1/zones/{COMMUNE_B}", json={"name": "Tiến Thành", "code": "90001",
                                                               "kind": "phuong"}, headers=as_("admin"))
    assert r.status_code == 409 and f"already the code of {COMMUNE_A}" in r.json()["error"]
    r = await client.patch(f"/api/v1/zones/{COMMUNE_A}", headers=as_("admin"), json={
        "name": "Bình Phước 2", "effective": "2025-06-01T00:00:00+07:00"})
    assert r.status_code == 422 and "after the last rename" in r.json()["error"]
