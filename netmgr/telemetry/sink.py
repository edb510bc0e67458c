"""InfluxDB writes (gzip, nanoseconds) with errors sorted at the boundary.

Two APIs (``[influxdb] api``):

- ``v2`` (default): ``{url}/api/v2/write`` with org, bucket and token, through
  influxdb-client's async client (InfluxDB 2.x/3.x, 1.8+, VictoriaMetrics).
- ``v1``: InfluxDB 1.x's ``POST {url}/write?db=DB[&rp=RP]&precision=ns`` through
  aiohttp (Debian's influxdb 1.6 has no /api/v2): bucket is the database
  ("db" or "db/rp"), org is ignored, HTTP basic auth with username and token
  (the password) when a username is set. Its answers are sorted exactly as v2's.

- Retryable (:class:`SinkRetryable`): connection refused/reset, DNS, timeouts,
  HTTP 5xx, 429 and 408: the batch is kept (spool) and retried with backoff;
  ``retry_after`` carries the server's Retry-After when it sends one.
- Configuration (:class:`SinkRetryable` with ``kind="config"``): 401, 403, 404
  (wrong token, no write permission, unknown org or bucket; v1: wrong user or
  password, unknown database, and 1.x's 500 for an unknown retention policy)
  and other unexpected statuses: nothing is dropped (retrying after the
  operator fixes the config or the server works), and the message names url,
  org and bucket (v1: url and database; never the token or password) and says
  what to check.
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

import base64
import gzip
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from netmgr.errors import SinkRefused, SinkRetryable
from netmgr.telemetry.lineproto import drop_field

log = logging.getLogger(__name__)

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
APIS = ("v2", "v1")
_CONFLICT = re.compile(r'input field \\?"(?P<field>.+?)\\?" on measurement \\?"(?P<m>.+?)\\?" '
                       r"is type (?P<new>\w+), already exists as type (?P<old>\w+)")
_KINDS = {"integer": "i", "float": "f", "string": "s", "boolean": "b", "unsigned": "u"}
_V1_HEADERS = {"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"}


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


def _v1_error(body: bytes, headers: Any) -> str:
    """InfluxDB 1.x's message: the JSON body's "error" (unescaped), else X-Influxdb-Error, else the body."""
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        text = parsed["error"]
    elif not text.strip() and headers is not None:
        text = headers.get("X-Influxdb-Error", "") or ""
    return " ".join(text.split())[:500]


class InfluxSink:
    """Writes line-protocol batches to ``{url}/api/v2/write`` (org, bucket, token, gzip), or with
    ``api="v1"`` to InfluxDB 1.x's ``{url}/write`` (database "db" or "db/rp", username and password)."""

    def __init__(self, url: str, org: str, bucket: str, token: str, *, timeout: float = 10.0,
                 learn: Callable[[str, str, str], None] | None = None, api: str = "v2",
                 username: str = "") -> None:
        if api not in APIS:
            raise ValueError(f"unknown InfluxDB API {api!r}; use one of {', '.join(APIS)}")
        if username and api != "v1":
            raise ValueError('username is for api="v1" only')
        self.url = url.rstrip("/")
        self.api = api
        self.org = org
        self.bucket = bucket
        self.username = username
        self.database, _, self.retention_policy = bucket.partition("/")
        self._token = token
        self.timeout = timeout
        self.learn = learn
        self.lines_dropped = 0
        self.fields_dropped = 0
        self.requests = 0
        self._client: Any = None
        self._api: Any = None
        self._session: Any = None
        self._refused: list[tuple[SinkRefused, str]] = []

    @property
    def where(self) -> str:
        if self.api == "v1":
            rp = f", retention policy {self.retention_policy!r}" if self.retention_policy else ""
            return f"InfluxDB 1.x {self.url} (database {self.database!r}{rp})"
        return f"InfluxDB {self.url} (org {self.org!r}, bucket {self.bucket!r})"

    async def open(self) -> InfluxSink:
        if self.api == "v1":
            import aiohttp

            headers = {}
            if self.username:  # HTTP basic auth: never in the URL, so never in an error message
                cred = base64.b64encode(f"{self.username}:{self._token}".encode()).decode("ascii")
                headers["Authorization"] = f"Basic {cred}"
            self._session = aiohttp.ClientSession(headers=headers,
                                                  timeout=aiohttp.ClientTimeout(total=self.timeout))
            return self

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
        self._api = None  # a write after close is refused as "closed", not an aiohttp RuntimeError
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def __aenter__(self) -> InfluxSink:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ one request

    async def _post(self, payload: bytes) -> None:
        """One write request; raises SinkRetryable or SinkRefused."""
        if self.api == "v1":
            await self._post_v1(payload)
            return
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
                raise SinkRefused(status, text) from None
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

    async def _post_v1(self, payload: bytes) -> None:
        """One InfluxDB 1.x ``/write``; the same taxonomy as v2 (statuses, messages, hints)."""
        import aiohttp

        if self._session is None:
            raise SinkRetryable(f"{self.where}: the sink is closed", "config")
        self.requests += 1
        params = {"db": self.database, "precision": "ns"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        body = gzip.compress(payload, compresslevel=GZIP_LEVEL, mtime=0)
        try:
            async with self._session.post(f"{self.url}/write", params=params, data=body, headers=_V1_HEADERS,
                                          allow_redirects=False) as r:
                if 200 <= r.status < 300:
                    return
                status, headers, raw = r.status, r.headers, await r.read()
        except TimeoutError:
            raise SinkRetryable(f"{self.where}: no answer within {self.timeout:g}s", "timeout") from None
        except (aiohttp.ClientError, OSError) as e:
            reason = str(e) or type(e).__name__
            raise SinkRetryable(f"{self.where}: cannot write: {reason}", "unavailable") from None
        text = _v1_error(raw, headers)
        lowered = text.lower()
        if status == 413 or (status in BAD_DATA_STATUS and any(h in lowered for h in DATA_ERROR_HINTS)):
            raise SinkRefused(status, text)
        if status in BAD_DATA_STATUS:
            raise SinkRetryable(f"{self.where} refused the request itself (HTTP {status}: {text}), not "
                                "lines of it: check [influxdb] url and any proxy in between; points are "
                                "kept in the spool", "config")
        if status == 404 and "database not found" in lowered:
            hint = (f"the database {self.database!r} does not exist: create it (CREATE DATABASE "
                    f'"{self.database}") or check [influxdb] bucket')
        elif status == 500 and "retention policy not found" in lowered:
            hint = (f"the retention policy {self.retention_policy!r} does not exist in database "
                    f"{self.database!r}: create it or check [influxdb] bucket (\"db/rp\")")
        elif status in RETRYABLE_STATUS:
            raise SinkRetryable(f"{self.where} answered HTTP {status}: {text}", "server",
                                _retry_after(headers))
        else:
            hint = {401: "the user name or password was refused: check [influxdb] username and token",
                    403: f"this user may not write to {self.database!r}: GRANT WRITE ON "
                         f'"{self.database}" TO the user, or check [influxdb] username',
                    404: "no InfluxDB 1.x /write there: check [influxdb] url and api"}.get(
                status, "check [influxdb] url and api")
        raise SinkRetryable(f"{self.where} answered HTTP {status} ({hint}): {text}; "
                            "points are kept in the spool", "config")

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
        except SinkRefused as e:
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

    async def _repair(self, lines: list[str], err: SinkRefused) -> int:
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
            except SinkRefused as again:
                err = again
        return await self._bisect(lines, err)

    async def _bisect(self, lines: list[str], err: SinkRefused) -> int:
        """Find the refused lines by halving; write the rest. Returns the number dropped."""
        if len(lines) == 1:
            return await self._single(lines[0], err)
        mid = len(lines) // 2
        dropped = 0
        for half in (lines[:mid], lines[mid:]):
            try:
                await self._post("\n".join(half).encode())
            except SinkRefused as e:
                dropped += await self._bisect(half, e)
        return dropped

    async def _single(self, line: str, err: SinkRefused) -> int:
        """One refused line: without the conflicting field if the server named one, else dropped."""
        conflict = self._learn_conflict(err.message)
        if conflict is not None:
            fixed, removed = drop_field([line], *conflict)
            if removed and fixed:
                try:
                    await self._post(fixed[0].encode())
                    self.fields_dropped += removed
                    return 0
                except SinkRefused as e:
                    err = e
        self.lines_dropped += 1
        self._refused.append((err, line))
        return 1
