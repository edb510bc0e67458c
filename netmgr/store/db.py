"""Engine and sessions of the state store, and running its migrations."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from netmgr.errors import NetmgrError, Retryable

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: the API reads while the poller writes; NORMAL is durable in WAL mode
    # except for the last transactions on power loss, which telemetry tolerates.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine for ``url``; SQLite gets WAL mode and its folder created (0700)."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        kwargs["connect_args"] = {"timeout": 10}
    else:
        kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


@contextlib.contextmanager
def store_errors(engine: AsyncEngine) -> Iterator[None]:
    """Turn 'cannot reach the database' into one Retryable line naming it (password hidden)."""
    try:
        yield
    except (OSError, DBAPIError) as e:
        where = engine.url.render_as_string(hide_password=True)
        reason = e.orig if isinstance(e, DBAPIError) and e.orig else e
        raise Retryable(f"state store {where}: cannot open it: {reason}; "
                        "check [database] url and that the database server runs") from None


def _alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


MIGRATION_LOCK = 0x6E65746D67726D31  # "netmgrm1": the advisory lock key migrations hold


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (alembic), inside one transaction where the DB allows.

    A store that cannot be reached raises Retryable naming it (password hidden).
    """
    from alembic import command

    # alembic logs every plugin and context at INFO on each start: noise in the daemon's log.
    logging.getLogger("alembic").setLevel(logging.WARNING)

    def run(conn: Connection) -> None:
        command.upgrade(_alembic_config(conn), revision)

    with store_errors(engine):
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Daemons sharing a store all migrate at start: one at a time (the lock ends with this
                # transaction), the others then find the schema at head. Without it, two first
                # starts on an empty database fail on pg_type's unique index.
                from sqlalchemy import text

                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def run(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    with store_errors(engine):
        async with engine.connect() as conn:
            return await conn.run_sync(run)


@dataclass(slots=True)
class OpenStore:
    """The state store, open and at the schema's head."""

    engine: AsyncEngine
    sessions: async_sessionmaker[Any]
    migrated_from: str | None  # the revision it had before; None: it was empty
    revision: str | None  # the revision it has now (the head)

    @property
    def migrated(self) -> bool:
        return self.migrated_from != self.revision

    def describe_migration(self) -> str:
        """``state store migrated from X to Y`` for a person (a local command says it on stderr)."""
        return f"state store migrated from {self.migrated_from or 'empty'} to revision {self.revision}"


async def open_store(url: str, *, echo: bool = False) -> OpenStore:
    """Open the state store at ``url`` and bring its schema to head: the first thing the daemon,
    the demo and the local commands do. Netmgr's errors (an unreachable store: Retryable, naming
    it) go through; anything else becomes one NetmgrError naming the store (password hidden).
    The caller disposes ``engine``."""
    engine = create_engine(url, echo=echo)
    try:
        before = await current_revision(engine)
        await upgrade(engine)
        after = await current_revision(engine)
    except NetmgrError:
        await engine.dispose()
        raise
    except Exception as e:  # noqa: BLE001 - any driver or alembic error becomes one clear line
        await engine.dispose()
        raise NetmgrError(f"state store {engine.url.render_as_string(hide_password=True)}: "
                          f"cannot open or migrate it: {e}") from None
    if before != after:
        log.info("state store migrated from %s to %s", before or "empty", after)
    return OpenStore(engine, sessionmaker(engine), before, after)


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()
