"""The daemon's ``api`` service: the HTTP API (FastAPI under uvicorn) on ``[api] host:port``,
on a socket the service binds itself (a taken port is one clear error, not a traceback)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from netmgr.errors import NetmgrError
from netmgr.runtime import DaemonContext, Service

log = logging.getLogger(__name__)


class ApiService(Service):
    """The HTTP API (FastAPI under uvicorn) on ``[api] host:port``."""

    name = "api"

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        self.bound: tuple[str, int] | None = None

    def _bind(self) -> socket.socket:
        host, port = self.ctx.settings.api.host, self.ctx.settings.api.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            raise NetmgrError(
                f"api: cannot listen on {host}:{port}: {e.strerror}; "
                "stop the other process or set [api] port"
            ) from None
        sock.listen(512)
        sock.setblocking(False)
        self.bound = sock.getsockname()[:2]
        return sock

    async def run(self) -> None:
        import uvicorn

        from netmgr.api.app import create_app

        service = self

        class _Server(uvicorn.Server):
            # The daemon owns the signals; uvicorn must not install its own.
            @contextlib.contextmanager
            def capture_signals(self):  # type: ignore[no-untyped-def]
                yield

            async def startup(self, sockets=None):  # type: ignore[no-untyped-def]
                await super().startup(sockets=sockets)
                service.ready.set()

        app = create_app(self.ctx.settings, self.ctx.sessions, self.ctx.health)
        app.state.services = self.ctx.services
        sock = self._bind()
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off",
            timeout_graceful_shutdown=3, server_header=False,
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="api:uvicorn")
        log.info("api listening url=http://%s:%d", *self.bound)  # type: ignore[misc]
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
            raise
        finally:
            sock.close()
        raise NetmgrError("api: the HTTP server stopped by itself")

    def health(self) -> dict[str, Any]:
        return {"listen": f"{self.bound[0]}:{self.bound[1]}"} if self.bound else {}
