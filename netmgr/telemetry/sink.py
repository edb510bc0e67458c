"""InfluxDB v2 write API (influxdb-client's async client, gzip) with errors sorted at the boundary.

- Retryable (:class:`SinkRetryable`): connection refused/reset, DNS, timeouts,
  HTTP 5xx, 429 and 408: the batch is kept (spool) and retried with backoff;
  ``retry_after`` carries the server's Retry-After when it sends one.
- Configuration (:class:`SinkRetryable` with ``kind="config"``): 401, 403, 404
  (wrong token, no write permission, unknown org or bucket) and other
  unexpected statuses: nothing is dropped (retrying after the operator fixes
  the config or the server works), and the message names url, org and bucket
  (never the token) and says what to check.
- Bad data (400 or 422 whose message is about lines, fields, parsing or
  retention; 413): some lines of the batch are refused (a 400 about the request
  itself, e.g. a proxy that broke the gzip body, is a configuration error). A field type
  conflict the server names ("input field "x" on measurement "m" is type
  float, already exists as type integer") is repaired by dropping that field
  from the lines that carry the wrong type (the encoder learns the server's
  type, so later points lose that one field, not the point); anything else is
  found by bisecting the batch, so only the refused lines are dropped (counted
  in ``lines_dropped``) and their neighbours are written. InfluxDB writes the
  good lines of a partial write; writing them again while bisecting is
  harmless (same series and timestamp: overwritten).
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Callable
from typing import Any

from netmgr.errors import TelemetryError
from netmgr.telemetry.lineproto import drop_field

log = logging.getLogger("netmgr.telemetry")

# The client gzips at level 9: ~4 µs of CPU per point for bodies ~1.5x smaller than level 1
# (~0.8 µs per point, still ~11x smaller than plain line protocol). CPU is the scarcer resource.
GZIP_LEVEL = 1
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
BAD_DATA_STATUS = frozenset({400, 413, 422})
# A 400/422 is about the lines only if the server says so; anything else ("gzip: invalid
# header" from a proxy that decompressed the body, a missing parameter) is about the
# request: bisecting would drop every good line of it.
DATA_ERROR_HINTS = ("partial write", "unable to parse", "failed to parse", "line protocol", "on line",
                    "type conflict", "beyond retention", "invalid field", "invalid tag", "invalid timestamp",
                    "invalid number", "bad timestamp", "out of range", "max-values-per-tag", "max-series")
REPAIR_ROUNDS = 8
_CONFLICT = re.compile(r'input field \\?"(?P<field>.+?)\\?" on measurement \\?"(?P<m>.+?)\\?" '
                       r"is type (?P<new>\w+), already exists as type (?P<old>\w+)")
_KINDS = {"integer": "i", "float": "f", "string": "s", "boolean": "b", "unsigned": "u"}


class SinkRetryable(TelemetryError):
    """The write did not happen; keep the batch and try again later."""

    def __init__(self, message: str, kind: str = "unavailable", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind  # unavailable | timeout | server | config
        self.retry_after = retry_after


class _BadData(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _retry_after(headers: Any) -> float | None:
    try:
        v = headers.get("Retry-After") if headers is not None else None
        return float(v) if v else None
    except (TypeError, ValueError):
        return None


def _body_text(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = str(body or getattr(e, "message", "") or getattr(e, "reason", "") or "")
    return " ".join(text.split())[:500]


class InfluxSink:
    """Writes line-protocol batches to ``{url}/api/v2/write`` (org, bucket, token, gzip)."""

    def __init__(self, url: str, org: str, bucket: str, token: str, *, timeout: float = 10.0,
                 learn: Callable[[str, str, str], None] | None = None) -> None:
        self.url = url.rstrip("/")
        self.org = org
        self.bucket = bucket
        self._token = token
        self.timeout = timeout
        self.learn = learn
        self.lines_dropped = 0
        self.fields_dropped = 0
        self.requests = 0
        self._client: Any = None
        self._api: Any = None
        self._refused: list[tuple[_BadData, str]] = []

    @property
    def where(self) -> str:
        return f"InfluxDB {self.url} (org {self.org!r}, bucket {self.bucket!r})"

    async def open(self) -> InfluxSink:
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

        self._client = InfluxDBClientAsync(url=self.url, token=self._token or None, org=self.org,
                                           timeout=int(self.timeout * 1000), enable_gzip=True)
        conf = self._client.conf
        default_body = conf.update_request_body

        def body(path: str, data: Any) -> Any:
            if path == "/api/v2/write" and conf.enable_gzip and isinstance(data, bytes):
                return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
            return default_body(path, data)

        conf.update_request_body = body  # this client only: same header, cheaper compression
        self._api = self._client.write_api()
        return self

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def __aenter__(self) -> InfluxSink:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ one request

    async def _post(self, payload: bytes) -> None:
        """One write request; raises SinkRetryable or _BadData."""
        import aiohttp
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        if self._api is None:
            raise SinkRetryable(f"{self.where}: the sink is closed", "config")
        self.requests += 1
        try:
            await self._api.write(bucket=self.bucket, org=self.org, record=payload,
                                  write_precision=WritePrecision.NS)
        except ApiException as e:
            status = e.status or 0
            text = _body_text(e)
            lowered = text.lower()
            if status == 413 or (status in BAD_DATA_STATUS and any(h in lowered for h in DATA_ERROR_HINTS)):
                raise _BadData(status, text) from None
            if status in BAD_DATA_STATUS:
                raise SinkRetryable(f"{self.where} refused the request itself (HTTP {status}: {text}), not "
                                    "lines of it: check [influxdb] url and any proxy in between; points are "
                                    "kept in the spool", "config") from None
            if status in RETRYABLE_STATUS:
                raise SinkRetryable(f"{self.where} answered HTTP {status}: {text}", "server",
                                    _retry_after(getattr(e, "headers", None))) from None
            hint = {401: "the token was refused: check [influxdb] token",
                    403: "the token may not write to this bucket: check its permissions",
                    404: "the org or bucket does not exist: check [influxdb] org and bucket"}.get(
                status, "check [influxdb] url")
            raise SinkRetryable(f"{self.where} answered HTTP {status} ({hint}): {text}; "
                                "points are kept in the spool", "config") from None
        except TimeoutError:
            raise SinkRetryable(f"{self.where}: no answer within {self.timeout:g}s", "timeout") from None
        except (aiohttp.ClientError, OSError) as e:
            reason = str(e) or type(e).__name__
            raise SinkRetryable(f"{self.where}: cannot write: {reason}", "unavailable") from None

    # ------------------------------------------------------------------ a batch

    async def write(self, payload: bytes) -> int:
        """Write a batch; returns how many of its lines were refused and dropped.

        Raises :class:`SinkRetryable` when nothing can be said about the batch yet
        (keep all of it).
        """
        if not payload:
            return 0
        try:
            await self._post(payload)
            return 0
        except _BadData as e:
            lines = payload.decode("utf-8", "replace").split("\n")
            self._refused = []
            dropped = await self._repair(lines, e)
            if self._refused:
                first_err, first_line = self._refused[0]
                log.warning("telemetry: %s refused %d of %d lines of a batch (HTTP %d: %s); dropped them, "
                            "wrote the rest; first refused line: %s", self.where, dropped, len(lines),
                            first_err.status, first_err.message[:300], first_line[:200])
            return dropped

    def _learn_conflict(self, message: str) -> tuple[str, str, str] | None:
        """(measurement, field, stored kind) if the server named a type conflict; the encoder learns it."""
        m = _CONFLICT.search(message)
        if m is None:
            return None
        if self.learn is not None:
            self.learn(m.group("m"), m.group("field"), m.group("old"))
        return m.group("m"), m.group("field"), _KINDS.get(m.group("old"), m.group("old"))

    async def _repair(self, lines: list[str], err: _BadData) -> int:
        """Type conflicts the server names: drop the field, learn its type, retry the batch."""
        for _ in range(REPAIR_ROUNDS):
            conflict = self._learn_conflict(err.message)
            if conflict is None:
                break
            lines, removed = drop_field(lines, *conflict)
            if not removed:
                break
            self.fields_dropped += removed
            log.warning("telemetry: %s stores %s.%s as %s: dropped that field from %d points of a batch "
                        "(later points of another type lose only that field)", self.where, conflict[0],
                        conflict[1], conflict[2], removed)
            if not lines:
                return 0
            try:
                await self._post("\n".join(lines).encode())
                return 0
            except _BadData as again:
                err = again
        return await self._bisect(lines, err)

    async def _bisect(self, lines: list[str], err: _BadData) -> int:
        """Find the refused lines by halving; write the rest. Returns the number dropped."""
        if len(lines) == 1:
            return await self._single(lines[0], err)
        mid = len(lines) // 2
        dropped = 0
        for half in (lines[:mid], lines[mid:]):
            try:
                await self._post("\n".join(half).encode())
            except _BadData as e:
                dropped += await self._bisect(half, e)
        return dropped

    async def _single(self, line: str, err: _BadData) -> int:
        """One refused line: without the conflicting field if the server named one, else dropped."""
        conflict = self._learn_conflict(err.message)
        if conflict is not None:
            fixed, removed = drop_field([line], *conflict)
            if removed and fixed:
                try:
                    await self._post(fixed[0].encode())
                    self.fields_dropped += removed
                    return 0
                except _BadData as e:
                    err = e
        self.lines_dropped += 1
        self._refused.append((err, line))
        return 1
