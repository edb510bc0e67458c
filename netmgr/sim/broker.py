"""The demo's embedded MQTT broker (amqtt, MQTT 3.1.1) with the daemon's client ids reserved.

The demo's simulated nodes connect anonymously (it is a demo on 127.0.0.1), but anyone who
could connect as the daemon's client id would take over its persistent session (MQTT: the
broker drops the older connection with the same id) and receive the nodes' replies in its
place (issue 12, item 13). So the client ids that start with the daemon's client id are
reserved for the daemon's user name and its per-run password; what mosquitto does with
``use_username_as_clientid`` and the rendered ACL (docs/operations.md, "Client ids").
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from amqtt.plugins.base import BaseAuthPlugin

log = logging.getLogger(__name__)


class ReservedClientIds(BaseAuthPlugin):
    """amqtt authentication: client ids starting with ``prefix`` need ``username`` and ``password``;
    the daemon's user name needs its password whatever the client id; everyone else may connect."""

    @dataclass
    class Config:
        prefix: str
        username: str
        password: str

    async def authenticate(self, *, session: Any) -> bool | None:
        cfg = self.context.config
        client_id = session.client_id or ""
        reserved = client_id.startswith(cfg.prefix)
        if not reserved and session.username != cfg.username:
            return True
        ok = (session.username == cfg.username
              and hmac.compare_digest((session.password or "").encode(), cfg.password.encode()))
        if not ok:
            # names the client id, never the password offered
            log.warning("demo broker: refused client id %r as user %r: the daemon's client ids and user "
                        "need the daemon's password", client_id[:64], (session.username or "")[:64])
        return ok


class DemoBroker:
    """``async with DemoBroker(port, prefix, username, password)``: the broker on 127.0.0.1."""

    def __init__(self, port: int, prefix: str, username: str, password: str) -> None:
        from amqtt.broker import Broker

        self._broker = Broker({
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {f"{__name__}.ReservedClientIds": {"prefix": prefix, "username": username,
                                                          "password": password}},
        })

    async def start(self) -> None:
        await self._broker.start()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._broker.shutdown()

    async def __aenter__(self) -> DemoBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
