"""Waiting for a condition with a deadline: the tests' one way to synchronise (never a bare sleep)."""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any


async def until(fn: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Call ``fn`` (a plain function or one returning an awaitable) every ``interval`` seconds
    until it returns something truthy, and return that; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if inspect.isawaitable(v):
            v = await v
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
