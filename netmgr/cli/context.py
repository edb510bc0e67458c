"""What every CLI command shares: settings (loaded on demand), the API client, the daemon's
time zone and zone names, echo and JSON output (tables and fields: :mod:`netmgr.cli.output`)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from netmgr.humanize import zone_labels
from netmgr.text import safe_text

if TYPE_CHECKING:
    from netmgr.cli.client import ApiClient
    from netmgr.config import Settings

DEFAULT_SERVER = "http://127.0.0.1:8470"


def credentials_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "netmgr" / "credentials.json"


def load_saved_credentials() -> dict[str, str]:
    p = credentials_path()
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def save_credentials(server: str, token: str) -> Path:
    p = credentials_path()
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Create with 0600 before writing: the token must never be world-readable, even briefly.
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"server": server, "token": token}, f)
    return p


@dataclass
class CliContext:
    config_path: str | None = None
    server: str | None = None
    token: str | None = None
    debug: bool = False
    _settings: Settings | None = field(default=None, repr=False)
    _client: ApiClient | None = field(default=None, repr=False)
    _tz: tzinfo | None = field(default=None, repr=False)
    _zones: dict[str, str] | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        """The validated settings; a bad config raises ConfigError (exit 2)."""
        if self._settings is None:
            from netmgr.config import load_settings

            self._settings, _ = load_settings(self.config_path)
        return self._settings

    def client(self) -> ApiClient:
        """The API client (one per command run)."""
        if self._client is None:
            from netmgr.cli.client import ApiClient

            saved = load_saved_credentials()
            server = self.server or saved.get("server") or DEFAULT_SERVER
            token = self.token or saved.get("token")
            self._client = ApiClient(server, token)
        return self._client

    def tz(self) -> tzinfo:
        """The zone times are shown in: the daemon's ``[daemon] timezone``, asked of the API this
        command talks to (``GET /api/v1/info``), so a remote daemon's times read as its officials
        read them. Only an API without that route (an older daemon) falls back to the local config."""
        if self._tz is None:
            from zoneinfo import ZoneInfo

            from netmgr.errors import ApiError

            try:
                self._tz = ZoneInfo(self.client().get("/api/v1/info")["timezone"])
            except ApiError as e:
                if e.status != 404:
                    raise
                self._tz = self.local_tz()
        return self._tz

    def local_tz(self) -> tzinfo:
        """The zone of commands that run here without an API (the local config's)."""
        return self.settings().tz

    def zone_name(self, path: str | None) -> str:
        """A zone as a person reads it: its display name (the parent's added where two share a
        name), from the API's zone tree; the path itself if the tree does not have it."""
        if not path:
            return ""
        if self._zones is None:
            self._zones = zone_labels(self.client().get("/api/v1/zones")["items"])
        return self._zones.get(path) or path


def pass_ctx(f: Any) -> Any:
    return click.pass_obj(f)


def echo(message: Any = "", **kwargs: Any) -> None:
    """People output: ``click.echo`` with every control and bidi character shown as an escape,
    so a name stored by someone else cannot retitle or recolour the reader's terminal."""
    click.echo(safe_text(message), **kwargs)


def echo_json(data: Any) -> None:
    """Machine output: JSON on stdout, UTF-8 kept as is (Vietnamese names stay readable); the
    C1 controls and bidi overrides json.dumps leaves raw are written as \\u escapes (same JSON)."""
    text = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write(safe_text(text, json_escapes=True) + "\n")


def json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)
