"""The authorization matrix (issue 12): every operation of /openapi.json x every kind of caller.

Callers: no token, a disabled user, a viewer, an operator of the target's commune, an operator
of another commune, an operator without the emergency permission, an admin. Every operation is
in MATRIX with its rule; an operation the app serves without an entry fails the test, so a new
route cannot ship without saying who may call it. For every refused write: an audit entry, and
no change in the store or the media folder.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import wave
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select
from support.apistack import COMMUNE_A, ApiStack, api_stack
from support.radio_stack import running_radio

from netmgr.radio.mqtt import Broker
from netmgr.store.models import AuditEntry, Base

pytestmark = pytest.mark.asyncio(loop_scope="module")  # one store and broker link for the module
A_AP, NODE_A = "ap-a", "loa-tan-phu-03"
_n = itertools.count(1)

# What a rule means: the status class for (no token, disabled, viewer, operator of A, operator of
# B, admin, operator of A with the emergency permission). "ok" is any 2xx.
RULES: dict[str, dict[str, int | str]] = {
    "public":    {"none": "ok", "old": "ok", "vy": "ok", "an": "ok", "binh": "ok", "admin": "ok", "em": "ok"},
    "read":      {"none": 401, "old": 401, "vy": "ok", "an": "ok", "binh": "ok", "admin": "ok", "em": "ok"},
    # a single zoned object: another commune's operator is told it does not exist
    "read-zone": {"none": 401, "old": 401, "vy": "ok", "an": "ok", "binh": 404, "admin": "ok", "em": "ok"},
    "plan":      {"none": 401, "old": 401, "vy": "ok", "an": "ok", "binh": 403, "admin": "ok", "em": "ok"},
    "write":     {"none": 401, "old": 401, "vy": 403, "an": "ok", "binh": 403, "admin": "ok", "em": "ok"},
    "emergency": {"none": 401, "old": 401, "vy": 403, "an": 403, "binh": 403, "admin": "ok", "em": "ok"},
    "writer":    {"none": 401, "old": 401, "vy": 403, "an": "ok", "binh": "ok", "admin": "ok", "em": "ok"},
    "owner":     {"none": 401, "old": 401, "vy": 403, "an": "ok", "binh": 403, "admin": "ok", "em": 403},
    "admin":     {"none": 401, "old": 401, "vy": 403, "an": 403, "binh": 403, "admin": "ok", "em": 403},
}
Request = tuple[str, str, dict[str, Any]]
Factory = Callable[[ApiStack], Awaitable[Request]]


def wav(tone: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes([tone % 256, tone // 256 % 256]) * 4000)
    return buf.getvalue()


async def admin(st: ApiStack, method: str, path: str, who: str = "admin", **kw: Any) -> dict[str, Any]:
    r = await st.call(method, path, who, **kw)
    assert r.status_code < 300, (method, path, r.text)
    return r.json()


def program(priority: str = "normal") -> dict[str, Any]:
    return {"title": f"Bản tin {next(_n)}", "content": {"kind": "url", "url": "http://127.0.0.1/a.mp3"},
            "targets": {"zones": [COMMUNE_A]}, "when": {"kind": "daily", "at": "06:00"}, "duration": "10m",
            "priority": priority, "force": True}


async def new_speaker(st: ApiStack) -> str:
    nid = f"loa-m-{next(_n)}"
    await admin(st, "POST", "/api/v1/speakers", json={"id": nid, "zone": COMMUNE_A})
    return nid


async def new_media(st: ApiStack) -> str:
    # added by `an`, so "owner" means: admins and an
    return (await admin(st, "POST", "/api/v1/media", "an", params={"filename": "m.wav"}, content=wav(next(_n)),
                        headers={"Content-Type": "application/octet-stream"}))["id"]


def fixed(method: str, path: str, **kw: Any) -> Factory:
    async def make(_: ApiStack) -> Request:
        return method, path, kw
    return make


def fresh(method: str, build: Callable[[ApiStack], Awaitable[tuple[str, dict[str, Any]]]]) -> Factory:
    async def make(st: ApiStack) -> Request:
        path, kw = await build(st)
        return method, path, kw
    return make


async def _zone(_: ApiStack) -> tuple[str, dict[str, Any]]:
    return "/api/v1/zones", {"json": {"path": f"{COMMUNE_A}/ap-{next(_n)}", "name": "Ấp mới"}}


async def _zone_import(_: ApiStack) -> tuple[str, dict[str, Any]]:
    return "/api/v1/zones/import", {"json": {"format": "csv", "text": f"path,name\n{COMMUNE_A}/ap-{next(_n)},Ấp\n"}}


async def _zone_rename(st: ApiStack) -> tuple[str, dict[str, Any]]:
    n = next(_n)  # a village of the operator's commune, renamed: its parent is in the operator's zones
    path = (await admin(st, "POST", "/api/v1/zones", json={"path": f"{COMMUNE_A}/ap-{n}", "name": f"Ấp {n}"}))["path"]
    return f"/api/v1/zones/{path}", {"json": {"name": f"Ấp {n} mới"}}


async def _directory(_: ApiStack) -> tuple[str, dict[str, Any]]:
    n = next(_n)  # a new commune each time; its code is made up
    return "/api/v1/zones/directory", {"json": {"format": "csv", "data": (
        f"Tỉnh Thành Phố,Mã TP,Phường Xã,Mã PX,Cấp\nTỉnh Đồng Nai,75,Xã Thử {n},{90000 + n},Xã\n")}}


async def _user(_: ApiStack) -> tuple[str, dict[str, Any]]:
    return "/api/v1/users", {"json": {"name": f"u{next(_n)}", "role": "viewer"}}


async def _disable(st: ApiStack) -> tuple[str, dict[str, Any]]:
    name = f"u{next(_n)}"
    await admin(st, "POST", "/api/v1/users", json={"name": name, "role": "viewer"})
    return f"/api/v1/users/{name}/disable", {}


async def _ap(_: ApiStack) -> tuple[str, dict[str, Any]]:
    return "/api/v1/aps", {"json": {"name": f"ap-m-{next(_n)}", "host": "192.0.2.9", "zone": COMMUNE_A}}


async def _ap_delete(st: ApiStack) -> tuple[str, dict[str, Any]]:
    name = f"ap-m-{next(_n)}"
    await admin(st, "POST", "/api/v1/aps", json={"name": name, "host": "192.0.2.9", "zone": COMMUNE_A})
    return f"/api/v1/aps/{name}", {}


async def _ap_import(_: ApiStack) -> tuple[str, dict[str, Any]]:
    return "/api/v1/aps/import", {"json": {"format": "csv", "text": f"name,host,zone\nap-m-{next(_n)},192.0.2.9,{COMMUNE_A}\n"}}


async def _speaker(_: ApiStack) -> tuple[str, dict[str, Any]]:
    return "/api/v1/speakers", {"json": {"id": f"loa-m-{next(_n)}", "zone": COMMUNE_A}}


async def _speaker_delete(st: ApiStack) -> tuple[str, dict[str, Any]]:
    return f"/api/v1/speakers/{await new_speaker(st)}", {}


async def _speaker_import(_: ApiStack) -> tuple[str, dict[str, Any]]:
    return "/api/v1/speakers/import", {"json": {"format": "csv", "text": f"id,zone\nloa-m-{next(_n)},{COMMUNE_A}\n"}}


async def _program(_: ApiStack) -> tuple[str, dict[str, Any]]:
    return "/api/v1/programs", {"json": program()}


async def _program_emergency(_: ApiStack) -> tuple[str, dict[str, Any]]:
    return "/api/v1/programs", {"json": program("emergency")}


async def _cancel(st: ApiStack) -> tuple[str, dict[str, Any]]:
    return f"/api/v1/programs/{(await admin(st, 'POST', '/api/v1/programs', json=program()))['id']}", {}


async def _cancel_emergency(st: ApiStack) -> tuple[str, dict[str, Any]]:
    pid = (await admin(st, "POST", "/api/v1/programs", json=program("emergency")))["id"]
    return f"/api/v1/programs/{pid}", {}


async def _now(_: ApiStack) -> tuple[str, dict[str, Any]]:
    return "/api/v1/broadcast/now", {"json": {"zones": [COMMUNE_A], "url": "http://127.0.0.1/a.mp3",
                                              "duration": "5s", "title": f"Loa {next(_n)}"}}


async def _now_emergency(_: ApiStack) -> tuple[str, dict[str, Any]]:
    return "/api/v1/broadcast/now", {"json": {"zones": [COMMUNE_A], "url": "http://127.0.0.1/a.mp3",
                                              "duration": "5s", "emergency": True, "title": f"Lũ {next(_n)}"}}


async def _media_upload(_: ApiStack) -> tuple[str, dict[str, Any]]:
    return "/api/v1/media", {"params": {"filename": "x.wav"}, "content": wav(next(_n)),
                             "headers": {"Content-Type": "application/octet-stream"}}


async def _media_delete(st: ApiStack) -> tuple[str, dict[str, Any]]:
    return f"/api/v1/media/{await new_media(st)}", {}


async def _tts(_: ApiStack) -> tuple[str, dict[str, Any]]:
    return "/api/v1/media/tts", {"json": {"text": f"Thông báo số {next(_n)}"}}


# (method, OpenAPI path) -> [(rule, request factory), ...]: one or more cases per operation.
MATRIX: dict[tuple[str, str], list[tuple[str, Factory]]] = {
    ("GET", "/healthz"): [("public", fixed("GET", "/healthz"))],
    ("GET", "/api/v1/zones"): [("read", fixed("GET", "/api/v1/zones"))],
    ("POST", "/api/v1/zones"): [("write", fresh("POST", _zone))],
    ("GET", "/api/v1/zones/{path}"): [("read", fixed("GET", f"/api/v1/zones/{COMMUNE_A}"))],
    ("POST", "/api/v1/zones/import"): [("write", fresh("POST", _zone_import))],
    ("POST", "/api/v1/zones/directory"): [("admin", fresh("POST", _directory))],
    ("PATCH", "/api/v1/zones/{path}"): [("write", fresh("PATCH", _zone_rename))],
    ("GET", "/api/v1/users"): [("admin", fixed("GET", "/api/v1/users"))],
    ("POST", "/api/v1/users"): [("admin", fresh("POST", _user))],
    ("GET", "/api/v1/whoami"): [("read", fixed("GET", "/api/v1/whoami"))],
    ("GET", "/api/v1/info"): [("read", fixed("GET", "/api/v1/info"))],
    ("POST", "/api/v1/users/{name}/disable"): [("admin", fresh("POST", _disable))],
    ("GET", "/api/v1/audit"): [("read", fixed("GET", "/api/v1/audit"))],
    ("GET", "/api/v1/aps"): [("read", fixed("GET", "/api/v1/aps"))],
    ("POST", "/api/v1/aps"): [("write", fresh("POST", _ap))],
    ("GET", "/api/v1/aps/{name}"): [("read-zone", fixed("GET", f"/api/v1/aps/{A_AP}"))],
    ("DELETE", "/api/v1/aps/{name}"): [("write", fresh("DELETE", _ap_delete))],
    ("POST", "/api/v1/aps/import"): [("write", fresh("POST", _ap_import))],
    ("GET", "/api/v1/speakers"): [("read", fixed("GET", "/api/v1/speakers"))],
    ("POST", "/api/v1/speakers"): [("write", fresh("POST", _speaker))],
    ("GET", "/api/v1/speakers/{node_id}"): [("read-zone", fixed("GET", f"/api/v1/speakers/{NODE_A}"))],
    ("DELETE", "/api/v1/speakers/{node_id}"): [("write", fresh("DELETE", _speaker_delete))],
    ("POST", "/api/v1/speakers/import"): [("write", fresh("POST", _speaker_import))],
    ("GET", "/api/v1/speakers-status"): [("read", fixed("GET", "/api/v1/speakers-status"))],
    ("GET", "/api/v1/speakers/{node_id}/status"): [
        ("read-zone", fixed("GET", f"/api/v1/speakers/{NODE_A}/status"))],
    ("GET", "/api/v1/commands"): [("read", fixed("GET", "/api/v1/commands"))],
    ("POST", "/api/v1/commands"): [
        ("write", fixed("POST", "/api/v1/commands", json={"method": "ping", "nodes": [NODE_A]})),
        ("emergency", fixed("POST", "/api/v1/commands", json={"method": "ping", "nodes": [NODE_A],
                                                               "priority": "emergency"}))],
    ("GET", "/api/v1/commands/{command_id}"): [("read-zone", fresh("GET", lambda st: _command(st)))],
    ("POST", "/api/v1/speakers/{node_id}/credentials"): [
        ("write", fixed("POST", f"/api/v1/speakers/{NODE_A}/credentials"))],
    ("POST", "/api/v1/speakers/{node_id}/reset-session"): [
        ("write", fixed("POST", f"/api/v1/speakers/{NODE_A}/reset-session"))],
    ("GET", "/api/v1/mqtt/render"): [("admin", fixed("GET", "/api/v1/mqtt/render"))],
    ("GET", "/api/v1/programs"): [("read", fixed("GET", "/api/v1/programs"))],
    ("POST", "/api/v1/programs"): [("write", fresh("POST", _program)),
                                   ("emergency", fresh("POST", _program_emergency))],
    ("GET", "/api/v1/programs/{program_id}"): [("read-zone", fresh("GET", _cancel))],
    ("DELETE", "/api/v1/programs/{program_id}"): [("write", fresh("DELETE", _cancel)),
                                                   ("emergency", fresh("DELETE", _cancel_emergency))],
    ("GET", "/api/v1/plan"): [("plan", fixed("GET", "/api/v1/plan", params={"zone": COMMUNE_A}))],
    ("POST", "/api/v1/broadcast/now"): [("write", fresh("POST", _now)), ("emergency", fresh("POST", _now_emergency))],
    ("GET", "/api/v1/reports"): [("read", fixed("GET", "/api/v1/reports", params={"from": "today", "to": "today"}))],
    ("GET", "/api/v1/programs.ics"): [("read", fixed("GET", "/api/v1/programs.ics"))],
    ("GET", "/api/v1/aps/{name}/history"): [("read-zone", fixed("GET", f"/api/v1/aps/{A_AP}/history"))],
    ("GET", "/api/v1/speakers/{node_id}/history"): [
        ("read-zone", fixed("GET", f"/api/v1/speakers/{NODE_A}/history"))],
    ("GET", "/media/{name}"): [("public", fresh("GET", lambda st: _media_path(st, "/media/")))],
    ("GET", "/api/v1/media"): [("read", fixed("GET", "/api/v1/media"))],
    ("POST", "/api/v1/media"): [("writer", fresh("POST", _media_upload))],
    ("GET", "/api/v1/media/{media_id}"): [("read", fresh("GET", lambda st: _media_path(st, "/api/v1/media/")))],
    ("DELETE", "/api/v1/media/{media_id}"): [("owner", fresh("DELETE", _media_delete))],
    ("POST", "/api/v1/media/tts"): [("writer", fresh("POST", _tts))],
}


async def _command(st: ApiStack) -> tuple[str, dict[str, Any]]:
    return f"/api/v1/commands/{(await admin(st, 'POST', '/api/v1/commands', json={'method': 'ping', 'nodes': [NODE_A]}))['id']}", {}


async def _media_path(st: ApiStack, prefix: str) -> tuple[str, dict[str, Any]]:
    return prefix + await new_media(st), {}


async def snapshot(st: ApiStack) -> str:
    """A digest of every table but the audit log, and of the media folder."""
    h = hashlib.sha256()
    async with st.sessions() as s:
        for table in Base.metadata.sorted_tables:
            if table.name == AuditEntry.__tablename__:
                continue
            rows = (await s.execute(select(table))).all()
            h.update(repr(sorted(repr(tuple(r)) for r in rows)).encode())
    media = st.settings.daemon.state_dir / "media"
    if media.exists():
        h.update(repr(sorted(p.name for p in media.iterdir())).encode())
    return h.hexdigest()


async def denied_count(st: ApiStack) -> int:
    async with st.sessions() as s:
        return len((await s.scalars(select(AuditEntry.id).where(AuditEntry.outcome == "denied"))).all())


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def matrix_stack(tmp_path_factory, mosquitto):
    tmp = tmp_path_factory.mktemp("authz")
    broker = Broker(port=mosquitto.port, protocol="3.1.1")
    async with api_stack(tmp) as st, running_radio(broker, {NODE_A: COMMUNE_A}, "authz") as svc:
        st.app.state.services["radio"] = svc
        await admin(st, "POST", "/api/v1/speakers", json={"id": NODE_A, "zone": COMMUNE_A})
        await admin(st, "POST", "/api/v1/aps", json={"name": A_AP, "host": "192.0.2.1", "zone": COMMUNE_A})
        svc.registry.set_inventory({NODE_A: COMMUNE_A})
        yield st


async def test_every_operation_has_a_rule(matrix_stack):
    served = {(m.upper(), path) for path, ops in matrix_stack.app.openapi()["paths"].items() for m in ops}
    missing = sorted(served - set(MATRIX))
    assert not missing, f"operations without an entry in the authorization MATRIX: {missing}"
    assert not sorted(set(MATRIX) - served), "MATRIX entries for operations the app no longer serves"


@pytest.mark.parametrize("key", sorted(MATRIX), ids=lambda k: f"{k[0]} {k[1]}")
async def test_authorization(matrix_stack, key):
    st = matrix_stack
    for rule, make in MATRIX[key]:
        expected = RULES[rule]
        refused_first = sorted(expected, key=lambda who: expected[who] == "ok")  # refusals see a clean store
        for who in refused_first:
            method, path, kw = await make(st)
            want = expected[who]
            write = method not in ("GET", "HEAD")
            before, denied_before = (await snapshot(st), await denied_count(st)) if write and want != "ok" else (None, 0)
            r = await st.call(method, path, None if who == "none" else who, **kw)
            where = f"{rule}: {who} {method} {path}"
            if want == "ok":
                assert 200 <= r.status_code < 300, f"{where}: {r.status_code} {r.text}"
                continue
            assert r.status_code == want, f"{where}: expected {want}, got {r.status_code} {r.text}"
            assert set(r.json()) == {"error", "detail"}, where
            if write and want in (401, 403):
                assert await snapshot(st) == before, f"{where}: the store changed"
                assert await denied_count(st) > denied_before, f"{where}: the refusal is not audited"
            if write and want == 404:
                assert await snapshot(st) == before, f"{where}: the store changed"
