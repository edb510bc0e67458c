"""What a file is: its audio format from its content (never its name) and its duration.

:func:`probe` accepts MP3, Ogg Vorbis, Ogg Opus, FLAC, M4A (AAC or ALAC), AAC (ADTS)
and WAV (PCM), measured by mutagen; anything else is refused with one line naming
the file and what it is ("photo.jpg: not audio (JPEG image); use MP3, ...").
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import BinaryIO

from netmgr.errors import UsageError

ACCEPTED = "use MP3, Ogg, Opus, FLAC, M4A or WAV"
MAX_DURATION_S = 24 * 3600.0
MAX_RATE = 768_000  # Hz; a header claiming more is damaged


@dataclass(frozen=True)
class Format:
    """An accepted audio format: ``name`` is also the file extension."""

    name: str
    label: str
    content_type: str


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("mp3", "MP3", "audio/mpeg"),
    Format("ogg", "Ogg Vorbis", "audio/ogg"),
    Format("opus", "Ogg Opus", "audio/ogg"),  # RFC 7845 registers Opus in Ogg as audio/ogg
    Format("flac", "FLAC", "audio/flac"),
    Format("m4a", "M4A", "audio/mp4"),
    Format("aac", "AAC (ADTS)", "audio/aac"),
    Format("wav", "WAV", "audio/wav"),
)}


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`probe` found."""

    format: Format
    duration_s: float
    sample_rate: int
    channels: int


# Things people upload by mistake, recognised so the refusal can say what they are.
NOT_AUDIO: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"GIF8", "GIF image"),
    (b"%PDF", "PDF document"),
    (b"PK\x03\x04", "ZIP archive or office document"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "Microsoft Office document"),
    (b"{\\rtf", "RTF document"),
    (b"\x1f\x8b", "gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!", "RAR archive"),
    (b"\x7fELF", "program (ELF)"),
    (b"MZ", "Windows program"),
    (b"MThd", "MIDI: notes, not recorded sound"),
)
UNSUPPORTED: tuple[tuple[bytes, str], ...] = (
    (b"\x1aE\xdf\xa3", "Matroska/WebM"),
    (b"0&\xb2u\x8ef\xcf\x11", "Windows Media (WMA/ASF)"),
    (b"#!AMR", "AMR"),
    (b".snd", "Sun AU"),
    (b"caff", "Core Audio (CAF)"),
    (b"MAC ", "Monkey's Audio (APE)"),
    (b"wvpk", "WavPack"),
    (b"RF64", "RF64 (WAV over 4 GB)"),
)
# WAV encodings players handle: PCM, IEEE float, A-law, mu-law, and the extensible header.
WAV_TAGS = {1: "PCM", 3: "IEEE float", 6: "A-law", 7: "mu-law", 0xFFFE: "extensible"}


def refuse(name: str, what: str) -> UsageError:
    """The one-line refusal of a file that is not accepted audio."""
    return UsageError(f"{name}: {what}; {ACCEPTED}")


def damaged(name: str, label: str, e: Exception) -> UsageError:
    """The refusal of a file that has an audio format's signature but does not parse."""
    why = str(e).strip() or type(e).__name__
    return UsageError(f"{name}: looks like {label} but cannot be read ({why}); the file may be damaged "
                      "or cut short: export it again")


def probe(f: BinaryIO, name: str) -> AudioInfo:
    """Identify and measure the audio in ``f`` (seekable, at any position).

    Raises UsageError naming ``name`` for anything that is not accepted, readable
    audio of a duration in (0, 24 h].
    """
    fmt = FORMATS[sniff(f, name)]
    f.seek(0)
    try:
        info = _measure(fmt, f, name)
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - untrusted bytes: whatever the parser trips on is "damaged"
        raise damaged(name, fmt.label, e) from None
    if not 0 <= info.sample_rate <= MAX_RATE or not 0 <= info.channels <= 255:
        raise damaged(name, fmt.label, ValueError(f"{info.sample_rate} Hz, {info.channels} channels"))
    d = info.duration_s
    if not math.isfinite(d) or round(d, 3) <= 0:
        raise UsageError(f"{name}: {fmt.label} audio with no sound in it (duration 0 s); export it again")
    if d > MAX_DURATION_S:
        raise UsageError(f"{name}: {fmt.label} audio of {d / 3600:.1f} h is longer than 24 h, the longest "
                         "a broadcast may last; split it")
    return info


def sniff(f: BinaryIO, name: str) -> str:
    """The accepted format of ``f`` by its first bytes; UsageError saying what it is otherwise."""
    f.seek(0)
    head = f.read(4096)
    if head[:3] == b"ID3" and len(head) >= 10:
        return _after_id3(f, head)
    fmt = _frames(head) or _container(f, head, name)
    if fmt:
        return fmt
    raise refuse(name, _not_accepted(head))


def _after_id3(f: BinaryIO, head: bytes) -> str:
    """The format of the audio after the ID3v2 tag that ``head`` starts with."""
    # ID3v2 tag (often with cover art) before MP3, AAC or FLAC data.
    size = 10 + ((head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | head[9] & 0x7F)
    size += 10 if head[5] & 0x10 else 0
    f.seek(size)
    after = f.read(4096)
    fmt = _frames(after) or ("flac" if after[:4] == b"fLaC" else None)
    # Some encoders pad between the tag and the first frame; mutagen's MP3 reader searches.
    return fmt or "mp3"


def _container(f: BinaryIO, head: bytes, name: str) -> str | None:
    """The accepted format of a FLAC, RIFF, Ogg or MP4 file; None when ``head`` is none of these.

    Raises UsageError for a known container holding something not accepted.
    """
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"RIFF" and len(head) >= 12:
        return _riff(head, name)
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        raise refuse(name, "unsupported audio format (AIFF)")
    if head[:4] == b"OggS":
        return _ogg(head, name)
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"):
        return _mp4(f, head, name)
    return None


def _riff(head: bytes, name: str) -> str:
    """``wav`` for a RIFF WAVE file; UsageError naming any other RIFF content."""
    kind = head[8:12]
    if kind == b"WAVE":
        return "wav"
    raise refuse(name, {b"WEBP": "not audio (WebP image)", b"AVI ": "not audio (AVI video)"}.get(
        kind, f"unsupported format (RIFF {kind.decode('latin-1')!r})"))


def _not_accepted(head: bytes) -> str:
    """What a file that is no accepted audio is, for the refusal."""
    for magic, what in UNSUPPORTED:
        if head.startswith(magic):
            return f"unsupported format ({what})"
    for magic, what in NOT_AUDIO:
        if head.startswith(magic):
            return f"not audio ({what})"
    what = _text_kind(head) or f"unrecognised data, first bytes {head[:8].hex(' ')}"
    return f"not audio ({what})"


def _frames(b: bytes) -> str | None:
    """``mp3`` or ``aac`` when ``b`` starts with an MPEG audio layer III or an ADTS frame header."""
    if len(b) < 4 or b[0] != 0xFF:
        return None
    if b[1] & 0xF6 == 0xF0 and (b[2] >> 2) & 0x0F < 13:
        return "aac"
    version, layer, bitrate, rate = (b[1] >> 3) & 3, (b[1] >> 1) & 3, b[2] >> 4, (b[2] >> 2) & 3
    if b[1] & 0xE0 == 0xE0 and version != 1 and layer == 1 and bitrate not in (0, 15) and rate != 3:
        return "mp3"
    return None


def _ogg(head: bytes, name: str) -> str:
    nseg = head[26] if len(head) > 26 else 0
    packet = head[27 + nseg: 27 + nseg + 16]
    if packet.startswith(b"\x01vorbis"):
        return "ogg"
    if packet.startswith(b"OpusHead"):
        return "opus"
    what = next((w for magic, w in ((b"\x7fFLAC", "unsupported format (FLAC in Ogg)"),
                                    (b"Speex   ", "unsupported audio format (Ogg Speex)"),
                                    (b"\x80theora", "not audio (Ogg Theora video)"))
                 if packet.startswith(magic)), "unsupported format (Ogg stream of unknown content)")
    raise refuse(name, what)


def _mp4(f: BinaryIO, head: bytes, name: str) -> str:
    from mutagen.mp4 import Atoms

    kind = "QuickTime" if head[8:12] == b"qt  " else "MP4"
    handlers = []
    try:
        f.seek(0)
        atoms = Atoms(f)
        for trak in atoms.path(b"moov")[-1].findall(b"trak"):
            for mdia in trak.findall(b"mdia"):
                for hdlr in mdia.findall(b"hdlr"):
                    ok, data = hdlr.read(f)
                    if ok and len(data) >= 12:
                        handlers.append(data[8:12])
    except Exception as e:  # noqa: BLE001 - untrusted bytes
        raise damaged(name, kind, e) from None
    if b"vide" in handlers:
        raise refuse(name, f"not audio ({kind} video)")
    if b"soun" not in handlers:
        raise refuse(name, f"not audio ({kind} file without a sound track)")
    return "m4a"


def _text_kind(head: bytes) -> str | None:
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # not just a character cut at the end of what was read
            return None
        text = head[: e.start].decode("utf-8")
    start = text.lstrip().lower()
    if start.startswith(("<!doctype html", "<html")):
        return "HTML page"
    if start.startswith("<?xml") or start.startswith("<svg"):
        return "XML document"
    return "text" if text.strip() else None


def _measure(fmt: Format, f: BinaryIO, name: str) -> AudioInfo:
    if fmt.name == "wav":
        return _wav(fmt, f, name)
    if fmt.name == "mp3":
        from mutagen.mp3 import MP3 as Reader
    elif fmt.name == "ogg":
        from mutagen.oggvorbis import OggVorbis as Reader
    elif fmt.name == "opus":
        from mutagen.oggopus import OggOpus as Reader
    elif fmt.name == "flac":
        from mutagen.flac import FLAC as Reader
    elif fmt.name == "aac":
        from mutagen.aac import AAC as Reader
    else:
        from mutagen.mp4 import MP4 as Reader
    info = Reader(f).info
    if fmt.name == "m4a":
        codec = getattr(info, "codec", "")
        if not codec.startswith(("mp4a", "alac")):
            raise refuse(name, f"unsupported audio format (M4A with {codec or 'an unknown'} codec)")
    rate = 48000 if fmt.name == "opus" else int(getattr(info, "sample_rate", 0) or 0)  # Opus decodes at 48k
    return AudioInfo(fmt, float(info.length), rate, int(getattr(info, "channels", 0) or 0))


def _wav(fmt: Format, f: BinaryIO, name: str) -> AudioInfo:
    from mutagen.wave import WAVE

    info = WAVE(f).info
    rate = info.sample_rate
    if not rate:
        raise ValueError("sample rate 0")
    tag = info.audio_format
    if tag not in WAV_TAGS:
        raise refuse(name, f"unsupported audio format (WAV with encoding 0x{tag:04x}, not PCM)")
    declared, available = _wav_data(f)
    block = max(1, info.channels * ((info.bits_per_sample + 7) // 8))
    if declared >= 0xFFFFFFF0 or (declared == 0 and available > 0):
        declared = available  # written as a stream: the size was never filled in
    elif declared > available:
        raise UsageError(f"{name}: WAV cut short: its header promises {declared // block / rate:.1f} s, "
                         f"the file holds {available // block / rate:.1f} s; upload the whole file")
    return AudioInfo(fmt, declared // block / rate, rate, info.channels)


def _wav_data(f: BinaryIO) -> tuple[int, int]:
    """(size the ``data`` chunk declares, bytes the file holds after its header)."""
    end = f.seek(0, 2)
    pos = 12
    while pos + 8 <= end:
        f.seek(pos)
        cid, size = struct.unpack("<4sI", f.read(8))
        if cid == b"data":
            return size, end - pos - 8
        pos += 8 + size + (size & 1)
    raise ValueError("no 'data' chunk")
