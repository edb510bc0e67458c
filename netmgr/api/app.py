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
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from netmgr import __version__
from netmgr.api.deps import Unauthorized
from netmgr.errors import Conflict, Forbidden, NetmgrError, NotFound, UsageError

log = logging.getLogger("netmgr.api")
STATUS = {Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409, UsageError: 422}


def _status_of(exc: NetmgrError) -> int:
    for cls, code in STATUS.items():
        if isinstance(exc, cls):
            return code
    return 400


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

    @app.exception_handler(NetmgrError)
    async def netmgr_error(_: Request, exc: NetmgrError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        detail = getattr(exc, "problems", None)
        return JSONResponse({"error": str(exc).splitlines()[0] if detail else str(exc), "detail": detail},
                            status_code=_status_of(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        msg = "; ".join(f"{_loc(e['loc'])}: {e['msg']}" for e in errs[:10])
        detail = [{"loc": _loc(e["loc"]), "msg": e["msg"]} for e in errs]
        return JSONResponse({"error": msg, "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail), "detail": None}, status_code=exc.status_code)

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

    app.include_router(routes_zones.router, prefix="/api/v1")
    app.include_router(routes_admin.router, prefix="/api/v1")
    app.include_router(routes_inventory.router, prefix="/api/v1")
    app.include_router(routes_radio.router, prefix="/api/v1")
    app.include_router(routes_broadcast.router, prefix="/api/v1")
    app.include_router(routes_telemetry.router, prefix="/api/v1")
    app.include_router(routes_media.router)  # /media/<id> (public, for nodes) and /api/v1/media
    return app
