"""SQLAlchemy models of the state store.

Times are stored in UTC (naive in the database, aware in Python: see
:class:`UTCDateTime`). Secrets that netmgr must hand to peers (SNMP communities
and keys) are stored as given, because polling needs them in clear; keep the
database file private (the systemd unit's StateDirectory is mode 0700).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database (SQLite has no zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class Zone(Base):
    """A node of the zone tree; ``path`` is the stable ASCII id, ``name`` the display name."""

    __tablename__ = "zones"
    __table_args__ = (Index("uq_zones_code", "code", unique=True),)

    path: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    level: Mapped[str] = mapped_column(String(16))  # the tier of its kind (netmgr.zones.TIERS)
    kind: Mapped[str] = mapped_column(String(16))  # devices/zones/kinds.yaml
    code: Mapped[str | None] = mapped_column(String(8))  # mã đơn vị hành chính; unique (uq_zones_code)
    parent: Mapped[str | None] = mapped_column(
        String(255), ForeignKey("zones.path", ondelete="RESTRICT"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ZoneName(Base):
    """A name (and kind and code) a zone had until ``valid_until``: reports of earlier days show
    the names in force on them (issue 16). The zone's current name is in ``zones``."""

    __tablename__ = "zone_names"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(String(255), ForeignKey("zones.path", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(8))
    valid_until: Mapped[datetime] = mapped_column()
    changed_by: Mapped[str] = mapped_column(String(64))


class User(Base):
    """An API user. The token is kept only as its SHA-256 hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    can_emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    scopes: Mapped[list[UserZone]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def zones(self) -> list[str]:
        return sorted(s.zone for s in self.scopes)


class UserZone(Base):
    __tablename__ = "user_zones"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    zone: Mapped[str] = mapped_column(
        String(255), ForeignKey("zones.path", ondelete="RESTRICT"), primary_key=True
    )


class AuditEntry(Base):
    """One write or refused write: who, what, when, from where, and how it ended."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_ts", "ts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255), default="")
    zone: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(16))  # ok | denied | error
    detail: Mapped[str] = mapped_column(Text, default="")
    remote: Mapped[str] = mapped_column(String(64), default="")


class AccessPoint(Base):
    """A Wi-Fi access point polled over SNMP."""

    __tablename__ = "access_points"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=161)
    zone: Mapped[str] = mapped_column(
        String(255), ForeignKey("zones.path", ondelete="RESTRICT"), index=True
    )
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    snmp_version: Mapped[str] = mapped_column(String(4), default="2c")
    community: Mapped[str | None] = mapped_column(String(255))
    v3_user: Mapped[str | None] = mapped_column(String(64))
    v3_auth_proto: Mapped[str | None] = mapped_column(String(16))
    v3_auth_key: Mapped[str | None] = mapped_column(String(255))
    v3_priv_proto: Mapped[str | None] = mapped_column(String(16))
    v3_priv_key: Mapped[str | None] = mapped_column(String(255))
    profile: Mapped[str | None] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Speaker(Base):
    """A smart-radio loudspeaker node; ``id`` is its MQTT node id."""

    __tablename__ = "speakers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    zone: Mapped[str] = mapped_column(
        String(255), ForeignKey("zones.path", ondelete="RESTRICT"), index=True
    )
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The node's MQTT password as mosquitto stores it (PBKDF2-SHA512, `$7$...`); the
    # password itself is shown once by `netmgr speaker credentials` and never stored.
    mqtt_hash: Mapped[str | None] = mapped_column(String(255))


class SpeakerState(Base):
    """The registry's view of a node, written in batches; survives daemon restarts."""

    __tablename__ = "speaker_state"

    node_id: Mapped[str] = mapped_column(ForeignKey("speakers.id", ondelete="CASCADE"), primary_key=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    session: Mapped[int] = mapped_column(BigInteger, default=-1)
    since: Mapped[datetime | None] = mapped_column()
    last_seen: Mapped[datetime | None] = mapped_column()
    fw: Mapped[str | None] = mapped_column(String(64))
    schedule_version: Mapped[int | None] = mapped_column(BigInteger)
    telemetry: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Command(Base):
    """A command sent to speaker nodes (one node, a list, or zones)."""

    __tablename__ = "commands"
    __table_args__ = (Index("ix_commands_issued", "issued"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    method: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    priority: Mapped[str] = mapped_column(String(12), default="normal")
    issued: Mapped[datetime] = mapped_column(default=utcnow)
    expires: Mapped[datetime] = mapped_column()
    targets: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"nodes": [...], "zones": [...]}
    issued_by: Mapped[str] = mapped_column(String(64), default="")


class CommandDelivery(Base):
    """One node's states of one command; each state keeps the time it was reached."""

    __tablename__ = "command_deliveries"
    __table_args__ = (Index("ix_command_deliveries_node", "node_id", "command_id"),)

    command_id: Mapped[str] = mapped_column(ForeignKey("commands.id", ondelete="CASCADE"), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(12), default="queued")
    times: Mapped[dict[str, Any]] = mapped_column(default=dict)  # state -> ISO time first reached
    error: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated: Mapped[datetime] = mapped_column(default=utcnow)


class ProgramRow(Base):
    """A broadcast program (netmgr.broadcast.model.Program as JSON in ``data``)."""

    __tablename__ = "programs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200))
    zone: Mapped[str] = mapped_column(String(255), index=True)  # owning zone: reports and scoping
    priority: Mapped[str] = mapped_column(String(12), default="normal")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column()
    cancelled_by: Mapped[str | None] = mapped_column(String(64))


class OccurrenceRow(Base):
    """One occurrence of a program as the scheduler handled it. Its id is also the id of the
    confirming command (per-node states in command_deliveries) and of the nodes' schedule item.

    state: ``sending`` (written before the publish: a restart re-sends it, nodes are idempotent),
    ``sent``, ``late`` (sent after its start, within the grace period), ``missed`` (the daemon
    was down past the grace period), ``cancelled``."""

    __tablename__ = "occurrences"
    __table_args__ = (Index("ix_occurrences_start", "start"), Index("ix_occurrences_program", "program_id"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    start: Mapped[datetime] = mapped_column()
    end: Mapped[datetime] = mapped_column()
    state: Mapped[str] = mapped_column(String(12))
    sent_at: Mapped[datetime | None] = mapped_column()
    targets: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str] = mapped_column(Text, default="")


class ApState(Base):
    """The latest poll of an AP (one row per AP, overwritten), for `ap list` and `ap show`."""

    __tablename__ = "ap_state"

    ap_id: Mapped[int] = mapped_column(ForeignKey("access_points.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(8), default="unknown")  # unknown | up | down
    status_since: Mapped[datetime | None] = mapped_column()
    flaps: Mapped[int] = mapped_column(Integer, default=0)
    last_poll: Mapped[datetime | None] = mapped_column()
    last_ok: Mapped[datetime | None] = mapped_column()
    response_ms: Mapped[float | None] = mapped_column(Float)
    uptime_s: Mapped[float | None] = mapped_column(Float)
    profile: Mapped[str | None] = mapped_column(String(64))
    vendor: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    sys_name: Mapped[str | None] = mapped_column(String(255))
    clients: Mapped[int | None] = mapped_column(Integer)
    cpu_pct: Mapped[float | None] = mapped_column(Float)
    mem_used: Mapped[int | None] = mapped_column(BigInteger)
    mem_total: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_error: Mapped[str | None] = mapped_column(Text)


class ApEvent(Base):
    """A status change of an AP (up/down), kept for `ap show` and the audit of outages."""

    __tablename__ = "ap_events"
    __table_args__ = (Index("ix_ap_events_ap_ts", "ap_id", "ts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ap_id: Mapped[int] = mapped_column(ForeignKey("access_points.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(8))
    detail: Mapped[str] = mapped_column(Text, default="")
