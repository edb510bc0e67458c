"""The state store on SQLite (WAL) and a real PostgreSQL: migrations, UTC times, constraints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from netmgr.store import db
from netmgr.store.models import AccessPoint, AuditEntry, Zone


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'state' / 'netmgr.db'}"
    else:
        url = request.getfixturevalue("postgres").fresh_database()
        url = url.replace("postgresql://", "postgresql+asyncpg://")
    eng = db.create_engine(url)
    yield eng
    await eng.dispose()


async def test_migrate_to_head_twice(engine):
    assert await db.current_revision(engine) is None
    await db.upgrade(engine)
    assert await db.current_revision(engine) == db.head_revision()
    await db.upgrade(engine)  # idempotent
    assert await db.current_revision(engine) == db.head_revision()


async def test_utc_round_trip_and_foreign_keys(engine):
    await db.upgrade(engine)
    sessions = db.sessionmaker(engine)
    hanoi = timezone(timedelta(hours=7))
    when = datetime(2026, 12, 1, 6, 0, tzinfo=hanoi)
    async with sessions() as s:
        s.add(Zone(path="binh-phuoc", name="Bình Phước", level="province", kind="tinh"))
        s.add(AuditEntry(ts=when, actor="a", role="admin", action="x", outcome="ok"))
        await s.commit()
    async with sessions() as s:
        got = (await s.execute(text("select 1"))).scalar()
        entry = (await s.scalars(AuditEntry.__table__.select())).first()
        assert got == 1
    async with sessions() as s:
        from sqlalchemy import select

        e = await s.scalar(select(AuditEntry))
        assert e.ts == when and e.ts.tzinfo == UTC and e.ts.hour == 23
        assert (await s.get(Zone, "binh-phuoc")).name == "Bình Phước"
    async with sessions() as s:
        s.add(AccessPoint(name="ap-1", host="192.0.2.1", zone="no/such-zone"))
        with pytest.raises(IntegrityError):
            await s.commit()
    assert entry is not None


async def test_sqlite_runs_in_wal_mode(tmp_path):
    eng = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'deep' / 'dir' / 'netmgr.db'}")
    try:
        await db.upgrade(eng)
        async with eng.connect() as c:
            assert (await c.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await c.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert oct((tmp_path / "deep" / "dir").stat().st_mode & 0o777) == "0o700"
    finally:
        await eng.dispose()


def test_db_cli_upgrade_and_status(tmp_path, postgres):
    url = postgres.fresh_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env.update(NETMGR_DATABASE__URL=url, NETMGR_DAEMON__STATE_DIR=str(tmp_path))

    def run(*args):
        return subprocess.run([sys.executable, "-m", "netmgr", "db", *args], env=env, capture_output=True,
                              text=True, timeout=60)

    before = json.loads(run("status", "--json").stdout)
    assert before == {"current": None, "head": db.head_revision(), "pending": True}
    r = run("upgrade")
    assert r.returncode == 0 and f"at revision {db.head_revision()}" in r.stdout
    assert json.loads(run("status", "--json").stdout)["pending"] is False


def test_unreachable_database_is_one_clear_line(tmp_path):
    from support.services import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env["NETMGR_DATABASE__URL"] = f"postgresql://netmgr@127.0.0.1:{free_port()}/x"
    r = subprocess.run([sys.executable, "-m", "netmgr", "db", "upgrade"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1
    shown = env["NETMGR_DATABASE__URL"].replace("postgresql://", "postgresql+asyncpg://")
    assert r.stderr.startswith(f"netmgr: error: state store {shown}: cannot open it")
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1


async def test_daemons_migrating_one_empty_postgres_at_once(postgres):
    """Two daemons sharing a fresh PostgreSQL store both migrate at start: one waits for the other
    (advisory lock) instead of failing on a half-created schema."""
    import asyncio

    url = postgres.fresh_database().replace("postgresql://", "postgresql+asyncpg://")
    engines = [db.create_engine(url), db.create_engine(url)]
    try:
        await asyncio.gather(*(db.upgrade(e) for e in engines))
        assert await db.current_revision(engines[0]) == db.head_revision()
    finally:
        for e in engines:
            await e.dispose()


def test_a_local_command_says_when_it_migrates_the_store(tmp_path):
    """`netmgr user add` opens the store as the daemon does (store.db.open_store) and, when that
    migrates it, says so on stderr: the store may belong to an older daemon."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMGR_")}
    env.update(NETMGR_DAEMON__STATE_DIR=str(tmp_path))

    def add(name):
        return subprocess.run([sys.executable, "-m", "netmgr", "user", "add", name, "--role", "viewer"], env=env,
                              capture_output=True, text=True, timeout=60)

    first = add("noc-1")
    assert first.returncode == 0, first.stderr
    assert f"state store migrated from empty to revision {db.head_revision()}" in first.stderr
    again = add("noc-2")
    assert again.returncode == 0 and "migrated" not in again.stderr, again.stderr


async def test_a_pre_2025_tree_gets_its_kinds_on_upgrade(engine):
    """Migration 0005 (issue 16) on a store with a four-level tree and what points at it: every
    zone gets the kind its level implied (the district a legacy huyen-cu), level becomes the
    kind's tier, the speakers and scopes keep their zones, and codes are unique from then on."""
    await db.upgrade(engine, "0004")
    naive_now = datetime.now(UTC).replace(tzinfo=None)  # as UTCDateTime stores it
    tree = [("binh-phuoc", "Bình Phước", "province", None),
            ("binh-phuoc/dong-xoai", "Đồng Xoài", "district", "binh-phuoc"),
            ("binh-phuoc/dong-xoai/tan-phu", "Tân Phú", "commune", "binh-phuoc/dong-xoai"),
            ("binh-phuoc/dong-xoai/tan-phu/ap-1", "Ấp 1", "village", "binh-phuoc/dong-xoai/tan-phu")]
    async with engine.begin() as c:
        for path, name, level, parent in tree:
            await c.execute(text("INSERT INTO zones (path, name, level, parent, created_at) "
                                 "VALUES (:p, :n, :l, :par, :t)"),
                            {"p": path, "n": name, "l": level, "par": parent, "t": naive_now})
        await c.execute(text("INSERT INTO speakers (id, name, zone, tags, model, created_at) "
                             "VALUES ('loa-1', 'Loa chợ', 'binh-phuoc/dong-xoai/tan-phu', '{}', '', :t)"),
                        {"t": naive_now})
    await db.upgrade(engine)
    async with engine.connect() as c:
        got = (await c.execute(text("SELECT path, level, kind, code FROM zones ORDER BY path"))).all()
        speaker_zone = (await c.execute(text("SELECT zone FROM speakers WHERE id = 'loa-1'"))).scalar()
    assert [tuple(r) for r in got] == [
        ("binh-phuoc", "province", "tinh", None),
        ("binh-phuoc/dong-xoai", "legacy", "huyen-cu", None),
        ("binh-phuoc/dong-xoai/tan-phu", "commune", "xa", None),
        ("binh-phuoc/dong-xoai/tan-phu/ap-1", "village", "thon", None)]
    assert speaker_zone == "binh-phuoc/dong-xoai/tan-phu"
    async with db.sessionmaker(engine)() as s:
        (await s.get(Zone, "binh-phuoc")).code = "70"
        (await s.get(Zone, "binh-phuoc/dong-xoai")).code = "70"
        with pytest.raises(IntegrityError):
            await s.commit()
