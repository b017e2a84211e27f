"""the webhooks service's outbox (endpoint state events for RDEV_WEBHOOKS)

Revision ID: 0006_webhook_outbox
Revises: 0005_webhooks
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_webhook_outbox"
down_revision = "0005_webhooks"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("sent_at", TS),
    )
    op.create_index("ix_webhook_outbox_sent_at", "webhook_outbox", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_outbox_sent_at", table_name="webhook_outbox")
    op.drop_table("webhook_outbox")
