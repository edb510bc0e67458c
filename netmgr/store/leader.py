"""Which of several daemons sharing one PostgreSQL state store does a singleton job (the scheduler).

:class:`LeaderLock` holds a session-level ``pg_try_advisory_lock(key)`` on a connection of its own
(asyncpg, through a pool-less SQLAlchemy engine on the store's URL, so it connects exactly as the
store does). PostgreSQL releases the lock when that session ends, whatever ends it: the daemon
exits or is killed (the kernel closes the socket), the backend is terminated, or the server stops
hearing the client (TCP keepalives, ``tcp_user_timeout`` and ``idle_session_timeout`` set on the
session, all ``LOST_AFTER``). So:

- not leader: ``pg_try_advisory_lock`` every ``retry_every`` seconds (a new connection if needed);
- leader: ``SELECT 1`` every ``check_every`` seconds within ``timeout``; leadership is dropped at
  once when that fails or the connection closes (asyncpg's termination listener), i.e. at most
  ``check_every + timeout`` (5 s) after the database went away — before the server frees the lock
  (``LOST_AFTER``, 10 s), so two daemons never lead at once because of a network failure.

On SQLite (one machine, one daemon) there is nothing to share: always leader, no lock.

The same connection can LISTEN on a channel (``listen``/``on_notify``): the scheduler uses it to
hear that another daemon's API changed the programs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

LEADER = "leader"
HELD = "standby: another daemon holds the scheduler lock"
UNREACHABLE = "standby: database unreachable"
STOPPED = "standby: not running"

RETRY_EVERY = 2.0   # a standby tries to take the lock this often
CHECK_EVERY = 2.0   # a leader checks its connection this often ...
TIMEOUT = 3.0       # ... and gives up on a query (or a connect) after this long
LOST_AFTER = 10     # s: the server ends a session it has not heard from for this long (frees the lock)


def lock_key(name: str) -> int:
    """A fixed signed 64-bit advisory lock key for ``name`` (the first 8 bytes of its SHA-256)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


SCHEDULER_LOCK = "netmgr.scheduler"
SCHEDULER_KEY = lock_key(SCHEDULER_LOCK)


def describe(url: str) -> str:
    """``postgresql://host:port/db`` (no user, no password, no options); SQLite: its path."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return f"sqlite:///{u.database or ''}"
    host = u.host or str(u.query.get("host") or "localhost")
    return f"{u.get_backend_name()}://{host}:{u.port or 5432}/{u.database or ''}"


class LeaderLock:
    """Leadership of one daemon among those sharing the store at ``url`` (see the module docstring).

    ``start()``/``stop()`` or ``async with``. ``is_leader``, ``status`` (one of ``LEADER``,
    ``HELD``, ``UNREACHABLE``, ``STOPPED``) and ``error`` (why the database is unreachable) say
    where it stands; ``on_change(lock)`` is called (synchronously, in the event loop) on every
    change of ``status``; ``wait_leader()`` and ``wait_standby()`` return once it is so.
    """

    def __init__(self, url: str, *, name: str = SCHEDULER_LOCK, retry_every: float = RETRY_EVERY,
                 check_every: float = CHECK_EVERY, timeout: float = TIMEOUT, lost_after: int = LOST_AFTER,
                 on_change: Callable[[LeaderLock], None] | None = None,
                 listen: str | None = None, on_notify: Callable[[str], None] | None = None) -> None:
        self.url = url
        self.name = name
        self.key = lock_key(name)
        self.where = describe(url)
        self.shared = make_url(url).get_backend_name() != "sqlite"
        self.retry_every, self.check_every, self.timeout = retry_every, check_every, timeout
        self.lost_after = lost_after
        self.on_change = on_change
        self.listen, self.on_notify = listen, on_notify
        self.status = STOPPED
        self.error: str | None = None
        self.backend_pid: int | None = None     # our lock session's pid (pg_stat_activity, pg_locks)
        self.changes = 0
        self._leader = asyncio.Event()
        self._standby = asyncio.Event()
        self._standby.set()
        self._decided = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._engine: Any = None
        self._conn: Any = None   # SQLAlchemy AsyncConnection
        self._raw: Any = None    # its asyncpg connection

    # ------------------------------------------------------------------ API

    @property
    def is_leader(self) -> bool:
        return self.status == LEADER

    async def wait_leader(self) -> None:
        await self._leader.wait()

    async def wait_standby(self) -> None:
        await self._standby.wait()

    async def wait_decided(self) -> None:
        """Until the first attempt after ``start()`` ended (leader, held by another, or unreachable)."""
        await self._decided.wait()

    async def start(self) -> None:
        if self._task is not None:
            return
        if not self.shared:
            self._set(LEADER)
            return
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import NullPool

        app = f"netmgr {self.name} {socket.gethostname()} pid {os.getpid()}"[:63]
        # The server probes a silent client after lost_after - 6 s, 3 times 2 s apart: gone at lost_after.
        keepalives = {"tcp_keepalives_idle": str(max(1, self.lost_after - 6)), "tcp_keepalives_interval": "2",
                      "tcp_keepalives_count": "3"}
        self._engine = create_async_engine(self.url, poolclass=NullPool, connect_args={
            "timeout": self.timeout, "server_settings": {"application_name": app, **keepalives}})
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"leader:{self.name}")

    async def stop(self) -> None:
        """Give leadership up (the session ends, so the lock is free at once) and stop trying."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close()
        if self._engine is not None:
            with contextlib.suppress(Exception):
                await self._engine.dispose()
            self._engine = None
        self._set(STOPPED)

    async def __aenter__(self) -> LeaderLock:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ internals

    def _set(self, status: str, error: str | None = None) -> None:
        self.error = error
        if status != STOPPED:
            self._decided.set()
        if status == self.status:
            return
        self.status = status
        self.changes += 1
        if status == LEADER:
            self._standby.clear()
            self._leader.set()
        else:
            self._leader.clear()
            self._standby.set()
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:  # a broken callback must not stop the lock
                log.exception("leader lock %s: change callback failed", self.name)

    async def _run(self) -> None:
        while True:
            try:
                await self._connect()
                await self._hold()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - any driver error: the session is gone or unusable
                reason = _reason(e, self.timeout)
                if self.status == LEADER:
                    log.warning("leader lock %s on %s: lost the connection: %s", self.name, self.where,
                                reason)
                self._set(UNREACHABLE, reason)  # first: leadership ends before anything else awaits
                await self._abort()
            await asyncio.sleep(self.retry_every)

    async def _connect(self) -> None:
        async with asyncio.timeout(self.timeout * 2):
            self._conn = await self._engine.connect()
            raw = (await self._conn.get_raw_connection()).driver_connection
            self._raw = raw
            self.backend_pid = raw.get_server_pid()
            # Newer settings one by one: a server without one (idle_session_timeout is 14+) still works.
            for setting, value in (("tcp_user_timeout", self.lost_after * 1000),
                                   ("idle_session_timeout", self.lost_after * 1000)):
                try:
                    await raw.execute(f"SET {setting} = {int(value)}")
                except Exception as e:  # noqa: BLE001 - an older server: keepalives still apply
                    log.debug("leader lock %s: SET %s failed: %s", self.name, setting, e)
            if self.listen and self.on_notify is not None:
                await raw.add_listener(self.listen, self._notified)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if self.on_notify is not None:
            self.on_notify(payload)

    async def _hold(self) -> None:
        raw = self._raw
        closed = asyncio.Event()
        raw.add_termination_listener(lambda _c: closed.set())
        while True:
            async with asyncio.timeout(self.timeout):
                if self.status == LEADER:
                    await raw.fetchval("SELECT 1")
                elif await raw.fetchval("SELECT pg_try_advisory_lock($1)", self.key):
                    self._set(LEADER)
                    log.debug("leader lock %s: taken on %s (backend pid %s)", self.name, self.where,
                              self.backend_pid)
                else:
                    self._set(HELD)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.check_every if self.status == LEADER else self.retry_every):
                    await closed.wait()
            if closed.is_set() or raw.is_closed():
                raise ConnectionError("the connection was closed")

    async def _abort(self) -> None:
        """Close the socket now (no goodbye: the peer may be unreachable); the lock, if held, is
        freed by the server when it sees the socket close."""
        raw, self._raw = self._raw, None
        conn, self._conn = self._conn, None
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.terminate()
        if conn is not None:  # the pool-less engine forgets it (its socket is closed already)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.timeout):
                    await conn.invalidate()

    async def _close(self) -> None:
        """A graceful end (unlock, then close); aborts if the server does not answer in time."""
        raw, conn = self._raw, self._conn
        if raw is None or conn is None:
            await self._abort()
            return
        try:
            async with asyncio.timeout(self.timeout):
                if self.status == LEADER and not raw.is_closed():
                    await raw.fetchval("SELECT pg_advisory_unlock($1)", self.key)
                await conn.close()
            self._raw = self._conn = None
        except Exception:  # noqa: BLE001 - closing: whatever went wrong, the socket goes
            await self._abort()


def _reason(e: BaseException, timeout: float) -> str:
    if isinstance(e, TimeoutError):
        return f"no answer within {timeout:g} s"
    orig = getattr(e, "orig", None)  # SQLAlchemy wraps the driver's error
    e = orig if isinstance(orig, BaseException) else e
    return f"{type(e).__name__}: {str(e).strip()}" if str(e).strip() else type(e).__name__
