"""Broker connection settings shared by the radio service, the simulator and the CLI.

A broker is given either by the ``[mqtt]`` config section or by a URL
``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS, default port
8883). Passwords are kept in :class:`~netmgr.config.Secret` and never logged.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from netmgr.errors import UsageError


@dataclass(frozen=True)
class Broker:
    """Where and how to connect; ``describe()`` is safe to log (no password)."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    protocol: str = "5"      # "5" or "3.1.1"
    # The identity of the daemon's inbound (subscriber) connection when it is not ``username``:
    # with mosquitto's use_username_as_clientid each connection needs its own user name
    # (docs/operations.md, "Client ids").
    inbound_username: str | None = None
    keepalive: int = 30

    def describe(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``aiomqtt.Client`` (hostname, port, credentials, TLS, protocol)."""
        import aiomqtt

        return {
            "hostname": self.host, "port": self.port, "username": self.username or None,
            "password": self.password or None, "tls_context": self.ssl_context(),
            "protocol": aiomqtt.ProtocolVersion.V5 if self.protocol == "5" else aiomqtt.ProtocolVersion.V311,
            "keepalive": self.keepalive,
        }

    @property
    def v5(self) -> bool:
        return self.protocol == "5"


def from_settings(mqtt: Any) -> Broker:
    """The ``[mqtt]`` section as a Broker."""
    return Broker(host=mqtt.host, port=mqtt.port, username=mqtt.username or None,
                  password=mqtt.password.get_secret_value() or None, tls=mqtt.tls, ca_file=mqtt.ca_file,
                  cert_file=mqtt.cert_file, key_file=mqtt.key_file, protocol=mqtt.protocol,
                  keepalive=mqtt.keepalive, inbound_username=mqtt.inbound_username or None)


def from_url(url: str, *, ca_file: Path | None = None, protocol: str = "5") -> Broker:
    """``mqtt://user:pass@host:1883`` or ``mqtts://host:8883`` as a Broker; UsageError if malformed."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise UsageError(f"broker URL {url.split('@')[-1]!r}: use mqtt://host:port or mqtts://host:port")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise UsageError(f"broker URL {url.split('@')[-1]!r}: the port is not a number") from None
    if not parts.hostname:
        raise UsageError(f"broker URL {url.split('@')[-1]!r}: no host")
    return Broker(host=parts.hostname, port=port,
                  username=unquote(parts.username) if parts.username else None,
                  password=unquote(parts.password) if parts.password else None,
                  tls=tls, ca_file=ca_file, protocol=protocol)
