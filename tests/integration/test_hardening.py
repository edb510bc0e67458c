"""The hostile run of issue 12, item by item, each written from the refused side: the request
is refused with the right status, nothing changes in the store, the refusal is audited."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from support.apistack import COMMUNE_A, COMMUNE_B, ApiStack, api_stack
from support.radio_stack import running_radio
from support.waiting import until

from netmgr.errors import UsageError
from netmgr.radio.mqtt import Broker
from netmgr.store.models import Command, ProgramRow, Speaker

NODE_A, NODE_B = "loa-tan-phu-03", "loa-tien-thanh-01"


@pytest.fixture
async def api(tmp_path):
    async with api_stack(tmp_path) as st:
        for nid, zone in ((NODE_A, COMMUNE_A), (NODE_B, COMMUNE_B)):
            r = await st.call("POST", "/api/v1/speakers", json={"id": nid, "zone": zone, "name": "Cụm loa 1",
                                                                 "lat": 11.5, "lon": 106.9})
            assert r.status_code == 201, r.text
        yield st


async def denied(st: ApiStack, actor: str, action: str) -> list[dict]:
    return [e for e in await st.audit(actor=actor, outcome="denied") if e["action"].startswith(action)]


# --------------------------------------------------------------------------- item 1


def radio(mosquitto, inventory):
    return running_radio(Broker(port=mosquitto.port, protocol="3.1.1"), inventory, "hardening")


@pytest.mark.parametrize("zone", [COMMUNE_A + "/#", COMMUNE_A + "/+", "\x00", "../../x", COMMUNE_A + "/",
                                  "binh-phuoc//tan-phu", "a/b/c/d/e/f/g/h/i"])
async def test_command_zones_are_validated_at_the_edge(api, mosquitto, zone):
    async with radio(mosquitto, {NODE_A: COMMUNE_A}) as svc:
        api.app.state.services["radio"] = svc
        r = await api.call("POST", "/api/v1/commands", "an", json={
            "method": "ping", "ttl_s": 900, "zones": [zone], "nodes": [NODE_A]})
        assert r.status_code == 422, r.text
        assert "body.zones.0" in r.json()["error"]
        assert not svc.tracker.commands
        r = await api.call("POST", "/api/v1/commands", "an", json={"method": "ping", "nodes": [zone]})
        assert r.status_code == 422 and "body.nodes.0" in r.json()["error"]
        # The service itself refuses it too (the scheduler and the CLI call it directly).
        with pytest.raises(UsageError):
            await svc.issue("ping", zones=[zone], nodes=[NODE_A])
        assert not svc.tracker.commands
        r = await api.call("POST", "/api/v1/commands", "an", json={"method": "ping", "zones": [COMMUNE_A]})
        assert r.status_code == 201, r.text
        assert len(svc.tracker.commands) == 1


async def test_an_unpublishable_stored_command_fails_alone(mosquitto):
    """A command the client refuses at resend (e.g. stored by an older version) is dropped with an
    error on its deliveries; the connection and the other commands carry on."""
    async with radio(mosquitto, {NODE_A: COMMUNE_A}) as svc:
        good = await svc.issue("ping", nodes=[NODE_A], ttl=600)
        bad = await svc.issue("ping", zones=[COMMUNE_A], ttl=600)
        bad.zones = [COMMUNE_A + "/#"]  # as if it had been stored before the edge checked it
        await svc.outbound.publish_queued()
        assert all(d.state == "error" and "could not be published" in d.error for d in bad.deliveries.values())
        assert good.deliveries[NODE_A].state in ("sent", "offline")
        assert svc.connected.is_set()


# --------------------------------------------------------------------------- item 2


async def test_speaker_import_cannot_move_another_communes_speaker(api):
    text = f"id,name,zone\n{NODE_B},hijack,{COMMUNE_A}\n"
    r = await api.call("POST", "/api/v1/speakers/import", "an", json={"format": "csv", "text": text})
    assert r.status_code == 403, r.text
    assert COMMUNE_B in r.json()["error"]
    sp = (await api.call("GET", f"/api/v1/speakers/{NODE_B}")).json()
    assert (sp["zone"], sp["name"], sp["lat"], sp["lon"]) == (COMMUNE_B, "Cụm loa 1", 11.5, 106.9)
    [entry] = await denied(api, "an", "speaker.import")
    assert entry["zone"] == COMMUNE_B
    # Inside its own commune the import updates, and keeps the columns the file does not have.
    r = await api.call("POST", "/api/v1/speakers/import", "an", json={
        "format": "csv", "text": f"id,name,zone\n{NODE_A},Cụm loa chợ,{COMMUNE_A}\n"})
    assert r.status_code == 200 and r.json() == {"created": 0, "updated": 1}
    sp = (await api.call("GET", f"/api/v1/speakers/{NODE_A}")).json()
    assert (sp["name"], sp["lat"], sp["lon"]) == ("Cụm loa chợ", 11.5, 106.9)


# --------------------------------------------------------------------------- item 3


async def test_refused_broadcast_synthesises_nothing(api):
    media = api.settings.daemon.state_dir / "media"
    r = await api.call("POST", "/api/v1/broadcast/now", "vy", json={
        "zones": [COMMUNE_A], "text": "Thông báo thử nghiệm"})
    assert r.status_code == 403, r.text
    r = await api.call("POST", "/api/v1/broadcast/now", "binh", json={
        "zones": [COMMUNE_A], "text": "Thông báo thử nghiệm"})
    assert r.status_code == 403, r.text
    assert not media.exists() or not any(media.glob("*.json"))
    assert len(await denied(api, "vy", "program.add")) == 1
    [entry] = await denied(api, "binh", "program.add")
    assert entry["zone"] == COMMUNE_A
    # the same request, allowed: spoken, stored, and its duration taken from the audio
    r = await api.call("POST", "/api/v1/broadcast/now", "an", json={
        "zones": [COMMUNE_A], "text": "Thông báo thử nghiệm"})
    assert r.status_code == 201, r.text
    assert len(list(media.glob("*.json"))) == 1
    assert 1 <= r.json()["duration_s"] < 30


# --------------------------------------------------------------------------- item 4


@pytest.mark.parametrize("path", ["/api/v1/zones/import", "/api/v1/speakers/import", "/api/v1/aps/import"])
async def test_imports_authorize_before_parsing(api, path):
    # A file that does not parse: authorizing first, the viewer hears 403, not what is wrong with it.
    r = await api.call("POST", path, "vy", json={"format": "yaml", "text": "- [unclosed\n" * 1000})
    assert r.status_code == 403, r.text
    assert len(await denied(api, "vy", path.split("/")[3].rstrip("s") + ".import")) == 1


async def test_request_bodies_are_capped_with_the_right_limit(tmp_path):
    async with api_stack(tmp_path, settings={"api": {"max_body_mb": 1}, "media": {"max_mb": 1}}) as st:
        big = "x" * (2 * 1024 * 1024)
        r = await st.call("POST", "/api/v1/zones/import", json={"format": "csv", "text": big})
        assert r.status_code == 413 and "1 MB limit ([api] max_body_mb)" in r.json()["error"], r.text

        async def chunks(n: int, size: int = 256 * 1024):
            for _ in range(n):
                yield b"x" * size

        r = await st.call("POST", "/api/v1/zones/import", content=chunks(8),
                          headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "1 MB limit" in r.json()["error"], r.text
        # A chunked media upload far over its limit is told the limit, not a size it never counted.
        r = await st.call("POST", "/api/v1/media", "an", params={"filename": "big.mp3"},
                          content=chunks(400), headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 413, r.text
        assert "more than 1 MB is over the 1 MB limit" in r.json()["error"]


# --------------------------------------------------------------------------- item 5


async def test_integers_and_dates_are_bounded(api):
    for method, path in [("GET", "/api/v1/programs/9223372036854775808"),
                         ("DELETE", "/api/v1/programs/99999999999999999999999"),
                         ("GET", "/api/v1/programs/0")]:
        r = await api.call(method, path)
        assert r.status_code == 422 and "path.program_id" in r.json()["error"], (path, r.text)
    r = await api.call("GET", "/api/v1/programs/9223372036854775807")
    assert r.status_code == 404
    r = await api.call("POST", "/api/v1/programs", json={
        "title": "Bản tin", "content": {"kind": "url", "url": "http://127.0.0.1/a.mp3"},
        "targets": {"zones": [COMMUNE_A]}, "when": {"kind": "once", "start": "9999-12-31T23:59:59Z"},
        "duration": "10m"})
    assert r.status_code == 422 and "when" in r.json()["error"], r.text
    async with api.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(ProgramRow)) == 0


# --------------------------------------------------------------------------- item 6


@pytest.mark.parametrize("bad", ["Tân\x00Phú", "Tân Phú\x07", "\x1b[31mTân Phú", "Tân \u202ePhú",
                                 "\x1b]0;pwned\x07", "Tân\x9bPhú"])
async def test_control_characters_are_refused_in_names(api, bad):
    r = await api.call("POST", "/api/v1/zones", json={"path": COMMUNE_A + "/ap-9", "name": bad})
    assert r.status_code == 422 and "control character" in r.json()["error"], r.text
    r = await api.call("POST", "/api/v1/speakers", json={"id": "loa-x", "zone": COMMUNE_A, "name": bad})
    assert r.status_code == 422 and "control character" in r.json()["error"], r.text
    r = await api.call("POST", "/api/v1/speakers/import", json={
        "format": "yaml", "text": f"- {{id: loa-y, zone: {COMMUNE_A}, name: \"{bad.encode('unicode_escape').decode()}\"}}\n"})
    assert r.status_code == 422 and "control character" in r.text, r.text
    r = await api.call("POST", "/api/v1/zones/import", json={
        "format": "csv", "text": f"path,name\n{COMMUNE_A}/ap-8,{bad}\n"})
    assert r.status_code == 422 and "control character" in r.text, r.text
    async with api.sessions() as s:
        assert await s.get(Speaker, "loa-x") is None and await s.get(Speaker, "loa-y") is None


# --------------------------------------------------------------------------- item 8


async def test_writes_without_a_token_are_audited(api):
    r = await api.client.post("/api/v1/zones", json={"path": "x", "name": "X"})
    assert r.status_code == 401
    entries = await api.audit(outcome="denied", actor="(anonymous)")
    assert [e["detail"] for e in entries] == ["missing bearer token"]
    assert entries[0]["action"] == "POST /api/v1/zones" and entries[0]["remote"] == "10.9.8.7"


async def test_node_commands_and_programs_carry_their_commune(api, mosquitto):
    async with radio(mosquitto, {NODE_A: COMMUNE_A, NODE_B: COMMUNE_B}) as svc:
        api.app.state.services["radio"] = svc
        r = await api.call("POST", "/api/v1/commands", json={"method": "ping", "nodes": [NODE_A]})
        assert r.status_code == 201, r.text
    r = await api.call("POST", "/api/v1/programs", json={
        "title": "Bản tin", "content": {"kind": "url", "url": "http://127.0.0.1/a.mp3"},
        "targets": {"speakers": [NODE_A]}, "when": {"kind": "daily", "at": "06:00"}, "duration": "10m"})
    assert r.status_code == 201, r.text
    seen = {e["action"]: e["zone"] for e in await api.audit(actor="root", outcome="ok")}
    assert seen["speaker.ping"] == COMMUNE_A and seen["program.add"] == COMMUNE_A
    # ... so the commune's operator sees them, and the other commune's does not.
    r = await api.call("GET", "/api/v1/audit", "an")
    assert {"speaker.ping", "program.add"} <= {e["action"] for e in r.json()["items"]}
    r = await api.call("GET", "/api/v1/audit", "binh")
    assert not {"speaker.ping", "program.add"} & {e["action"] for e in r.json()["items"]}


async def test_viewers_do_not_read_the_administration_of_users(api):
    r = await api.call("GET", "/api/v1/audit", "vy")
    actions = {e["action"] for e in r.json()["items"]}
    assert "speaker.add" in actions and not any(a.startswith("user.") for a in actions)
    r = await api.call("GET", "/api/v1/audit", "admin")
    assert "user.add" in {e["action"] for e in r.json()["items"]}


# --------------------------------------------------------------------------- item 9


async def test_programs_must_reference_media_that_exists(api):
    missing = "ab" * 32
    r = await api.call("POST", "/api/v1/programs", json={
        "title": "Bản tin", "content": {"kind": "media", "media_id": missing},
        "targets": {"zones": [COMMUNE_A]}, "when": {"kind": "daily", "at": "06:00"}, "duration": "10m"})
    assert r.status_code == 409 and f"media {missing} does not exist" in r.json()["error"], r.text
    r = await api.call("POST", "/api/v1/broadcast/now", json={"zones": [COMMUNE_A], "media_id": missing})
    assert r.status_code == 409 and "does not exist" in r.json()["error"], r.text
    async with api.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(ProgramRow)) == 0


async def test_media_in_use_by_a_program_is_kept_and_its_users_named(api):
    r = await api.call("POST", "/api/v1/media/tts", "an", json={"text": "Bản tin sáng", "title": "sáng"})
    assert r.status_code == 201, r.text
    media_id = r.json()["id"]
    r = await api.call("POST", "/api/v1/programs", "an", json={
        "title": "Bản tin sáng", "content": {"kind": "media", "media_id": media_id},
        "targets": {"zones": [COMMUNE_A]}, "when": {"kind": "daily", "at": "06:00"}, "duration": "10m"})
    assert r.status_code == 201, r.text
    program = r.json()["id"]
    r = await api.call("DELETE", f"/api/v1/media/{media_id}", "an")
    assert r.status_code == 409, r.text
    assert f"program {program}" in r.json()["error"] and "an" in r.json()["error"]
    assert (await api.call("GET", f"/api/v1/media/{media_id}")).status_code == 200
    assert (await api.call("DELETE", f"/api/v1/programs/{program}", "an")).status_code == 200
    assert (await api.call("DELETE", f"/api/v1/media/{media_id}", "an")).status_code == 200


# --------------------------------------------------------------------------- item 10


async def test_emergency_cancel_needs_the_emergency_permission(api):
    r = await api.call("POST", "/api/v1/programs", json={
        "title": "Cảnh báo lũ", "content": {"kind": "url", "url": "http://127.0.0.1/a.mp3"},
        "targets": {"zones": [COMMUNE_A]}, "when": {"kind": "daily", "at": "06:00"}, "duration": "10m",
        "priority": "emergency"})
    assert r.status_code == 201, r.text
    program = r.json()["id"]
    r = await api.call("DELETE", f"/api/v1/programs/{program}", "an")
    assert r.status_code == 403 and "emergency" in r.json()["error"], r.text
    [entry] = await denied(api, "an", "program.cancel")
    assert entry["zone"] == COMMUNE_A
    assert (await api.call("GET", f"/api/v1/programs/{program}")).json()["cancelled_at"] is None
    r = await api.call("DELETE", f"/api/v1/programs/{program}", "em")
    assert r.status_code == 200, r.text
    assert [e["outcome"] for e in await api.audit(actor="em", action="program.cancel")] == ["ok"]


# --------------------------------------------------------------------------- item 14


async def test_store_outage_is_503_with_retry_after(tmp_path, postgres):
    url = postgres.fresh_database().replace("postgresql://", "postgresql+asyncpg://")
    async with api_stack(tmp_path, url=url) as st:
        assert (await st.call("GET", "/api/v1/zones")).status_code == 200
        postgres.stop()
        try:
            for method, path, body in [("GET", "/api/v1/zones", None),
                                       ("POST", "/api/v1/zones", {"path": "x", "name": "X"})]:
                r = await st.call(method, path, json=body)
                assert r.status_code == 503, r.text
                assert r.headers["retry-after"] == "5" and "state store is unreachable" in r.json()["error"]
            r = await st.client.get("/healthz")
            assert r.status_code == 503 and r.json()["store"].startswith("error")
        finally:
            postgres.start()
        assert (await st.call("GET", "/api/v1/zones")).status_code == 200


# --------------------------------------------------------------------------- item 11


async def test_an_implausible_session_cannot_lock_a_node_out(api, mosquitto):
    import json
    import time

    import aiomqtt

    async with radio(mosquitto, {NODE_A: COMMUNE_A}) as svc:
        api.app.state.services["radio"] = svc
        topic = f"netmgr/v1/node/{NODE_A}/status"
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="attacker") as c:
            await c.publish(topic, json.dumps({"state": "offline", "session": 9007199254740992}),
                            qos=1, retain=True)
            await until(lambda: svc.bad.counts["bad_status"] == 1, 10, "the bogus session counted")
            assert svc.registry.node(NODE_A).session == -1
            real = int(time.time() * 1000)
            await c.publish(topic, json.dumps({"state": "online", "session": real}), qos=1, retain=True)
            await until(lambda: svc.registry.is_online(NODE_A), 10, "the node online with its real session")

            # A flash wipe: the node's counter restarts lower, and is ignored ...
            await c.publish(topic, json.dumps({"state": "offline", "session": real}), qos=1, retain=True)
            await until(lambda: not svc.registry.is_online(NODE_A), 10, "the node offline")
            await c.publish(topic, json.dumps({"state": "online", "session": 5}), qos=1, retain=True)
            await until(lambda: svc.stats["stale_status"] >= 1, 10, "the lower session ignored")
            assert not svc.registry.is_online(NODE_A)
            # ... until its operator resets it (another commune's may not).
            r = await api.call("POST", f"/api/v1/speakers/{NODE_A}/reset-session", "binh")
            assert r.status_code == 403
            assert svc.registry.node(NODE_A).session == real
            r = await api.call("POST", f"/api/v1/speakers/{NODE_A}/reset-session", "an")
            assert r.status_code == 200 and r.json()["forgotten_session"] == real, r.text
            await c.publish(topic, json.dumps({"state": "online", "session": 6}), qos=1, retain=True)
            await until(lambda: svc.registry.is_online(NODE_A), 10, "the wiped node online again")
            await c.publish(topic, b"", qos=1, retain=True)  # clear the retained status
    outcomes = {(e["actor"], e["outcome"]) for e in await api.audit(action="speaker.reset-session")}
    assert outcomes == {("binh", "denied"), ("an", "ok")}


# --------------------------------------------------------------------------- reads


async def test_operators_read_only_their_zones(api, mosquitto):
    for name, zone in (("ap-a", COMMUNE_A), ("ap-b", COMMUNE_B)):
        r = await api.call("POST", "/api/v1/aps", json={"name": name, "host": "192.0.2.1", "zone": zone})
        assert r.status_code == 201, r.text
    progs = {}
    for key, targets in (("a", {"zones": [COMMUNE_A]}), ("b", {"speakers": [NODE_B]}),
                         ("province", {"zones": ["binh-phuoc"]})):
        r = await api.call("POST", "/api/v1/programs", json={
            "title": f"Bản tin {key}", "content": {"kind": "url", "url": "http://127.0.0.1/a.mp3"},
            "targets": targets, "when": {"kind": "daily", "at": "06:00"}, "duration": "10m", "force": True})
        assert r.status_code == 201, r.text
        progs[key] = r.json()["id"]
    async with radio(mosquitto, {NODE_A: COMMUNE_A, NODE_B: COMMUNE_B}) as svc:
        api.app.state.services["radio"] = svc
        cmds = {}
        for key, body in (("a", {"nodes": [NODE_A]}), ("b", {"nodes": [NODE_B]}),
                          ("district", {"zones": ["binh-phuoc/dong-xoai"]})):
            r = await api.call("POST", "/api/v1/commands", json={"method": "ping", **body})
            assert r.status_code == 201, r.text
            cmds[key] = r.json()["id"]

        async def get(path, who="an", **params):
            return await api.call("GET", path, who, params=params)

        def ids(r, key="id"):
            assert r.status_code == 200, r.text
            return {i[key] for i in r.json()["items"]}

        assert ids(await get("/api/v1/speakers")) == {NODE_A}
        assert ids(await get("/api/v1/speakers-status")) == {NODE_A}
        assert ids(await get("/api/v1/speakers", zone="binh-phuoc")) == {NODE_A}
        assert ids(await get("/api/v1/aps"), "name") == {"ap-a"}
        assert ids(await get("/api/v1/programs")) == {progs["a"], progs["province"]}
        async with api.sessions() as s:  # as the daemon's radio flush would store them
            for tc in svc.tracker.commands.values():
                s.add(Command(id=tc.cmd.id, method=tc.cmd.method, params=tc.cmd.params,
                              priority=tc.cmd.priority, issued=datetime.fromtimestamp(tc.cmd.issued, UTC),
                              expires=datetime.fromtimestamp(tc.cmd.expires, UTC),
                              targets={"nodes": tc.nodes, "zones": tc.zones}, issued_by="root"))
            await s.commit()
        assert ids(await get("/api/v1/commands")) == {cmds["a"], cmds["district"]}
        district = (await get(f"/api/v1/commands/{cmds['district']}")).json()
        assert {d["node"] for d in district["deliveries"]} == {NODE_A}  # not tien-thanh's node
        for path in (f"/api/v1/speakers/{NODE_B}", f"/api/v1/speakers/{NODE_B}/status",
                     f"/api/v1/speakers/{NODE_B}/history", "/api/v1/aps/ap-b", "/api/v1/aps/ap-b/history",
                     f"/api/v1/programs/{progs['b']}", f"/api/v1/commands/{cmds['b']}"):
            r = await get(path)
            assert r.status_code == 404, (path, r.text)
            assert (await get(path, "vy")).status_code == 200, path  # the NOC reads everything
        assert (await get("/api/v1/plan", zone=COMMUNE_B)).status_code == 403
        assert (await get("/api/v1/plan", zone=COMMUNE_A)).status_code == 200
        report = await get("/api/v1/reports", **{"from": "today", "to": "today"})
        assert report.status_code == 200
        assert {i["program"] for i in report.json()["items"]} <= {progs["a"], progs["province"]}
        ics = (await get("/api/v1/programs.ics")).text
        assert "Bản tin a" in ics and "Bản tin b" not in ics
        # viewers and admins: everything
        assert ids(await get("/api/v1/speakers", "vy")) == {NODE_A, NODE_B}
        assert ids(await get("/api/v1/programs", "admin")) == set(progs.values())
        assert ids(await get("/api/v1/commands", "vy")) == set(cmds.values())


# --------------------------------------------------------------------------- item 13


async def test_only_the_daemon_can_use_its_client_ids(tmp_path, mosquitto_factory):
    """A node's identity connecting with the daemon's client id takes the daemon's persistent
    session on a plain broker (shown first, so the test can fail); with the rendered files and
    use_username_as_clientid (docs/operations.md) every client id is its user name, and the
    daemon keeps its session."""
    import json
    import time

    import aiomqtt

    from netmgr.radio.acl import mosquitto_hash, new_password, render_acl, render_passwd

    daemon_pass, node_pw = new_password(), new_password()
    (tmp_path / "passwd").write_text(render_passwd("netmgr", daemon_pass, {"loa-1": mosquitto_hash(node_pw)}))
    (tmp_path / "acl").write_text(render_acl("netmgr", {"loa-1": COMMUNE_A}))
    for protected in (False, True):
        m = mosquitto_factory(passwd_file=tmp_path / "passwd", acl_file=tmp_path / "acl",
                              conf_text_extra="use_username_as_clientid true" if protected else "")
        broker = Broker(port=m.port, username="netmgr", password=daemon_pass, protocol="3.1.1",
                        inbound_username="netmgr-in" if protected else None)
        try:
            async with running_radio(broker, {"loa-1": COMMUNE_A}, "netmgr") as svc:
                with contextlib.suppress(aiomqtt.MqttError):
                    async with aiomqtt.Client("127.0.0.1", m.port, username="loa-1", password=node_pw,
                                              identifier="netmgr-in", clean_session=False) as attacker:
                        if not protected:
                            await until(lambda svc=svc: svc.health()["connects"] >= 2, 15,
                                        "the daemon's session taken over")
                            continue
                        await attacker.publish("netmgr/v1/node/loa-1/status", json.dumps(
                            {"state": "online", "session": int(time.time() * 1000)}), qos=1)
                        await until(lambda svc=svc: svc.registry.is_online("loa-1"), 10,
                                    "the node's status through the daemon's own session")
                        assert svc.health()["connects"] == 1
        finally:
            m.stop()
