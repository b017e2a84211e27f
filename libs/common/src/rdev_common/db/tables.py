"""SQL tables. ORM rows are persistence only: HTTP schemas and domain objects are separate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp with time zone, stored in UTC and read back aware. SQLite keeps no
    time zone: it would drop an offset on the way in and hand back naive values."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON}


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    workdir: Mapped[str | None] = mapped_column(Text)
    kubernetes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    env: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secrets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    max_concurrency: Mapped[int | None] = mapped_column(Integer)
    default_timeout_s: Mapped[float | None] = mapped_column(Float)
    command_policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[dict[str, Any]] = mapped_column(JSON)
    projects: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    allowed_ips: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    # After a rotation the old secret keeps working until `previous_expires_at` (0002).
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    previous_expires_at: Mapped[datetime | None]


class SessionRow(Base):
    """A browser session: the cookie holds a random token, the table its hash."""

    __tablename__ = "sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class WebhookRow(Base):
    """A webhook registration; `previous_secret` still signs until it expires (rotation)."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[Any] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean)
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookDeliveryRow(Base):
    """One event for one endpoint; `id` is the `webhook-id` header, the same on every attempt."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(36))
    project: Mapped[str] = mapped_column(String(63))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(200))
    stream: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    dedup_key: Mapped[str] = mapped_column(String(120), unique=True)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookAttemptRow(Base):
    """One HTTP request of a delivery: recorded as `sending` before it leaves, then its result."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(36))
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class RateLimitPolicyRow(Base):
    """A per-key override of a rate-limit policy (`requests`, `submit`): `limit` per `window_s`."""

    __tablename__ = "rate_limit_policies"

    key_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    limit: Mapped[int] = mapped_column(Integer)
    window_s: Mapped[int] = mapped_column(Integer)


class OutboxColumns:
    """An event written in the transaction of its change; `rdev_common.outbox` publishes it
    (`id` is its event id and `Nats-Msg-Id`)."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(index=True)


class OutboxRow(OutboxColumns, Base):
    """The api's outbox: admin events, published to RDEV_ADMIN."""

    __tablename__ = "outbox"


class WebhookOutboxRow(OutboxColumns, Base):
    """The webhooks service's outbox: attempt and endpoint state events, for RDEV_WEBHOOKS."""

    __tablename__ = "webhook_outbox"


# Audit projections, written only by services/audit; the api and the CLI read them.
# Content columns of audit_log are covered by the row's hash (rdev_common.audit).
class AuditLogRow(Base):
    """One auditable event; `hash` chains it to the previous row of the same source stream."""

    __tablename__ = "audit_log"
    __table_args__ = (
        sa.UniqueConstraint("stream", "seq", name="uq_audit_log_stream_seq"),
        sa.Index("ix_audit_log_time", "time"),
        sa.Index("ix_audit_log_actor", "actor", "id"),
        sa.Index("ix_audit_log_project", "project", "id"),
        sa.Index("ix_audit_log_action", "action", "id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    stream: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime]
    actor: Mapped[str | None] = mapped_column(String(64))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    project: Mapped[str | None] = mapped_column(String(63))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditPositionRow(Base):
    """Tracking: the last stream sequence projected, committed with the rows it produced."""

    __tablename__ = "audit_positions"

    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class AuditActorRow(Base):
    """API key names learnt from api_key.* admin events, to name actors when reading."""

    __tablename__ = "audit_actors"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(BigInteger)


class CommandHistoryRow(Base):
    """One command's lifecycle, projected from RDEV_LIFECYCLE for long histories."""

    __tablename__ = "command_history"
    __table_args__ = (sa.Index("ix_command_history_project", "project", "requested_at", "id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project: Mapped[str] = mapped_column(String(63))
    command: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(64))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    executor: Mapped[str | None] = mapped_column(String(200))
    timeout_s: Mapped[float | None] = mapped_column(Float)
    requested_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
