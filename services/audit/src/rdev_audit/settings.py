"""Settings of the audit service."""

from __future__ import annotations

from pydantic import Field

from rdev_common.settings import HealthSettings


class AuditSettings(HealthSettings):
    # Messages projected per transaction: larger batches, fewer commits.
    batch_size: int = Field(default=500, ge=1, le=10_000)
