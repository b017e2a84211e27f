"""identity: key rotation grace, per-key rate-limit policies, the admin-event outbox

Revision ID: 0002_identity
Revises: 0001
Create Date: 2026-11-27

Forward-only on existing data: new nullable columns and new tables, nothing rewritten.
Allowed IPs stay a JSON list of CIDRs on api_keys (read with the key, never queried alone).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_identity"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("previous_secret_hash", sa.String(64)))
    op.add_column("api_keys", sa.Column("previous_expires_at", TS))
    op.create_index(
        "ix_api_keys_previous_secret_hash", "api_keys", ["previous_secret_hash"], unique=False
    )
    op.create_table(
        "rate_limit_policies",
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("limit", sa.Integer(), nullable=False),
        sa.Column("window_s", sa.Integer(), nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("sent_at", TS),
    )
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_sent_at", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("rate_limit_policies")
    op.drop_index("ix_api_keys_previous_secret_hash", table_name="api_keys")
    op.drop_column("api_keys", "previous_expires_at")
    op.drop_column("api_keys", "previous_secret_hash")
