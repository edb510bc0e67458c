"""Waiting for a condition with a deadline: the tests' one way to synchronise (never a bare sleep).

``until`` in async tests (the predicate may be a plain function or a coroutine function),
``wait_for`` in sync code (server start-up, threads), ``read_until`` for a process's output."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import time
from collections.abc import Callable
from typing import Any


async def until(fn: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Call ``fn`` (a plain function, or a coroutine function: what it returns is awaited) every
    ``interval`` seconds until it returns something truthy, and return that; fail naming ``what``
    at the deadline."""
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


class Fatal(Exception):
    """Raised by a wait_for predicate to stop waiting at once (the server died)."""


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; raise naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except Fatal:
            raise
        except Exception as e:  # noqa: BLE001 - the predicate may fail until the server is up
            last_exc = e
        if time.monotonic() > deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)


def read_until(proc: subprocess.Popen, marker: str, timeout: float) -> list[str]:
    """The demo's output lines up to the first holding ``marker`` (fails naming what it printed)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"the demo did not print {marker!r}:\n" + "".join(lines))
