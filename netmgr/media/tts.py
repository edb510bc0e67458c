"""Offline text-to-speech: espeak-ng (Debian package ``espeak-ng``) speaks the text
into a WAV file that goes into the media store as kind ``tts``.

The same (voice, NFC-normalised text) is spoken once: a small cache under the
store (``tts/<sha256 of voice and text>`` holding the media id) answers later
requests without running espeak-ng. espeak-ng runs as an asyncio subprocess with
the text on its stdin (never on the command line), so the event loop keeps
serving while it speaks and no text can pass for an option.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import shutil
from typing import Any

from netmgr.config import VOICE_NAME
from netmgr.errors import TtsError, UsageError
from netmgr.media.store import TMP_PREFIX, Media, MediaStore
from netmgr.text import spoken_text

log = logging.getLogger(__name__)

# Calls of espeak-ng by this process, and answers from the cache (health, tests).
stats: dict[str, int] = {"runs": 0, "cached": 0}


def normalize(text: str) -> str:
    """The text as it is spoken and cached: NFC, without surrounding blanks; refused (BadValue)
    if empty, too long or holding control characters (netmgr.text.spoken_text)."""
    return spoken_text(text)


def cache_key(text: str, voice: str) -> str:
    """The cache key of a normalised text spoken by ``voice``."""
    return hashlib.sha256(f"{voice}\n{text}".encode()).hexdigest()


def cached(store: MediaStore, text: str, voice: str | None = None) -> Media | None:
    """The media already spoken for this text and voice, or None."""
    voice = voice or store.tts_voice
    entry = store.root / "tts" / cache_key(normalize(text), voice)
    try:
        media_id = entry.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return store.get(media_id)  # None when the media was removed since


async def synthesize(store: MediaStore, text: str, voice: str | None = None, *, created_by: str = "",
                     title: str = "", timeout: float | None = None) -> Media:
    """Speak ``text`` (at most 5,000 characters) with espeak-ng into the store; cached by text and voice.

    ``voice`` and ``timeout`` default to the store's ([media] tts_voice and tts_timeout).
    Raises UsageError for bad text or voice, TtsError when espeak-ng is missing,
    fails or times out; nothing is stored then.
    """
    text = normalize(text)
    voice = voice or store.tts_voice
    if not VOICE_NAME.match(voice):
        raise UsageError(f"voice {voice!r}: not an espeak-ng voice name; use vi, vi-vn-x-central or "
                         "vi-vn-x-south")
    hit = await asyncio.to_thread(cached, store, text, voice)
    if hit is not None:
        stats["cached"] += 1
        return hit
    timeout = timeout or store.tts_timeout
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise TtsError("text-to-speech needs espeak-ng, which is not installed where the daemon runs: "
                       "apt install espeak-ng")
    store.root.mkdir(parents=True, exist_ok=True, mode=0o750)
    work = store.root / f"{TMP_PREFIX}tts-{secrets.token_hex(8)}"
    work.mkdir()
    try:
        out = work / "speech.wav"
        await _run(exe, voice, text, out, timeout)
        label = f"the speech of {len(text):,} characters"
        media, _ = await asyncio.to_thread(
            store.put, out, title or _title(text), created_by, move=True, kind="tts", text=text, voice=voice,
            name=label)
        await asyncio.to_thread(store.write_atomic, store.root / "tts" / cache_key(text, voice),
                                media.id.encode())
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
    log.info("tts spoken id=%s voice=%s chars=%d duration_s=%.1f", media.id, voice, len(text),
             media.duration_s)
    return media


async def _run(exe: str, voice: str, text: str, out: Any, timeout: float) -> None:
    stats["runs"] += 1
    proc = await asyncio.create_subprocess_exec(
        exe, "-v", voice, "-b", "1", "-w", str(out), "--stdin",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(text.encode()), timeout)
    except TimeoutError:
        raise TtsError(f"espeak-ng did not finish speaking {len(text):,} characters within {timeout:g} s "
                       "([media] tts_timeout): shorten the text or raise the limit") from None
    finally:
        if proc.returncode is None:  # timed out or cancelled: never leave it running
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            await proc.wait()
    message = err.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        if "voice" in message.lower():
            raise UsageError(f"voice {voice!r}: espeak-ng has no such voice; `espeak-ng --voices=vi` lists "
                             "the Vietnamese ones")
        first = message.splitlines()[0] if message else "no message"
        raise TtsError(f"espeak-ng failed (exit {proc.returncode}): {first}")
    if not out.exists():
        raise TtsError(f"espeak-ng wrote no audio ({message or 'no message'}); check `espeak-ng -v {voice} "
                       "-w /tmp/t.wav test` on the daemon's host")


def _title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 60 else line[:59].rstrip() + "…"
