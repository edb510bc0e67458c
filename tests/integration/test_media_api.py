"""Media through a live API (uvicorn on a free port) and the real CLI: uploads by role, the public
/media/<id> that nodes fetch (no token, Range, ETag), the size cap, text-to-speech, list and rm —
and every write and refusal in the audit log."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import wave

import httpx
import pytest
from support.apistack import ApiThread
from support.services import free_port

A = "binh-phuoc/dong-xoai/tan-phu"
B = "binh-phuoc/dong-xoai/tien-thanh"
ALERT = "Thông báo khẩn: bão số 9 sắp đổ bộ, đề nghị bà con di chuyển đến nơi an toàn."
ACCEPTED = "use MP3, Ogg, Opus, FLAC, M4A or WAV"


def make_wav(seconds: float, rate: int = 8000, tone: int = 0) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes([tone, 0]) * int(seconds * rate))
    return buf.getvalue()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("media-api")
    cfg = tmp / "netmgr.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{tmp / "state"}"\n[media]\nmax_mb = 1\n', encoding="utf-8")
    from netmgr.config import load_settings

    settings, _ = load_settings(str(cfg), environ={})
    port = free_port()
    api = ApiThread(settings, port)
    api.start()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env.update(NETMGR_CONFIG=str(cfg), NETMGR_SERVER=url, XDG_CONFIG_HOME=str(tmp / "xdg"), COLUMNS="200")
    st = {"env": env, "url": url, "tmp": tmp, "media": tmp / "state" / "media", "tokens": {}}
    try:
        st["tokens"]["root"] = json.loads(cli(st, "user", "add", "root", "--role", "admin", "--json").stdout)["token"]
        zones = tmp / "zones.yaml"
        zones.write_text("- {path: binh-phuoc, name: Bình Phước}\n- {path: binh-phuoc/dong-xoai, name: Đồng Xoài}\n"
                         f"- {{path: {A}, name: Tân Phú}}\n- {{path: {B}, name: Tiến Thành}}\n", encoding="utf-8")
        cli(st, "zone", "import", str(zones), who="root")
        for name, role, zone in [("an", "operator", A), ("binh", "operator", B), ("eye", "viewer", None)]:
            args = ["user", "add", name, "--role", role, "--json"] + (["--zone", zone] if zone else [])
            st["tokens"][name] = json.loads(cli(st, *args).stdout)["token"]
        yield st
    finally:
        api.stop()


def cli(st, *args, who: str | None = None, code: int = 0) -> subprocess.CompletedProcess:
    env = dict(st["env"])
    if who:
        env["NETMGR_TOKEN"] = st["tokens"][who]
    r = subprocess.run([sys.executable, "-m", "netmgr", *args], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == code, f"netmgr {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def http(st, method: str, path: str, who: str | None = None, **kw) -> httpx.Response:
    headers = kw.pop("headers", {})
    if who:
        headers["Authorization"] = f"Bearer {st['tokens'][who]}"
    return httpx.request(method, st["url"] + path, headers=headers, timeout=30, **kw)


def audit(st, **params) -> list[dict]:
    r = http(st, "GET", "/api/v1/audit", "root", params={"action": "media", **params})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def stored(st) -> list[str]:
    return sorted(os.listdir(st["media"])) if st["media"].exists() else []


def test_upload_then_nodes_fetch_without_a_token(stack):
    data = make_wav(2.0, tone=1)
    f = stack["tmp"] / "ban-tin.wav"
    f.write_bytes(data)
    r = json.loads(cli(stack, "media", "add", str(f), "--title", "Bản tin sáng", "--json", who="an").stdout)
    mid = hashlib.sha256(data).hexdigest()
    assert (r["id"], r["new"], r["kind"], r["format"], r["duration_s"], r["size"]) == (
        mid, True, "upload", "wav", 2.0, len(data))
    assert r["title"] == "Bản tin sáng" and r["created_by"] == "an" and r["filename"] == "ban-tin.wav"
    assert r["url"] == f"{stack['url']}/media/{mid}.wav"
    again = cli(stack, "media", "add", str(f), who="an").stdout
    assert again.startswith(f"already stored: {mid[:12]}  Bản tin sáng  (WAV, 2 s,")

    for path in (f"/media/{mid}.wav", f"/media/{mid}"):
        g = http(stack, "GET", path)  # no token: nodes fetch like this
        assert g.status_code == 200 and g.content == data
        assert g.headers["content-type"] == "audio/wav"
        assert g.headers["content-length"] == str(len(data))
        assert g.headers["etag"] == f'"{mid}"'
        assert g.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert g.headers["accept-ranges"] == "bytes"
    h = http(stack, "HEAD", f"/media/{mid}.wav")
    assert h.status_code == 200 and h.headers["content-length"] == str(len(data)) and h.content == b""

    n = len(data)
    for rng, part, content_range in [("bytes=0-99", data[:100], f"bytes 0-99/{n}"),
                                     ("bytes=1000-", data[1000:], f"bytes 1000-{n - 1}/{n}"),
                                     ("bytes=-10", data[-10:], f"bytes {n - 10}-{n - 1}/{n}")]:
        g = http(stack, "GET", f"/media/{mid}.wav", headers={"Range": rng})
        assert g.status_code == 206, (rng, g.status_code)
        assert g.content == part and g.headers["content-range"] == content_range
        assert g.headers["content-length"] == str(len(part))
    g = http(stack, "GET", f"/media/{mid}.wav", headers={"Range": f"bytes={n}-"})
    assert g.status_code == 416 and g.headers["content-range"] == f"bytes */{n}"
    g = http(stack, "GET", f"/media/{mid}.wav", headers={"If-None-Match": f'"{mid}"'})
    assert g.status_code == 304 and g.content == b""

    unknown = hashlib.sha256(b"never uploaded").hexdigest()
    for path in (f"/media/{unknown}.wav", f"/media/{unknown}", f"/media/{mid}.mp3", f"/media/{mid}.exe",
                 f"/media/{mid[:63]}", f"/media/{mid.upper()}.wav", "/media/..netmgr.toml"):
        g = http(stack, "GET", path)
        assert g.status_code == 404, path
        assert g.json()["error"] == f"media {path[7:]} not found", path
    for path in ("/media/..%2F..%2Fnetmgr.toml", "/media/%2E%2E/netmgr.toml"):  # the router finds nothing
        g = http(stack, "GET", path)
        assert g.status_code == 404 and "[daemon]" not in g.text

    ok = [e for e in audit(stack, outcome="ok") if e["target"] == mid]
    assert [(e["action"], e["actor"]) for e in ok] == [("media.add", "an"), ("media.add", "an")]
    assert "title='Bản tin sáng'" in ok[-1]["detail"] and "file='ban-tin.wav'" in ok[-1]["detail"]


def test_who_may_upload_and_what(stack):
    before = stored(stack)
    wav = make_wav(1.0, tone=2)
    r = http(stack, "POST", "/api/v1/media", "eye", content=wav, params={"filename": "x.wav"})
    assert r.status_code == 403
    assert r.json()["error"] == "viewer 'eye' may not add media: only operators and admins may"
    r = http(stack, "POST", "/api/v1/media", None, content=wav)
    assert r.status_code == 401
    r = http(stack, "POST", "/api/v1/media", "an", files={"file": ("x.wav", wav)})
    assert r.status_code == 422 and "not as a form" in r.json()["error"]

    photo = stack["tmp"] / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + bytes(2000))
    out = cli(stack, "media", "add", str(photo), who="an", code=2)
    assert f"netmgr: error: photo.jpg: not audio (JPEG image); {ACCEPTED} (HTTP 422)" in out.stderr
    assert stored(stack) == before  # nothing stored, no temporary file left

    denied = audit(stack, outcome="denied", actor="eye")
    assert [(e["action"], e["target"]) for e in denied] == [("media.add", "x.wav")]
    errors = audit(stack, outcome="error", actor="an")
    assert any(e["detail"].startswith("photo.jpg: not audio (JPEG image)") for e in errors)

    r = http(stack, "POST", "/api/v1/media", "root", content=wav, params={"filename": "x.wav"},
             headers={"Content-Type": "audio/wav"})
    assert r.status_code == 201 and r.json()["created_by"] == "root" and r.json()["title"] == "x"
    r = http(stack, "POST", "/api/v1/media", "root", content=wav, params={"title": "again"})
    assert r.status_code == 200 and r.json()["new"] is False and r.json()["title"] == "x"


def test_uploads_over_the_limit_are_refused_while_reading(stack):
    before = stored(stack)
    big = make_wav(40.0, rate=16000)  # 1.2 MiB; [media] max_mb = 1
    r = http(stack, "POST", "/api/v1/media", "an", content=big, params={"filename": "long.wav"})
    assert r.status_code == 413
    assert r.json()["error"].startswith("long.wav: 1.2 MB is over the 1 MB limit ([media] max_mb)")

    def chunks():  # no Content-Length: the cap applies while reading
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]
    r = http(stack, "POST", "/api/v1/media", "an", content=chunks(), params={"filename": "stream.wav"})
    assert r.status_code == 413 and "over the 1 MB limit" in r.json()["error"]

    f = stack["tmp"] / "long.wav"
    f.write_bytes(big)
    out = cli(stack, "media", "add", str(f), who="an", code=2)  # TooLarge: exit 2, as locally
    assert "over the 1 MB limit ([media] max_mb)" in out.stderr and "(HTTP 413)" in out.stderr
    assert stored(stack) == before
    targets = {e["target"] for e in audit(stack, outcome="error", actor="an")}
    assert {"long.wav", "stream.wav"} <= targets


def test_tts_list_and_rm(stack):
    r = json.loads(cli(stack, "media", "tts", ALERT, "--title", "Cảnh báo bão", "--json", who="an").stdout)
    assert (r["kind"], r["format"], r["voice"], r["text"], r["title"]) == ("tts", "wav", "vi", ALERT,
                                                                           "Cảnh báo bão")
    assert r["duration_s"] > 2.0
    tts_id = r["id"]
    g = http(stack, "GET", f"/media/{tts_id}.wav")
    assert g.status_code == 200 and g.content[:4] == b"RIFF" and len(g.content) == r["size"]
    again = json.loads(cli(stack, "media", "tts", ALERT, "--json", who="an").stdout)
    assert again["id"] == tts_id
    out = cli(stack, "media", "tts", "a" * 5001, who="an", code=2)
    assert "text to speak has 5,001 characters; the limit is 5,000" in out.stderr
    cli(stack, "media", "tts", "Xin chào", who="eye", code=1)

    up = make_wav(1.5, tone=3)
    f = stack["tmp"] / "loa.wav"
    f.write_bytes(up)
    up_id = json.loads(cli(stack, "media", "add", str(f), "--json", who="an").stdout)["id"]

    listed = json.loads(cli(stack, "media", "list", "--json", who="eye").stdout)
    ids = [m["id"] for m in listed]
    assert tts_id in ids and up_id in ids and ids.index(up_id) < ids.index(tts_id)  # newest first
    table = cli(stack, "media", "list", who="eye").stdout
    assert tts_id[:12] in table and "Cảnh báo bão" in table and "tts" in table and "1.5 s" in table

    out = cli(stack, "media", "rm", up_id[:8], who="binh", code=1)
    assert f"operator 'binh' may not remove media {up_id[:12]} (loa): only admins and the operator " \
           "who added it (an) may (HTTP 403)" in out.stderr
    cli(stack, "media", "rm", up_id[:10], who="eye", code=1)
    cli(stack, "media", "rm", up_id[:7], who="an", code=2)
    out = cli(stack, "media", "rm", "deadbeef00", who="an", code=1)
    assert "media deadbeef00 not found" in out.stderr
    assert f"removed {up_id[:12]}  loa" in cli(stack, "media", "rm", up_id[:8], who="an").stdout
    cli(stack, "media", "rm", tts_id, who="root")
    for mid in (up_id, tts_id):
        assert http(stack, "GET", f"/media/{mid}.wav").status_code == 404
        assert not any(name.startswith(mid) for name in stored(stack))
    assert http(stack, "DELETE", f"/api/v1/media/{tts_id}", "root").status_code == 404

    removes = audit(stack, action="media.remove")
    got = {(e["actor"], e["target"], e["outcome"]) for e in removes}
    assert {("binh", up_id, "denied"), ("eye", up_id, "denied"), ("an", up_id, "ok"),
            ("root", tts_id, "ok"), ("root", tts_id, "error")} <= got
    spoken = audit(stack, action="media.tts", actor="an")
    assert {e["outcome"] for e in spoken} == {"ok", "error"}
    assert any(e["target"] == "Cảnh báo bão" and "voice=vi" in e["detail"] for e in spoken)
    assert ("eye", "denied") in {(e["actor"], e["outcome"]) for e in audit(stack, action="media.tts")}
