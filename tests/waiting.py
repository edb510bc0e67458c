"""Waiting for a condition with a deadline: the tests' one way to synchronise (never a bare sleep)."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
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
