"""Property-based fuzzing of the API from its own /openapi.json (schemathesis), against a real
uvicorn over SQLite with zones, a speaker, an AP and a program in place: no 5xx, every status
and body as documented, and the API still healthy at the end.

Bounded: ``EXAMPLES`` generated requests per operation, as the admin (authorization is the
matrix's business: tests/integration/test_authz_matrix.py).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from support.apistack import COMMUNE_A, ZONES_YAML, ApiThread
from support.services import free_port

from netmgr.auth import create_user
from netmgr.config import load_settings
from netmgr.store import db

EXAMPLES = 20
# What JSON Schema cannot say, so a schema-valid request may still be refused (422) for it: a
# file's contents, time (a once in the future, a rule with an occurrence), audio that must probe.
# Each operation's reasons, by the error they produce; any other 422 to a schema-valid request
# fails schemathesis' "valid data should have been accepted" check. A reference to a zone,
# speaker or media that does not exist is a 409 (netmgr.errors.MissingReference), not a 422.
SEMANTIC: dict[str, list[tuple[str, str]]] = {
    "POST /api/v1/programs": [
        ("times: a once in the future, an RRULE that parses and has an occurrence, until after start",
         r"^program refused:(\n  (when|duration(_s)?)\b[^\n]*)+$"),
    ],
    "POST /api/v1/broadcast/now": [
        ("a duration within 24 h (30h parses, as a schema pattern cannot bound a sum)",
         r"^program refused:(\n  duration(_s)?\b[^\n]*)+$"),
    ],
    "POST /api/v1/media": [("the body must be audio that netmgr.media.probe reads",
                            r"(use MP3, Ogg, Opus, FLAC, M4A or WAV|cannot be read|no sound in it|"
                            r"longer than 24 h|cut short)")],
    "POST /api/v1/zones": [("a kind fits its parent's (devices/zones/kinds.yaml), a code has its kind's "
                            "digits, the depth is within [zones] max_depth",
                            r"^body: (a [^\n]+ (must be under|cannot be under|has no official code)|"
                            r"code '[0-9]+': the official code|nothing goes under|zone \S+ is \d+ levels deep)")],
    "PATCH /api/v1/zones/{path}": [("the new kind fits the parent and the children, the code has its kind's "
                                    "digits, the time is past and after the last rename, something changes",
                                    r"^body(\.effective)?: ")],
    "POST /api/v1/zones/import": [("the file must parse, parents first", r"^zone import: refused")],
    "POST /api/v1/zones/directory": [("the file must be the directory's export (an .xlsx in base64)",
                                      r"^(directory import: refused|body\.data: an \.xlsx file is sent in base64)")],
    "POST /api/v1/aps": [("an SNMPv3 key of 8 code points two of which are the halves of one character: "
                          "JSON joins a surrogate pair, and the key the API reads has 7 (RFC 3414 wants 8)",
                          r"SNMPv3 keys must be at least 8 characters \(RFC 3414\)$")],
    "POST /api/v1/aps/import": [("the file must parse, in existing zones", r"^ap import: refused")],
    "POST /api/v1/speakers/import": [("the file must parse, in existing zones", r"^speaker import: refused")],
    "GET /api/v1/reports": [("to is not before from", r"^--to is before --from$")],
}


@schemathesis.check
def valid_data_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' positive_data_acceptance, but a 422 for one of the operation's SEMANTIC
    reasons (and only those) is the API working."""
    rules = SEMANTIC.get(case.operation.label, ())
    if response.status_code == 422 and rules:
        try:
            error = response.json().get("error") or ""
        except ValueError:
            error = ""
        if any(re.search(rx, error) for _, rx in rules):
            return None
    return positive_data_acceptance(ctx, response, case)


@pytest.fixture(scope="module")
def live(tmp_path_factory, mosquitto):
    tmp = tmp_path_factory.mktemp("fuzz")
    cfg = tmp / "netmgr.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{tmp / "state"}"\n[media]\nmax_mb = 1\n[api]\nmax_body_mb = 1\n',
                   encoding="utf-8")
    conf, _ = load_settings(str(cfg), environ={})

    async def admin_token() -> str:
        engine = db.create_engine(conf.database_url)
        await db.upgrade(engine)
        async with db.sessionmaker(engine)() as s:
            _, token = await create_user(s, "fuzz", "admin", [], actor="local:test")
            await s.commit()
        await engine.dispose()
        return token

    token = asyncio.run(admin_token())
    def radio() -> dict:
        from netmgr.radio.mqtt import Broker
        from netmgr.radio.service import RadioService

        return {"radio": RadioService.standalone(Broker(port=mosquitto.port, protocol="3.1.1"),
                                                 {"loa-1": COMMUNE_A}, client_id="fuzz")}

    api = ApiThread(conf, free_port(), services=radio)
    api.start()
    url = f"http://127.0.0.1:{api.port}"
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        assert http.post("/api/v1/zones/import", json={"format": "yaml", "text": ZONES_YAML}).status_code == 200
        assert http.post("/api/v1/speakers", json={"id": "loa-1", "zone": COMMUNE_A}).status_code == 201
        assert http.post("/api/v1/aps", json={"name": "ap-1", "host": "192.0.2.1", "zone": COMMUNE_A}).status_code == 201
        r = http.post("/api/v1/programs", json={
            "title": "Bản tin", "content": {"kind": "url", "url": "http://127.0.0.1/a.mp3"},
            "targets": {"zones": [COMMUNE_A]}, "when": {"kind": "daily", "at": "06:00"}, "duration": "10m"})
        assert r.status_code == 201, r.text
    try:
        yield {"url": url, "headers": headers, "api": api}
    finally:
        api.stop()


def _operations() -> dict[str, Any]:
    """The operations of the app's own OpenAPI document, by label (GET /api/v1/zones, ...)."""
    from netmgr.api.app import create_app
    from netmgr.config import Settings

    doc = create_app(Settings(), None, lambda: {}).openapi()
    return {op.label: op for op in (r.ok() for r in schemathesis.openapi.from_dict(doc).get_all_operations())}


OPERATIONS = _operations()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_api_fuzz(label, mode, live):
    # Driven through hypothesis directly: schemathesis' pytest plugin does not load on this pytest.
    # Positive requests follow the schema (and must be accepted); negative ones break it (and
    # must be refused with a 4xx, never a 5xx).
    @given(case=OPERATIONS[label].as_strategy(mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        case.call_and_validate(base_url=live["url"], headers=live["headers"],
                               excluded_checks=[positive_data_acceptance],
                               additional_checks=[valid_data_accepted])

    try:
        fuzz()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        pytest.skip("the schema admits every value of this operation's inputs: nothing to break")


def test_api_healthy_after_fuzzing(live):
    r = httpx.get(f"{live['url']}/healthz", timeout=10)
    assert r.status_code == 200 and r.json()["store"] == "ok", r.text
    # the seeded objects are still readable (the fuzzer created and removed things around them)
    zones = httpx.get(f"{live['url']}/api/v1/zones", headers=live["headers"], timeout=10).json()
    assert COMMUNE_A in {z["path"] for z in zones["items"]}, json.dumps(zones)[:300]


def test_undeclared_methods_are_405_with_allow(live):
    """Every path answers a method it does not declare with 405, an Allow header naming the ones it
    does, and the one error shape (schemathesis' unsupported-method check, done for every path)."""
    from starlette.routing import compile_path

    from netmgr.api.app import create_app
    from netmgr.config import Settings

    paths = create_app(Settings(), None, lambda: {}).openapi()["paths"]
    with httpx.Client(base_url=live["url"], headers=live["headers"], timeout=10) as http:
        for path, ops in paths.items():
            declared = {m.upper() for m in ops}
            concrete = path.replace("{path}", COMMUNE_A).replace("{name}", "x").replace("{node_id}", "loa-1") \
                .replace("{program_id}", "1").replace("{command_id}", "c").replace("{media_id}", "m")
            for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - declared):
                if any(compile_path(other)[0].match(concrete) and method.lower() in ops2
                       for other, ops2 in paths.items()):
                    continue  # another route serves it (GET /zones/import is the zone "import")
                r = http.request(method, concrete)
                assert r.status_code == 405, (method, path, r.status_code, r.text)
                allowed = {m.strip() for m in r.headers.get("allow", "").split(",")}
                assert declared <= allowed, (method, path, r.headers.get("allow"))
                assert set(r.json()) == {"error", "detail"}, (method, path)
