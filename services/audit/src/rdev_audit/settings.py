"""Settings of the audit service."""

from __future__ import annotations

from rdev_common.settings import HealthSettings


class AuditSettings(HealthSettings):
    pass
