"""One strict settings model for netmgr.

Sources, later wins: built-in defaults, the TOML file, then environment
variables ``NETMGR_<SECTION>__<KEY>`` (values parsed as TOML literals, else taken
as strings). Unknown keys are errors. Every problem is collected and reported at
once as ``FILE: section.key: message``; nothing starts on a bad config.

Secrets (SNMP communities and keys, MQTT and InfluxDB credentials, API and
Grafana tokens) are :class:`pydantic.SecretStr`: they print as ``**********``
in ``netmgr config show``, in reprs and in logs. Call ``.get_secret_value()``
only where the secret is handed to the peer.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from netmgr.errors import ConfigError

ENV_PREFIX = "NETMGR_"
DEFAULT_PATHS = (Path("/etc/netmgr/netmgr.toml"), Path("netmgr.toml"))

Secret = SecretStr
# espeak-ng voice names (vi, vi-vn-x-south, vi+f3): never an option, never a path.
VOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+-]{0,39}$")
# The Vietnamese voices of espeak-ng: what the API offers people (the config may name any voice).
VOICES = ("vi", "vi-vn-x-central", "vi-vn-x-south")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DaemonSettings(Section):
    state_dir: Path = Path("/var/lib/netmgr")
    timezone: str = "Asia/Ho_Chi_Minh"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    drain_timeout: float = Field(8.0, gt=0, le=60)
    restart_backoff_max: float = Field(30.0, gt=0, le=600)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name such as Asia/Ho_Chi_Minh") from None
        return v


class DatabaseSettings(Section):
    url: str = Field(
        "",
        description="SQLAlchemy URL; empty means SQLite at {state_dir}/netmgr.db",
    )
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _async_driver(cls, v: str) -> str:
        if v and not v.startswith(("sqlite", "postgresql")):
            raise ValueError("only sqlite:// and postgresql:// URLs are supported")
        return v


class ApiSettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8470, ge=0, le=65535)
    public_url: str = Field("", description="base URL speaker nodes use to fetch media")
    max_body_mb: int = Field(8, ge=1, le=1024, description="largest request body (imports, programs) in "
                             "MB; media uploads have [media] max_mb")


class SnmpSettings(Section):
    enabled: bool = True
    interval: float = Field(60.0, ge=1, le=86400)
    timeout: float = Field(2.0, gt=0, le=60)
    retries: int = Field(1, ge=0, le=10)
    concurrency: int = Field(256, ge=1, le=10000)
    default_community: Secret = Secret("public")
    down_after: int = Field(3, ge=1, le=100)
    up_after: int = Field(1, ge=1, le=100)
    max_repetitions: int = Field(25, ge=1, le=200)


class MqttSettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str = ""
    password: Secret = Secret("")
    client_id: str = "netmgr"
    inbound_username: str = Field("", description="user name of the daemon's subscriber connection "
                                  "(default: username); with mosquitto's use_username_as_clientid, "
                                  "'<username>-in' as `netmgr mqtt render` writes it")
    protocol: Literal["3.1.1", "5"] = "5"
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive: int = Field(30, ge=5, le=3600)
    telemetry_interval: float = Field(30.0, gt=0, le=3600)
    stale_after_missed: int = Field(3, ge=1, le=100)
    ack_timeout: float = Field(10.0, gt=0, le=600)
    command_ttl: float = Field(300.0, ge=1, le=86400)

    @model_validator(mode="after")
    def _tls_files(self) -> MqttSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both or neither")
        return self


class InfluxSettings(Section):
    url: str = Field("", description="empty: no InfluxDB, keep history in the SQLite ring")
    api: Literal["v2", "v1"] = Field(
        "v2",
        description='v2: /api/v2/write (InfluxDB 2.x/3.x, 1.8+, VictoriaMetrics); v1: InfluxDB 1.x /write, '
        'e.g. Debian\'s influxdb 1.6: bucket is then the database, optionally "db/rp", and org is ignored',
    )
    org: str = "netmgr"
    bucket: str = "netmgr"
    username: str = Field("", description='InfluxDB 1.x user, api = "v1" only; its password is token')
    token: Secret = Secret("")
    batch_size: int = Field(5000, ge=1, le=100000)
    flush_interval: float = Field(1.0, gt=0, le=60)
    spool_max_mb: int = Field(512, ge=1, le=1_000_000)
    ring_hours: int = Field(6, ge=1, le=168)

    @field_validator("bucket")
    @classmethod
    def _v1_database(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("api") == "v1" and not v.partition("/")[0]:
            raise ValueError('with api = "v1" bucket is the database: "db" or "db/retention_policy" '
                             "(the database must be named)")
        return v

    @field_validator("username")
    @classmethod
    def _v1_user(cls, v: str, info: ValidationInfo) -> str:
        if v and info.data.get("api") == "v2":
            raise ValueError('username is for api = "v1" (InfluxDB 1.x /write) only; with api = "v2" '
                             'remove it and put "user:password" in token (InfluxDB 1.8), or set api = "v1"')
        if ":" in v:
            raise ValueError("an InfluxDB user name cannot contain ':' (HTTP basic auth)")
        return v

    @field_validator("token")
    @classmethod
    def _v1_password(cls, v: Secret, info: ValidationInfo) -> Secret:
        if v.get_secret_value() and info.data.get("api") == "v1" and info.data.get("username") == "":
            raise ValueError('with api = "v1" token is the password of username: set [influxdb] username too '
                             "(InfluxDB 1.x has no tokens), or leave token empty if auth is off")
        return v


class ZonesSettings(Section):
    # 8 is netmgr.zones.MAX_DEPTH, the deepest any path can be (this module is below zones).
    max_depth: int = Field(6, ge=2, le=8, description="segments of a zone path at most: province, "
                           "commune, village and groups between them")


class BroadcastSettings(Section):
    grace: float = Field(120.0, ge=0, le=3600)


class MediaSettings(Section):
    max_mb: int = Field(50, ge=1, le=4096)
    tts_voice: str = "vi"
    tts_timeout: float = Field(60.0, gt=0, le=3600)

    @field_validator("tts_voice")
    @classmethod
    def _voice_name(cls, v: str) -> str:
        if not VOICE_NAME.match(v):
            raise ValueError(f"{v!r} is not an espeak-ng voice name; use e.g. vi, vi-vn-x-central or "
                             "vi-vn-x-south (espeak-ng --voices=vi lists them)")
        return v


class GrafanaSettings(Section):
    url: str = ""
    token: Secret = Secret("")


class Settings(Section):
    """The whole configuration of a netmgr daemon and CLI."""

    daemon: DaemonSettings = DaemonSettings()
    database: DatabaseSettings = DatabaseSettings()
    api: ApiSettings = ApiSettings()
    snmp: SnmpSettings = SnmpSettings()
    mqtt: MqttSettings = MqttSettings()
    influxdb: InfluxSettings = InfluxSettings()
    broadcast: BroadcastSettings = BroadcastSettings()
    zones: ZonesSettings = ZonesSettings()
    media: MediaSettings = MediaSettings()
    grafana: GrafanaSettings = GrafanaSettings()

    @property
    def database_url(self) -> str:
        """The async SQLAlchemy URL of the state store."""
        url = self.database.url or f"sqlite:///{self.daemon.state_dir / 'netmgr.db'}"
        if url.startswith("sqlite://") and "+aiosqlite" not in url:
            url = url.replace("sqlite://", "sqlite+aiosqlite://", 1)
        if url.startswith(("postgresql://", "postgres://")):
            url = "postgresql+asyncpg://" + url.split("://", 1)[1]
        return url

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.daemon.timezone)


def find_config(explicit: str | os.PathLike[str] | None) -> Path | None:
    """The config file to read: --config, else NETMGR_CONFIG, else the default paths."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if env:
        return Path(env)
    for p in DEFAULT_PATHS:
        if p.is_file():
            return p
    return None


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _env_overrides(environ: dict[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Nested overrides from NETMGR_<SECTION>__<KEY>, and which variable set each key."""
    data: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        data.setdefault(section, {})[key] = _parse_env_value(raw)
        origin[f"{section}.{key}"] = name
        origin.setdefault(section, name)  # an unknown section is reported on its own
    return data, origin


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _format_errors(exc: ValidationError, origin: dict[str, str]) -> list[str]:
    problems = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling (see netmgr.example.toml)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        where = f" (from {origin[path]})" if path in origin else ""
        problems.append(f"{path or '(top level)'}: {msg}{where}")
    return problems


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: dict[str, str] | None = None,
) -> tuple[Settings, Path | None]:
    """Read, merge and validate the configuration.

    Returns the settings and the file they came from (None: defaults and env only).
    Raises :class:`ConfigError` listing every problem at once.
    """
    environ = dict(os.environ if environ is None else environ)
    cfg_path = find_config(path)
    source = str(cfg_path) if cfg_path else "(defaults)"
    data: dict[str, Any] = {}
    if cfg_path is not None:
        try:
            text = cfg_path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(source, [f"cannot read the config file: {e.strerror}"]) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(source, [f"not valid TOML: {e}"]) from None
    env_data, origin = _env_overrides(environ)
    data = _merge(data, env_data)
    try:
        return Settings.model_validate(data), cfg_path
    except ValidationError as e:
        raise ConfigError(source, _format_errors(e, origin)) from None


def mask_url(value: str) -> str:
    """``scheme://user:PASSWORD@host/...`` with the password shown as ``**********`` (any URL,
    any scheme); other strings unchanged."""
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in value or "@" not in value:
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if parts.password is None:
        return value
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:**********@{host}"))


def redacted_dict(settings: Settings) -> dict[str, Any]:
    """Settings as plain data with every secret shown as ``**********`` (empty stays empty),
    and the password of every URL in them (a database, InfluxDB or Grafana URL) masked."""

    def walk(model: BaseModel) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in type(model).model_fields:
            v = getattr(model, name)
            if isinstance(v, BaseModel):
                out[name] = walk(v)
            elif isinstance(v, SecretStr):
                out[name] = "**********" if v.get_secret_value() else ""
            elif isinstance(v, Path):
                out[name] = str(v)
            elif isinstance(v, str):
                out[name] = mask_url(v)
            elif isinstance(v, list | tuple):
                out[name] = [mask_url(x) if isinstance(x, str) else x for x in v]
            else:
                out[name] = v
        return out

    return walk(settings)
