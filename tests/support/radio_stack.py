"""The radio service without a daemon, on a real broker: ``running`` (a service the test built)
and ``running_radio`` (one built here from a broker and a static inventory); the broker user
the daemon has in the password files the radio tests render."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from netmgr.radio.service import RadioService

from .waiting import until

DAEMON_USER, DAEMON_PASS = "netmgr", "daemon-secret-0123"


@contextlib.asynccontextmanager
async def running(svc: RadioService):
    task = asyncio.create_task(svc.run())
    try:
        await until(lambda: svc.connected.is_set() or task.done(), 20, "the radio service to connect")
        if task.done():
            task.result()
        yield svc
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


@contextlib.asynccontextmanager
async def running_radio(broker: Any, inventory: dict[str, str], client_id: str) -> AsyncIterator[Any]:
    """A RadioService without a daemon (static ``inventory``) on ``broker``, running and
    connected; cancelled at the end."""
    svc = RadioService.standalone(broker, inventory, client_id=client_id)
    task = asyncio.create_task(svc.run())
    try:
        await until(svc.connected.is_set, 10, f"the radio service {client_id} connected")
        yield svc
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
