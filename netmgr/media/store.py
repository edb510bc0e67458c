"""The media store: content-addressed audio files on the daemon's disk.

Layout under ``{daemon.state_dir}/media/``::

    <id>.<ext>     the audio, exactly as uploaded (id = sha256 hex of its bytes)
    <id>.json      its sidecar: title, kind, format, duration_s, size, created, ...
    tts/<key>      text-to-speech cache: the id spoken for a (voice, text)

There is no database table: a media file exists when its sidecar does. Every file
is written to a temporary name in the same directory and renamed into place, the
audio before its sidecar, so a reader never sees half a file and a crash leaves
at most an orphan audio file that the next add of the same bytes overwrites.
The files are immutable; re-adding the same bytes returns the stored media.

The methods block (hashing, parsing, copying): the daemon calls them in a thread.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

from netmgr.errors import Conflict, NotFound, TooLarge, UsageError
from netmgr.media.probe import ACCEPTED, FORMATS, probe

log = logging.getLogger(__name__)

MEDIA_ID = re.compile(r"^[0-9a-f]{64}$")
TMP_PREFIX = ".tmp-"
STALE_TMP_S = 3600.0  # temporary files older than this are a crash's leftovers
CHUNK = 1 << 20
MB = 1024 * 1024  # [media] max_mb counts these


@dataclass(frozen=True)
class Media:
    """One stored audio file, as its sidecar describes it."""

    id: str
    format: str
    title: str
    kind: Literal["upload", "tts"]
    duration_s: float
    size: int
    created: str  # ISO 8601, UTC
    created_by: str
    sample_rate: int = 0
    channels: int = 0
    filename: str = ""
    text: str | None = None
    voice: str | None = None

    @property
    def ext(self) -> str:
        return self.format

    @property
    def content_type(self) -> str:
        return FORMATS[self.format].content_type

    @property
    def file_name(self) -> str:
        """``<id>.<ext>``: the file in the store and the last part of its URL."""
        return f"{self.id}.{self.format}"

    def to_dict(self) -> dict[str, Any]:
        """The sidecar's content (and the API's view of the media)."""
        d = asdict(self)
        d["ext"] = self.ext
        d["content_type"] = self.content_type
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Media:
        # Keys this version does not know (a newer daemon's sidecar) are ignored, not fatal.
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def valid_id(media_id: str) -> bool:
    """True for a well-formed media id (64 lowercase hex digits)."""
    return bool(MEDIA_ID.match(media_id))


def nothing_uses(_: str) -> bool:
    """The default ``in_use`` check of :meth:`MediaStore.remove`: nothing references media."""
    return False


class MediaStore:
    """Content-addressed audio under ``root``; at most ``max_bytes`` per file."""

    def __init__(self, root: Path, max_bytes: int = 50 * MB, tts_voice: str = "vi",
                 tts_timeout: float = 60.0) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.tts_voice = tts_voice  # defaults of netmgr.media.tts.synthesize
        self.tts_timeout = tts_timeout
        self._lock = threading.Lock()
        self._cache: dict[str, Media] = {}  # sidecars never change: cached once read
        self._clean_stale()

    # ------------------------------------------------------------------ reading

    def path(self, media: Media) -> Path:
        """The audio file of ``media``."""
        return self.root / media.file_name

    def get(self, media_id: str) -> Media | None:
        """The media with this id, or None (also for a malformed id)."""
        if not isinstance(media_id, str) or not valid_id(media_id):
            return None
        hit = self._cache.get(media_id)
        if hit is not None:
            if (self.root / f"{media_id}.json").exists():
                return hit
            self._cache.pop(media_id, None)  # removed by another store instance
            return None
        try:
            data = json.loads((self.root / f"{media_id}.json").read_text(encoding="utf-8"))
            media = Media.from_dict(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as e:
            log.warning("media sidecar unreadable id=%s error=%s", media_id, e)
            return None
        self._cache[media_id] = media
        return media

    def list(self) -> list[Media]:
        """Every stored media, newest first."""
        if not self.root.is_dir():
            return []
        found = (self.get(p.stem) for p in self.root.glob("*.json"))
        return sorted((m for m in found if m is not None), key=lambda m: (m.created, m.id), reverse=True)

    # ------------------------------------------------------------------ writing

    def add(self, source: bytes | Path, title: str = "", created_by: str = "", *,
            filename: str = "", move: bool = False) -> Media:
        """Store audio (bytes, or a file) and return its media; the same bytes give the same media.

        Refused (UsageError naming ``filename``, else the title) when it is empty,
        over ``max_bytes``, not audio of an accepted format, or of a duration
        outside (0, 24 h]; nothing is written then. ``move`` renames the file
        into the store instead of copying it (a temporary file of the caller's).
        """
        return self.put(source, title, created_by, filename=filename, move=move)[0]

    def put(self, source: bytes | Path, title: str = "", created_by: str = "", *, filename: str = "",
            move: bool = False, kind: Literal["upload", "tts"] = "upload", text: str | None = None,
            voice: str | None = None, name: str = "") -> tuple[Media, bool]:
        """:meth:`add` that also says whether the media is new (False: those bytes were stored already).

        ``name`` is what refusals call the audio (default: the file name, else the title).
        """
        if not filename and isinstance(source, Path) and not move:
            filename = source.name
        name = name or filename or title or "upload"
        size = len(source) if isinstance(source, bytes) else _size_of(source, name)
        if size == 0:
            raise UsageError(f"{name}: empty file (0 bytes); {ACCEPTED}")
        self.check_size(size, name)
        with _open(source) as f:
            info = probe(f, name)
            media_id = _sha256(f)
        with self._lock:
            existing = self.get(media_id)
            if existing is not None:
                return existing, False
            media = Media(id=media_id, format=info.format.name, title=_title(title, filename),
                          kind=kind, duration_s=round(info.duration_s, 3), size=size,
                          created=datetime.now(UTC).isoformat(timespec="milliseconds"), created_by=created_by,
                          sample_rate=info.sample_rate, channels=info.channels,
                          filename=os.path.basename(filename)[:255], text=text, voice=voice)
            self.root.mkdir(parents=True, exist_ok=True, mode=0o750)
            audio = self.path(media)
            if isinstance(source, bytes):
                self.write_atomic(audio, source)
            elif move:
                os.replace(source, audio)  # the caller's temporary file is in this directory
            else:
                with self._temp() as (tmp, out), source.open("rb") as src:
                    shutil.copyfileobj(src, out, CHUNK)
                    _sync(out)
                    os.replace(tmp, audio)
            try:
                self.write_atomic(self.root / f"{media_id}.json",
                                   json.dumps(media.to_dict(), ensure_ascii=False, indent=1).encode())
            except BaseException:
                audio.unlink(missing_ok=True)
                raise
            _sync_dir(self.root)
            self._cache[media_id] = media
        log.info("media added id=%s format=%s duration_s=%.1f size=%d by=%s", media_id, media.format,
                 media.duration_s, size, created_by)
        return media, True

    def check_size(self, size: int, name: str, *, at_least: bool = False) -> None:
        """TooLarge when ``size`` bytes is over the limit ([media] max_mb). ``at_least``: the
        upload was not read to its end, so ``size`` is only how much of it was counted."""
        if size > self.max_bytes:
            what = f"more than {self.max_bytes / MB:g} MB" if at_least else f"{size / MB:.1f} MB"
            raise TooLarge(f"{name}: {what} is over the {self.max_bytes / MB:g} MB limit "
                           "([media] max_mb); compress it (e.g. MP3 or Opus at 64 kbit/s) or split it")

    def remove(self, media_id: str, in_use: Callable[[str], bool | str] = nothing_uses) -> Media:
        """Delete a media file; Conflict while ``in_use(id)`` (a truthy str names the user)."""
        with self._lock:
            media = self.get(media_id)
            if media is None:
                raise NotFound(f"media {media_id} not found (netmgr media list shows the ids)")
            used = in_use(media.id)
            if used:
                by = f" by {used}" if isinstance(used, str) else ""
                raise Conflict(f"media {media.id[:12]} ({media.title}) is still used{by}; cancel the "
                               "broadcasts that play it first")
            # The sidecar first: from then on the media is gone for every reader.
            (self.root / f"{media.id}.json").unlink(missing_ok=True)
            self._cache.pop(media.id, None)
            self.path(media).unlink(missing_ok=True)
        log.info("media removed id=%s", media.id)
        return media

    def temp_file(self) -> tuple[Path, BinaryIO]:
        """A new temporary file inside the store (same file system: renamed into place by ``move``).

        The caller closes and, unless moved into the store, removes it.
        """
        self.root.mkdir(parents=True, exist_ok=True, mode=0o750)
        path = self.root / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        return path, os.fdopen(fd, "wb")

    @contextmanager
    def _temp(self) -> Iterator[tuple[Path, BinaryIO]]:
        path, f = self.temp_file()
        try:
            with f:
                yield path, f
        finally:
            path.unlink(missing_ok=True)

    def write_atomic(self, dest: Path, data: bytes) -> None:
        """Write ``data`` to ``dest`` (inside the store) by temporary file and rename."""
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        tmp = dest.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                _sync(f)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def _clean_stale(self) -> None:
        if not self.root.is_dir():
            return
        cutoff = time.time() - STALE_TMP_S
        for p in [*self.root.glob(f"{TMP_PREFIX}*"), *self.root.glob(f"*/{TMP_PREFIX}*")]:
            try:
                if p.stat().st_mtime < cutoff:
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
                    log.info("media: removed a stale temporary file path=%s", p)
            except OSError:
                pass


_stores: dict[Path, MediaStore] = {}
_stores_lock = threading.Lock()


def store_of(settings: Any) -> MediaStore:
    """The process's one store for these settings (``{daemon.state_dir}/media``, ``[media] max_mb``)."""
    root = Path(settings.daemon.state_dir) / "media"
    with _stores_lock:
        store = _stores.get(root)
        if store is None:
            store = _stores[root] = MediaStore(root)
    m = settings.media  # follows a reloaded config
    store.max_bytes, store.tts_voice, store.tts_timeout = m.max_mb * MB, m.tts_voice, m.tts_timeout
    return store


def _title(title: str, filename: str) -> str:
    t = " ".join(title.split())
    if not t and filename:
        t = os.path.splitext(os.path.basename(filename))[0]
    return (t or "untitled")[:200]


def _size_of(path: Path, name: str) -> int:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise NotFound(f"{name}: no such file") from None
    except OSError as e:
        raise UsageError(f"{name}: cannot read it: {e.strerror}") from None
    if not path.is_file():
        raise UsageError(f"{name}: not a regular file")
    return st.st_size


@contextmanager
def _open(source: bytes | Path) -> Iterator[BinaryIO]:
    if isinstance(source, bytes):
        yield io.BytesIO(source)
        return
    with source.open("rb") as f:
        yield f


def _sha256(f: BinaryIO) -> str:
    f.seek(0)
    h = hashlib.sha256()
    while chunk := f.read(CHUNK):
        h.update(chunk)
    return h.hexdigest()


def _sync(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())


def _sync_dir(path: Path) -> None:
    # The renames themselves are durable only once the directory is synced.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
