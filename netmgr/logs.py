"""Logging: stdlib logging, one line per event with key=value context.

Secrets never reach the logs: settings hold them as SecretStr, and the
formatter masks anything that looks like a bearer token as a last guard.
"""

from __future__ import annotations

import logging
import re
import sys

_TOKEN = re.compile(r"(Bearer\s+|nmt_)[A-Za-z0-9_\-]{8,}")


class KeyValueFormatter(logging.Formatter):
    """``2026-11-28T10:00:00Z level=info logger=netmgr.poller msg...`` with tokens masked."""

    converter = __import__("time").gmtime

    def __init__(self) -> None:
        super().__init__("%(asctime)sZ level=%(levelname)s logger=%(name)s %(message)s",
                         "%Y-%m-%dT%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        record.levelname = record.levelname.lower()
        return _TOKEN.sub(lambda m: m.group(1) + "********", super().format(record))


def setup_logging(level: str = "info", stream: object = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries are chatty at INFO; their warnings still show.
    for name in ("uvicorn.access", "aiosqlite", "asyncio", "amqtt", "transitions", "httpx"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
