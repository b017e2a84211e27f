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
    # A standby (another instance holds the writer lock) tries to take it this often; the
    # writer checks this often that its lock (its PostgreSQL session) still holds.
    standby_poll_s: float = Field(default=2.0, gt=0, le=60)
    writer_check_s: float = Field(default=5.0, gt=0, le=60)
