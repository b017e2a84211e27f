"""audit log, its tracking positions, actor names and the command history

Revision ID: 0004_audit
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_audit"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
# SQLite autoincrements only an INTEGER PRIMARY KEY.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("stream", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("time", TS, nullable=False),
        sa.Column("actor", sa.String(64)),
        sa.Column("client_ip", sa.String(64)),
        sa.Column("project", sa.String(63)),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("stream", "seq", name="uq_audit_log_stream_seq"),
    )
    op.create_index("ix_audit_log_time", "audit_log", ["time"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", "id"])
    op.create_index("ix_audit_log_project", "audit_log", ["project", "id"])
    op.create_index("ix_audit_log_action", "audit_log", ["action", "id"])
    op.create_table(
        "audit_positions",
        sa.Column("stream", sa.String(32), primary_key=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "audit_actors",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "command_history",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project", sa.String(63), nullable=False),
        sa.Column("command", sa.Text()),
        sa.Column("priority", sa.String(16)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("exit_code", sa.Integer()),
        sa.Column("reason", sa.String(16)),
        sa.Column("error", sa.Text()),
        sa.Column("actor", sa.String(64)),
        sa.Column("client_ip", sa.String(64)),
        sa.Column("executor", sa.String(200)),
        sa.Column("timeout_s", sa.Float()),
        sa.Column("requested_at", TS),
        sa.Column("started_at", TS),
        sa.Column("cancel_requested_at", TS),
        sa.Column("completed_at", TS),
        sa.Column("duration_ms", sa.BigInteger()),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_command_history_project", "command_history", ["project", "requested_at", "id"]
    )


def downgrade() -> None:
    op.drop_table("command_history")
    op.drop_table("audit_actors")
    op.drop_table("audit_positions")
    op.drop_table("audit_log")
