"""``netmgr db upgrade|status``."""

from __future__ import annotations

import asyncio

import click

from netmgr.cli.context import CliContext, echo, echo_json, pass_ctx


@click.group()
def db() -> None:
    """Manage the state store (SQLite by default, PostgreSQL by URL)."""


@db.command()
@pass_ctx
def upgrade(obj: CliContext) -> None:
    """Apply pending migrations (the daemon also does this at start)."""
    from netmgr.store import db as store

    settings = obj.settings()

    async def go() -> tuple[str | None, str | None]:
        opened = await store.open_store(settings.database_url)
        await opened.engine.dispose()
        return opened.migrated_from, opened.revision

    before, after = asyncio.run(go())
    echo(f"state store at revision {after} (was {before or 'empty'})")


@db.command()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def status(obj: CliContext, as_json: bool) -> None:
    """Show the store's revision and whether migrations are pending."""
    from netmgr.store import db as store

    settings = obj.settings()

    async def go() -> str | None:
        engine = store.create_engine(settings.database_url)
        try:
            return await store.current_revision(engine)
        finally:
            await engine.dispose()

    current, head = asyncio.run(go()), store.head_revision()
    data = {"current": current, "head": head, "pending": current != head}
    if as_json:
        echo_json(data)
    else:
        echo(f"current {current or 'empty'}, head {head}"
                   + (" - run `netmgr db upgrade`" if current != head else " - up to date"))
