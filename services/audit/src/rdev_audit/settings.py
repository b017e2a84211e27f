"""Settings of the audit service."""

from __future__ import annotations

from pydantic import Field

from rdev_common.settings import HealthSettings


class AuditSettings(HealthSettings):
    # Messages projected per transaction: larger batches, fewer commits.
    batch_size: int = Field(default=500, ge=1, le=10_000)
    # How long a batch that is not full waits for more: one command's events (requested,
    # started, completed) are then written in one transaction, after the command rather
    # than competing with it for the CPU. Audit rows appear this much later.
    batch_linger_ms: int = Field(default=100, ge=0, le=5_000)
