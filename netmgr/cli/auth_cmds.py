"""``netmgr login`` and ``netmgr user add|list|disable`` (local: they work on the state store)."""

from __future__ import annotations

import asyncio
import getpass
from typing import Any

import click

from netmgr.cli.context import CliContext, echo, echo_json, json_option, pass_ctx, save_credentials
from netmgr.cli.output import print_table, wide_option
from netmgr.humanize import format_time, yes_no


@click.command()
@click.option("--server", "server_opt", help="API URL (default: --server of netmgr, else local).")
@click.option("--token", "token_opt", help="The token `netmgr user add` printed (asked if not given).")
@pass_ctx
def login(obj: CliContext, server_opt: str | None, token_opt: str | None) -> None:
    """Check a token against the API and save it (0600) for later commands."""
    from netmgr.cli.client import ApiClient
    from netmgr.cli.context import DEFAULT_SERVER

    server = server_opt or obj.server or DEFAULT_SERVER
    token = token_opt or obj.token or click.prompt("token", hide_input=True)
    me = ApiClient(server, token).get("/api/v1/whoami")
    path = save_credentials(server, token)
    zones = f" in {', '.join(me['zones'])}" if me["zones"] else ""
    echo(f"logged in to {server} as {me['name']} ({me['role']}{zones}); saved to {path}")


@click.group()
def user() -> None:
    """API users (local commands: run them where the state store is, as its owner)."""


def _run(obj: CliContext, fn: Any) -> Any:
    from netmgr.store import db

    settings = obj.settings()

    async def go() -> Any:
        store = await db.open_store(settings.database_url)
        if store.migrated:  # never silently: the store belongs to a daemon that may be older
            click.echo(f"netmgr: {store.describe_migration()}", err=True)
        try:
            async with store.sessions() as s:
                result = await fn(s)
                await s.commit()
                return result
        finally:
            await store.engine.dispose()

    return asyncio.run(go())


def _user_row(u: Any) -> dict[str, Any]:
    return {"name": u.name, "role": u.role, "zones": u.zones, "can_emergency": u.can_emergency,
            "disabled": u.disabled, "created_at": u.created_at.isoformat()}


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "operator", "viewer"]), required=True)
@click.option("--zone", "zones", multiple=True, help="Operator's zone (repeat for several).")
@click.option("--emergency", is_flag=True, help="May send emergency broadcasts.")
@json_option
@pass_ctx
def add(
    obj: CliContext, name: str, role: str, zones: tuple[str, ...], emergency: bool, as_json: bool
) -> None:
    """Create a user and print its token (shown this once only)."""
    from netmgr.auth import create_user

    actor = f"local:{getpass.getuser()}"

    async def fn(s: Any) -> tuple[Any, str]:
        return await create_user(s, name, role, list(zones), emergency, actor=actor)

    u, token = _run(obj, fn)
    if as_json:
        echo_json(_user_row(u) | {"token": token})
        return
    echo(f"created {role} {name}" + (f" for {', '.join(zones)}" if zones else ""))
    echo(f"token (shown once, keep it safe): {token}")


@user.command("list")
@wide_option
@json_option
@pass_ctx
def list_(obj: CliContext, wide: bool, as_json: bool) -> None:
    """List users (never their tokens)."""
    from sqlalchemy import select

    from netmgr.store.models import User

    async def fn(s: Any) -> list[dict[str, Any]]:
        return [_user_row(u) for u in await s.scalars(select(User).order_by(User.name))]

    rows = _run(obj, fn)
    if as_json:
        echo_json(rows)
        return
    tz = obj.local_tz()  # a local command: the state store is here, and so is the config
    people = [{**r, "zones": ", ".join(r["zones"]), "can_emergency": yes_no(r["can_emergency"]),
               "disabled": yes_no(r["disabled"], "disabled", "active"),
               "created": format_time(r["created_at"], tz)} for r in rows]
    print_table(people, [("name", "name", "essential"), ("role", "role", "essential"),
                         ("disabled", "state", "essential"), ("zones", "zones"),
                         ("can_emergency", "emergency"), ("created", "created")],
                wide=wide, tz=tz)


@user.command("disable")
@click.argument("name")
@pass_ctx
def disable(obj: CliContext, name: str) -> None:
    """Disable a user: its token stops working at once."""
    from sqlalchemy import select

    from netmgr.errors import NotFound
    from netmgr.store.models import AuditEntry, User

    actor = f"local:{getpass.getuser()}"

    async def fn(s: Any) -> None:
        u = await s.scalar(select(User).where(User.name == name))
        if u is None:
            raise NotFound(f"user {name!r} not found")
        u.disabled = True
        s.add(AuditEntry(actor=actor, role="admin", action="user.disable", target=name, zone=None,
                         outcome="ok", detail=""))

    _run(obj, fn)
    echo(f"disabled {name}")
