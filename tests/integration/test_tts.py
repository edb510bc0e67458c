"""Offline Vietnamese text-to-speech with the real espeak-ng (Debian package, scripts/setup)."""

from __future__ import annotations

import asyncio
import os
import unicodedata

import pytest

from netmgr.errors import UsageError
from netmgr.media import tts
from netmgr.media.store import MediaStore

ALERT = "Thông báo khẩn: bão số 9 sắp đổ bộ, đề nghị bà con di chuyển đến nơi an toàn."


@pytest.fixture
def store(tmp_path) -> MediaStore:
    return MediaStore(tmp_path / "media")


def leftovers(store: MediaStore) -> list[str]:
    return [p.name for p in store.root.rglob(".tmp-*")] if store.root.exists() else []


async def test_vietnamese_alert_is_spoken_once_then_cached(store):
    runs = tts.stats["runs"]
    m = await tts.synthesize(store, ALERT, created_by="an")
    assert tts.stats["runs"] == runs + 1
    assert (m.kind, m.format, m.voice, m.text, m.created_by) == ("tts", "wav", "vi", ALERT, "an")
    assert m.duration_s > 2.0, m.duration_s  # ~5 s of speech for 17 words
    assert m.sample_rate == 22050 and m.size > 2 * 22050 * 2
    assert m.title == ALERT[:59].rstrip() + "…"
    assert store.path(m).read_bytes()[:4] == b"RIFF" and store.get(m.id) == m
    assert tts.cached(store, ALERT) == m
    assert (store.root / "tts" / tts.cache_key(ALERT, "vi")).read_text() == m.id

    # The same words typed another way (decomposed accents, blanks around): the cache answers.
    decomposed = " " + unicodedata.normalize("NFD", ALERT) + "\n"
    assert decomposed.strip() != ALERT
    again = await tts.synthesize(store, decomposed, created_by="vy", title="other title")
    assert again == m and tts.stats["runs"] == runs + 1
    assert [x.id for x in store.list()] == [m.id]

    # Another voice is another recording.
    south = await tts.synthesize(store, ALERT, "vi-vn-x-south")
    assert south.id != m.id and south.voice == "vi-vn-x-south" and tts.stats["runs"] == runs + 2
    assert leftovers(store) == []


async def test_a_removed_recording_is_spoken_again(store):
    m = await tts.synthesize(store, "Xin chào bà con")
    store.remove(m.id)
    assert tts.cached(store, "Xin chào bà con") is None
    runs = tts.stats["runs"]
    again = await tts.synthesize(store, "Xin chào bà con")
    assert tts.stats["runs"] == runs + 1 and again.id == m.id and store.get(m.id) is not None


async def test_text_limits(store):
    runs = tts.stats["runs"]
    with pytest.raises(UsageError) as ei:
        await tts.synthesize(store, "a" * 5001)
    assert str(ei.value) == ("text to speak has 5,001 characters; the limit is 5,000: shorten it or split it "
                             "into several broadcasts")
    for blank in ["", "   \n\t "]:
        with pytest.raises(UsageError, match="text to speak is empty"):
            await tts.synthesize(store, blank)
    assert tts.stats["runs"] == runs and not store.root.exists()  # nothing ran, nothing written
    # 5,000 characters are allowed (after NFC: "ệ" typed as 3 code points counts once).
    text = ("Bà con chú ý " + unicodedata.normalize("NFD", "hệ ") * 1600)
    assert len(text) > 5000 and len(unicodedata.normalize("NFC", text).strip()) <= 5000
    long = await tts.synthesize(store, text)
    assert long.duration_s > 60


async def test_bad_voices_are_refused(store):
    runs = tts.stats["runs"]
    with pytest.raises(UsageError, match=r"^voice '--help': not an espeak-ng voice name"):
        await tts.synthesize(store, "Xin chào", "--help")
    assert tts.stats["runs"] == runs
    with pytest.raises(UsageError, match=r"^voice 'zz-nowhere': espeak-ng has no such voice"):
        await tts.synthesize(store, "Xin chào", "zz-nowhere")
    assert store.list() == [] and leftovers(store) == []


async def test_timeout_kills_espeak_and_stores_nothing(store):
    with pytest.raises(tts.TtsError) as ei:
        await tts.synthesize(store, "Xin chào " * 500, timeout=1e-6)
    assert "espeak-ng did not finish speaking 4,499 characters within 1e-06 s ([media] tts_timeout)" in str(ei.value)
    assert store.list() == [] and leftovers(store) == []


async def test_missing_espeak_says_how_to_install(store, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(tts.TtsError, match=r"apt install espeak-ng$"):
        await tts.synthesize(store, "Xin chào")


async def test_the_loop_keeps_running_while_espeak_speaks(store):
    """espeak-ng runs as a subprocess the loop does not wait on: this coroutine sees it running."""
    import psutil

    me = psutil.Process()
    seen_running = 0
    task = asyncio.create_task(tts.synthesize(store, "Bà con chú ý lắng nghe. " * 200))
    while not task.done():
        for child in me.children():
            try:
                seen_running += child.name() == "espeak-ng"
            except psutil.NoSuchProcess:
                pass
        await asyncio.sleep(0)
    m = task.result()
    assert m.duration_s > 30
    assert seen_running > 0, "espeak-ng was never seen running from the event loop"
    assert os.path.getsize(store.path(m)) == m.size
