"""The media store on real audio: WAVs made here with the stdlib, and small files made by real
encoders (tests/data/media, see generate.py there). Everything refused leaves nothing behind."""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import wave
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netmgr.errors import Conflict, NotFound, TooLarge, UsageError
from netmgr.media.probe import ACCEPTED
from netmgr.media.store import MB, MediaStore, store_of

DATA = Path(__file__).resolve().parents[1] / "data" / "media"
FIXTURES = {  # file: (format, content type, seconds; the encoders pad a little)
    "tone.mp3": ("mp3", "audio/mpeg", 1.5),
    "tone.ogg": ("ogg", "audio/ogg", 1.5),
    "tone.opus": ("opus", "audio/ogg", 1.5),
    "tone.flac": ("flac", "audio/flac", 1.5),
    "tone.m4a": ("m4a", "audio/mp4", 1.5),
    "tone.aac": ("aac", "audio/aac", 1.5),
}


def make_wav(seconds: float, rate: int = 8000, width: int = 2, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(int(seconds * rate) * width * channels))
    return buf.getvalue()


@pytest.fixture
def store(tmp_path) -> MediaStore:
    return MediaStore(tmp_path / "media")


def files(store: MediaStore) -> list[str]:
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*")) if store.root.exists() else []


def test_wav_of_known_duration_is_stored_with_its_sidecar(store):
    data = make_wav(2.5)
    m = store.add(data, title="  Bản tin   sáng ", created_by="an", filename="ban-tin.wav")
    assert m.id == hashlib.sha256(data).hexdigest()
    assert (m.format, m.kind, m.duration_s, m.size, m.sample_rate, m.channels) == ("wav", "upload", 2.5,
                                                                                   len(data), 8000, 1)
    assert m.title == "Bản tin sáng" and m.created_by == "an" and m.filename == "ban-tin.wav"
    assert m.content_type == "audio/wav"
    assert files(store) == [f"{m.id}.json", f"{m.id}.wav"]
    assert (store.root / f"{m.id}.wav").read_bytes() == data
    side = json.loads((store.root / f"{m.id}.json").read_text(encoding="utf-8"))
    assert side["title"] == "Bản tin sáng" and side["kind"] == "upload" and side["format"] == "wav"
    assert side["duration_s"] == 2.5 and side["size"] == len(data) and side["created_by"] == "an"
    assert side["created"].endswith("+00:00") and side["text"] is None
    # A fresh store (the daemon restarted) reads the same media back from the sidecar.
    again = MediaStore(store.root)
    assert again.get(m.id) == m and again.list() == [m]


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_real_encoded_formats(store, name):
    fmt, ctype, seconds = FIXTURES[name]
    m = store.add(DATA / name, created_by="an")
    assert (m.format, m.content_type) == (fmt, ctype)
    assert seconds - 0.05 <= m.duration_s <= seconds + 0.1, m.duration_s
    assert m.title == "tone" and m.filename == name
    assert store.path(m) == store.root / f"{m.id}.{fmt}"
    assert store.path(m).read_bytes() == (DATA / name).read_bytes()
    assert (DATA / name).exists()  # copied, not moved


def test_the_extension_does_not_decide_the_format(store):
    m = store.add((DATA / "tone.ogg").read_bytes(), filename="bao-cao.mp3")
    assert m.format == "ogg" and store.path(m).suffix == ".ogg"


def test_mp3_after_an_id3_tag(store):
    tag = b"ID3\x04\x00\x00" + bytes([0, 0, 0, 20]) + b"\x00" * 20  # an empty 20-byte ID3v2.4 tag
    m = store.add(tag + (DATA / "tone.mp3").read_bytes(), filename="tagged.mp3")
    assert m.format == "mp3" and 1.4 < m.duration_s < 1.7
    with pytest.raises(UsageError) as ei:
        store.add(tag + b"no frames here" * 100, filename="broken.mp3")
    assert str(ei.value).startswith("broken.mp3: looks like MP3 but cannot be read (")


@pytest.mark.parametrize(("name", "data", "found"), [
    ("photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + bytes(500), "not audio (JPEG image)"),
    ("scan.png", b"\x89PNG\r\n\x1a\n" + bytes(100), "not audio (PNG image)"),
    ("letter.pdf", b"%PDF-1.7\n" + bytes(100), "not audio (PDF document)"),
    ("bao-cao.docx", b"PK\x03\x04" + bytes(100), "not audio (ZIP archive or office document)"),
    ("error.mp3", b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "not audio (HTML page)"),
    ("loi-chao.txt", "Xin chào bà con".encode(), "not audio (text)"),
    ("clip.mp4", None, "not audio (MP4 video)"),
    ("song.wma", b"0&\xb2u\x8ef\xcf\x11\xa6\xd9\x00\xaa\x00b\xce\x6c" + bytes(100),
     "unsupported format (Windows Media (WMA/ASF))"),
    ("song.aiff", b"FORM\x00\x00\x01\x00AIFF" + bytes(100), "unsupported audio format (AIFF)"),
    ("blob.bin", bytes(range(1, 200)), "not audio (unrecognised data, first bytes 01 02 03 04 05 06 07 08)"),
])
def test_not_audio_is_refused_naming_the_file_and_what_it_is(store, name, data, found):
    if data is None:
        data = (DATA / "video.mp4").read_bytes()
    with pytest.raises(UsageError) as ei:
        store.add(data, filename=name)
    assert str(ei.value) == f"{name}: {found}; {ACCEPTED}"
    assert files(store) == [] and store.list() == []


def test_empty_and_silent_and_too_long_audio_are_refused(store):
    with pytest.raises(UsageError, match=r"^empty.wav: empty file \(0 bytes\)"):
        store.add(b"", filename="empty.wav")
    with pytest.raises(UsageError, match=r"^nothing.wav: WAV audio with no sound in it \(duration 0 s\)"):
        store.add(make_wav(0), filename="nothing.wav")
    # One sample a second, 8 bits: 24 h and 1 s of real WAV in 86 kB.
    with pytest.raises(UsageError, match=r"^day.wav: WAV audio of 24.0 h is longer than 24 h"):
        store.add(make_wav(86401, rate=1, width=1), filename="day.wav")
    assert store.add(make_wav(86400, rate=1, width=1), filename="ok.wav").duration_s == 86400
    assert len(store.list()) == 1


def test_a_wav_cut_short_is_refused(store):
    data = make_wav(3.0)
    with pytest.raises(UsageError) as ei:
        store.add(data[: len(data) // 2], filename="cut.wav")
    assert str(ei.value) == ("cut.wav: WAV cut short: its header promises 3.0 s, the file holds 1.5 s; "
                             "upload the whole file")
    with pytest.raises(UsageError, match=r"^hdr.wav: looks like WAV but cannot be read"):
        store.add(data[:30], filename="hdr.wav")
    assert files(store) == []


def test_oversize_is_refused_before_anything_is_read_or_written(tmp_path):
    store = MediaStore(tmp_path / "media", max_bytes=1 * MB)
    data = make_wav(70, rate=8000)  # 1.07 MiB
    with pytest.raises(TooLarge) as ei:
        store.add(data, filename="long.wav")
    assert str(ei.value).startswith("long.wav: 1.1 MB is over the 1 MB limit ([media] max_mb); compress it")
    src = tmp_path / "long.wav"
    src.write_bytes(data)
    with pytest.raises(TooLarge):
        store.add(src)
    assert files(store) == []
    assert store.add(make_wav(60)).duration_s == 60  # under the limit


def test_store_of_follows_the_config(tmp_path):
    from netmgr.config import load_settings

    cfg = tmp_path / "netmgr.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{tmp_path}"\n[media]\nmax_mb = 3\ntts_voice = "vi-vn-x-south"\n',
                   encoding="utf-8")
    s, _ = load_settings(cfg, environ={})
    st_ = store_of(s)
    assert st_.root == tmp_path / "media" and st_.max_bytes == 3 * MB and st_.tts_voice == "vi-vn-x-south"
    assert store_of(s) is st_  # one store (one lock) per directory


def test_same_bytes_give_the_same_media(store):
    data = make_wav(1.0)
    first, new = store.put(data, title="Lần đầu", created_by="an")
    again, new2 = store.put(data, title="Lần hai", created_by="vy")
    assert (new, new2) == (True, False)
    assert again == first and again.title == "Lần đầu"  # the stored media is returned unchanged
    assert len(files(store)) == 2 and len(store.list()) == 1


def test_refused_adds_leave_no_temporary_files(store, tmp_path):
    store.add(make_wav(1.0))
    before = files(store)
    for data, name in [(b"\xff\xd8\xff" + bytes(100), "x.jpg"), (make_wav(2)[:100], "cut.wav"),
                       ((DATA / "tone.flac").read_bytes()[:60], "cut.flac")]:
        with pytest.raises(UsageError):
            store.add(data, filename=name)
    src = tmp_path / "upload.tmp"
    src.write_bytes(b"not audio at all")
    with pytest.raises(UsageError):
        store.add(src, move=True, filename="x.txt")
    assert files(store) == before
    assert not any(n.startswith(".tmp-") for n in os.listdir(store.root))


def test_move_renames_the_callers_file_into_the_store(store):
    path, f = store.temp_file()
    with f:
        f.write(make_wav(1.0))
    m = store.add(path, move=True, filename="phat-thanh.wav")
    assert not path.exists() and store.path(m).exists()
    assert m.title == "phat-thanh"
    assert files(store) == [f"{m.id}.json", f"{m.id}.wav"]


def test_crash_leftovers_are_cleaned_or_ignored(store):
    store.root.mkdir(parents=True)
    old = store.root / ".tmp-0123456789abcdef"
    old.write_bytes(b"half an upload")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    recent = store.root / ".tmp-fedcba9876543210"  # an upload in progress: left alone
    recent.write_bytes(b"part")
    data = make_wav(1.0)
    orphan = store.root / f"{hashlib.sha256(data).hexdigest()}.wav"  # died before its sidecar
    orphan.write_bytes(data[:50])
    fresh = MediaStore(store.root)
    assert not old.exists() and recent.exists()
    assert fresh.list() == [] and fresh.get(orphan.stem) is None
    m = fresh.add(data)
    assert fresh.path(m) == orphan and orphan.read_bytes() == data


def test_get_validates_ids(store):
    m = store.add(make_wav(1.0))
    assert store.get(m.id) == m
    for bad in ["../../etc/passwd", m.id.upper(), m.id[:63], m.id + "0", "", m.id + ".wav"]:
        assert store.get(bad) is None


def test_list_is_newest_first(store):
    a = store.add(make_wav(1.0), title="a")
    b = store.add(make_wav(2.0), title="b")
    side = store.root / f"{a.id}.json"
    d = json.loads(side.read_text())
    d["created"] = "2020-01-01T00:00:00+00:00"
    side.write_text(json.dumps(d))
    assert [m.title for m in MediaStore(store.root).list()] == ["b", "a"]
    assert b.id != a.id


def test_remove_refuses_media_in_use(store):
    m = store.add(make_wav(1.0), title="Bản tin")
    with pytest.raises(Conflict) as ei:
        store.remove(m.id, in_use=lambda i: "program 7 (Bản tin sáng)" if i == m.id else False)
    assert str(ei.value) == (f"media {m.id[:12]} (Bản tin) is still used by program 7 (Bản tin sáng); "
                             "cancel the broadcasts that play it first")
    with pytest.raises(Conflict, match="is still used; cancel"):
        store.remove(m.id, in_use=lambda _: True)
    assert store.get(m.id) == m
    assert store.remove(m.id) == m
    assert files(store) == [] and store.get(m.id) is None
    with pytest.raises(NotFound, match=f"media {m.id} not found"):
        store.remove(m.id)
    assert store.add(make_wav(1.0)).id == m.id  # and it can come back


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from([*sorted(FIXTURES), "wav"]), cut=st.integers(0, 20000),
       flips=st.lists(st.tuples(st.integers(0, 20000), st.integers(0, 255)), max_size=8))
def test_damaged_files_are_refused_cleanly(tmp_path_factory, name, cut, flips):
    """Whatever the bytes, only a UsageError escapes, and a stored result is sane."""
    data = bytearray(make_wav(1.0) if name == "wav" else (DATA / name).read_bytes())
    for pos, value in flips:
        data[pos % len(data)] = value
    data = bytes(data[: max(1, len(data) - cut)])
    store = MediaStore(tmp_path_factory.mktemp("fuzz"))
    try:
        m = store.add(data, filename="x")
    except UsageError as e:
        assert str(e).startswith("x: ")
        assert files(store) == []
    else:
        assert 0 < m.duration_s <= 86400 and 0 < m.sample_rate <= 768_000
        assert store.path(m).read_bytes() == data
