"""`python -m rdev_audit`: the audit log and command-history projections."""

from __future__ import annotations

import asyncio

from rdev_audit.bootstrap import run
from rdev_audit.settings import AuditSettings
from rdev_common.logging import configure_logging


def main() -> None:
    settings = AuditSettings()
    configure_logging(settings.log_format, settings.log_level, service="audit")
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
