"""`python -m rdev_audit`: consumes run lifecycle events (projections land in a later step)."""

from __future__ import annotations

import asyncio

import structlog
from nats.aio.msg import Msg

from rdev_audit.settings import AuditSettings
from rdev_common.logging import configure_logging
from rdev_common.service import run_service
from rdev_common.streams import lifecycle_consumer

log = structlog.get_logger()


async def record(msg: Msg) -> None:
    log.debug("lifecycle event", subject=msg.subject, seq=msg.metadata.sequence.stream)
    await msg.ack()


def main() -> None:
    settings = AuditSettings()
    configure_logging(settings.log_format, settings.log_level, service="audit")
    asyncio.run(run_service("audit", settings, [(lifecycle_consumer("audit"), record)]))


if __name__ == "__main__":
    main()
