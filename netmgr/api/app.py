"""The daemon's HTTP API (FastAPI). One door: authorization and the audit log live here.

Errors always have one shape: ``{"error": "one clear line", "detail": ...}`` with
401 (no or bad token), 403 (out of scope: names the zone), 404 (names the id),
409 (duplicate), 422 (bad input: field paths in ``error``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from netmgr import __version__
from netmgr.errors import NetmgrError, Retryable, Unauthorized

log = logging.getLogger(__name__)
MB = 1024 * 1024
RETRY_AFTER = "5"  # seconds: a store failover or a service restart takes about that long


class BodyLimit:
    """Refuse a request body over ``[api] max_body_mb`` with 413, before anything parses it.

    A declared Content-Length over the limit is answered at once; a chunked body is counted
    as it arrives and cut off at the limit (an HTTPException from ``receive`` reaches the
    client as 413 whether FastAPI or a route reads the body). Media uploads stream to disk
    under their own limit ([media] max_mb) and are left alone.
    """

    def __init__(self, app: Any, limit: Callable[[], int]) -> None:
        self.app, self.limit = app, limit

    @staticmethod
    def _exempt(scope: dict[str, Any]) -> bool:
        return scope["method"] == "POST" and scope["path"].rstrip("/") == "/api/v1/media"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        msg = (f"request body over the {limit / MB:g} MB limit ([api] max_body_mb); send a smaller "
               "file (split an import in parts) or raise the limit")
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await JSONResponse({"error": msg, "detail": None}, status_code=413,
                               headers={"Connection": "close"})(scope, receive, send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise StarletteHTTPException(413, msg)
            return message

        await self.app(scope, limited, send)


class ErrorOut(BaseModel):
    """Every error the API answers: one clear line, and what it refers to (field problems, an
    import's lines) or null."""

    error: str = Field(description="one clear line: what is wrong and what to do")
    detail: Any = Field(None, description="field problems [{loc, msg}] (422), an import's line "
                        "problems, or null")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    # Errors are JSON also where the route's own answer is not (programs.ics).
    code: {"model": ErrorOut, "description": text,
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
    for code, text in (
        (400, "a body that is not JSON (or not in the declared content type)"),
        (401, "no token, or an unknown or disabled one"),
        (403, "outside the caller's zones or role (names the zone)"),
        (404, "no such object (or one outside an operator's zones)"),
        (409, "a duplicate, or in use"),
        (413, "request body over [api] max_body_mb (media: [media] max_mb)"),
        (422, "bad input: field paths in error, every problem in detail"),
        (503, "the state store or a service is not reachable now; retry after Retry-After"),
    )}


def store_unreachable(exc: BaseException) -> bool:
    """True for a failure to reach the database (refused, reset, timed out, failing over):
    a 503 the client may retry, not a 500."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, OperationalError | InterfaceError):
            return True
        if isinstance(e, DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, ConnectionError | TimeoutError):
            return True
        if type(e).__module__.startswith("asyncpg") and type(e).__name__ in (
                "CannotConnectNowError", "ConnectionDoesNotExistError", "ConnectionFailureError",
                "AdminShutdownError", "TooManyConnectionsError"):
            return True
    return False


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def create_app(settings: Any, sessions: Any, health: Callable[[], dict[str, Any]]) -> FastAPI:
    """The API app over ``sessions`` (an async_sessionmaker); ``health()`` feeds /healthz."""
    from netmgr.api import (
        routes_admin,
        routes_broadcast,
        routes_inventory,
        routes_media,
        routes_radio,
        routes_telemetry,
        routes_zones,
    )

    app = FastAPI(title="netmgr", version=__version__, docs_url="/docs", redoc_url=None)
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.services = {}  # the daemon's services by name (radio, ...), set by ApiService
    app.add_middleware(BodyLimit, limit=lambda: app.state.settings.api.max_body_mb * MB)

    @app.exception_handler(NetmgrError)
    async def netmgr_error(_: Request, exc: NetmgrError) -> JSONResponse:
        headers = ({"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized)
                   else {"Retry-After": RETRY_AFTER} if isinstance(exc, Retryable) else None)
        detail = getattr(exc, "problems", None)
        return JSONResponse({"error": str(exc).splitlines()[0] if detail else str(exc), "detail": detail},
                            status_code=exc.http_status, headers=headers)  # netmgr.errors

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        msg = "; ".join(f"{_loc(e['loc'])}: {e['msg']}" for e in errs[:10])
        detail = [{"loc": _loc(e["loc"]), "msg": e["msg"]} for e in errs]
        return JSONResponse({"error": msg, "detail": detail}, status_code=422)

    allow: list[tuple[Any, set[str]]] = []  # (path regex, methods), from the OpenAPI document

    def allowed(path: str) -> set[str]:
        """Every method some route serves at ``path`` (Starlette's 405 names only the first
        route's, and GET /zones and POST /zones are two routes)."""
        if not allow:
            for p, ops in app.openapi()["paths"].items():
                methods = {m.upper() for m in ops} | ({"HEAD"} if "get" in ops else set())
                # The document drops Starlette's ":path" convertor; a zone path (the one parameter
                # netmgr routes with it, always named "path") spans slashes.
                allow.append((compile_path(p.replace("{path}", "{path:path}"))[0], methods))
        return {m for rx, ms in allow if rx.match(path) for m in ms}

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Keeps the exception's headers: a 405 says which methods the path allows (Allow).
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            given = {m.strip() for m in headers.get("Allow", "").split(",") if m.strip()}
            methods = allowed(request.url.path) | given
            headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse({"error": str(exc.detail), "detail": None}, status_code=exc.status_code,
                            headers=headers or None)

    async def store_error(request: Request, exc: Exception) -> JSONResponse:
        if not store_unreachable(exc):
            return await unexpected(request, exc)
        log.warning("state store unreachable method=%s path=%s error=%s", request.method,
                    request.url.path, type(exc).__name__)
        return JSONResponse({"error": "the state store is unreachable; retry shortly (the "
                             "daemon's log and /healthz say more)", "detail": None},
                            status_code=503, headers={"Retry-After": RETRY_AFTER})

    # Registered by class (not under Exception), so the 503 is the answer and nothing re-raises.
    from sqlalchemy.exc import DBAPIError

    app.add_exception_handler(DBAPIError, store_error)
    app.add_exception_handler(OSError, store_error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The details go to the log, not to the caller (they may name hosts or SQL).
        log.error("unhandled error method=%s path=%s error=%s", request.method, request.url.path,
                  type(exc).__name__, exc_info=exc)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the daemon's log",
                             "detail": None}, status_code=500)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        data = dict(health())
        try:
            async with sessions() as s:
                await s.execute(text("select 1"))
            data["store"] = "ok"
        except Exception as e:  # noqa: BLE001 - health reports, it does not fail
            data["store"] = f"error: {type(e).__name__}"
            data["status"] = "degraded"
        data.setdefault("status", "ok")
        return JSONResponse(data, status_code=200 if data["status"] == "ok" else 503)

    app.include_router(routes_zones.router, prefix="/api/v1", responses=ERROR_RESPONSES)
    app.include_router(routes_admin.router, prefix="/api/v1", responses=ERROR_RESPONSES)
    app.include_router(routes_inventory.router, prefix="/api/v1", responses=ERROR_RESPONSES)
    app.include_router(routes_radio.router, prefix="/api/v1", responses=ERROR_RESPONSES)
    app.include_router(routes_broadcast.router, prefix="/api/v1", responses=ERROR_RESPONSES)
    app.include_router(routes_telemetry.router, prefix="/api/v1", responses=ERROR_RESPONSES)
    # /media/<id> (public, for nodes) and /api/v1/media
    app.include_router(routes_media.router, responses=ERROR_RESPONSES)
    return app
