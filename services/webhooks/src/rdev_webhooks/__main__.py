"""`python -m rdev_webhooks`: consumes run lifecycle events (deliveries land in a later step)."""

from __future__ import annotations

import asyncio

import structlog
from nats.aio.msg import Msg

from rdev_common.logging import configure_logging
from rdev_common.service import run_service
from rdev_common.streams import lifecycle_consumer
from rdev_webhooks.settings import WebhooksSettings

log = structlog.get_logger()


async def dispatch(msg: Msg) -> None:
    log.debug("lifecycle event", subject=msg.subject, seq=msg.metadata.sequence.stream)
    await msg.ack()


def main() -> None:
    settings = WebhooksSettings()
    configure_logging(settings.log_format, settings.log_level, service="webhooks")
    asyncio.run(run_service("webhooks", settings, [(lifecycle_consumer("webhooks"), dispatch)]))


if __name__ == "__main__":
    main()
