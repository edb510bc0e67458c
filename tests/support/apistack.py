"""The API test harness: an in-process API over a real store with users of every kind
(``api_stack``), and the API served by a real uvicorn in a thread (``ApiThread``).

``api_stack()`` yields an :class:`ApiStack`: an httpx client on the app (ASGI, no socket), the
tokens of an admin, an operator of commune A (``an``), an operator of commune B (``binh``), an
operator of A with the emergency permission (``em``), a viewer (``vy``) and a disabled user
(``old``), and helpers to read the audit log and the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from netmgr.api.app import create_app
from netmgr.auth import create_user
from netmgr.config import Settings
from netmgr.store import db

from .waiting import wait_for

PROVINCE = "binh-phuoc"
DISTRICT = "binh-phuoc/dong-xoai"
COMMUNE_A = "binh-phuoc/dong-xoai/tan-phu"
COMMUNE_B = "binh-phuoc/dong-xoai/tien-thanh"
ZONES_YAML = """\
- {path: binh-phuoc, name: "Bình Phước"}
- {path: binh-phuoc/dong-xoai, name: "Đồng Xoài", kind: huyen-cu}
- {path: binh-phuoc/dong-xoai/tan-phu, name: "Tân Phú"}
- {path: binh-phuoc/dong-xoai/tien-thanh, name: "Tiến Thành"}
"""
USERS = [  # name, role, zones, emergency
    ("an", "operator", [COMMUNE_A], False),
    ("binh", "operator", [COMMUNE_B], False),
    ("em", "operator", [COMMUNE_A], True),
    ("vy", "viewer", [], False),
    ("old", "viewer", [], False),
]


@dataclass
class ApiStack:
    client: httpx.AsyncClient
    app: Any
    sessions: Any
    settings: Settings
    tokens: dict[str, str] = field(default_factory=dict)

    def as_(self, who: str | None) -> dict[str, str]:
        """The Authorization header of ``who`` (None: no header at all)."""
        return {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}

    async def call(self, method: str, path: str, who: str | None = "admin", **kw: Any) -> httpx.Response:
        headers = {**self.as_(who), **kw.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kw)

    async def audit(self, **params: Any) -> list[dict[str, Any]]:
        r = await self.call("GET", "/api/v1/audit", params={"limit": 10000, **params})
        assert r.status_code == 200, r.text
        return r.json()["items"]


@contextlib.asynccontextmanager
async def api_stack(tmp_path: Path, url: str | None = None, settings: dict[str, Any] | None = None,
                    services: dict[str, Any] | None = None) -> AsyncIterator[ApiStack]:
    """The app over ``url`` (default: SQLite in ``tmp_path``), zones A and B, every kind of user."""
    url = url or f"sqlite+aiosqlite:///{tmp_path / 'netmgr.db'}"
    cfg: dict[str, Any] = {"daemon": {"state_dir": str(tmp_path / "state")}}
    for section, values in (settings or {}).items():
        cfg.setdefault(section, {}).update(values)
    conf = Settings.model_validate(cfg)
    engine = db.create_engine(url)
    await db.upgrade(engine)
    sessions = db.sessionmaker(engine)
    tokens: dict[str, str] = {}
    async with sessions() as s:
        _, tokens["admin"] = await create_user(s, "root", "admin", [], actor="local:test")
        await s.commit()
    app = create_app(conf, sessions, lambda: {"status": "ok", "services": {}})
    app.state.services.update(services or {})
    transport = httpx.ASGITransport(app=app, client=("10.9.8.7", 5555))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api", timeout=60) as client:
            st = ApiStack(client, app, sessions, conf, tokens)
            r = await st.call("POST", "/api/v1/zones/import", json={"format": "yaml", "text": ZONES_YAML})
            assert r.status_code == 200, r.text
            for name, role, zones, emergency in USERS:
                r = await st.call("POST", "/api/v1/users", json={"name": name, "role": role, "zones": zones,
                                                                  "can_emergency": emergency})
                assert r.status_code == 201, r.text
                tokens[name] = r.json()["token"]
            assert (await st.call("POST", "/api/v1/users/old/disable")).status_code == 200
            yield st
    finally:
        await engine.dispose()


class ApiThread:
    """create_app under uvicorn.Server, in a thread with its own event loop."""

    def __init__(self, settings: Settings, port: int, services: Any = None) -> None:
        """``services``: a callable returning {name: service} to run in the API's loop
        (e.g. a RadioService without a daemon), as the daemon gives its services to the API."""
        self.settings, self.port, self.make_services = settings, port, services
        self.server = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="api", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:  # noqa: BLE001 - reported by the fixture
            self.error = e

    async def _serve(self) -> None:
        import uvicorn

        from netmgr.api.app import create_app
        from netmgr.store import db

        engine = db.create_engine(self.settings.database_url)
        await db.upgrade(engine)
        app = create_app(self.settings, db.sessionmaker(engine), lambda: {"status": "ok", "services": {}})
        services = self.make_services() if self.make_services else {}
        app.state.services.update(services)
        tasks = [asyncio.create_task(svc.run()) for svc in services.values()]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        try:
            await self.server.serve()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await engine.dispose()

    def start(self) -> None:
        self.thread.start()
        wait_for(lambda: self.error or (self.server is not None and self.server.started), 30,
                 f"uvicorn on 127.0.0.1:{self.port}")
        if self.error:
            raise self.error

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "uvicorn did not stop within 10 s"
