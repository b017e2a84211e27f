"""`python -m rdev_webhooks`: deliver run lifecycle events to registered endpoints."""

from __future__ import annotations

from rdev_common.logging import configure_logging
from rdev_common.service import run_async
from rdev_webhooks.bootstrap import run
from rdev_webhooks.settings import WebhooksSettings


def main() -> None:
    settings = WebhooksSettings()
    configure_logging(settings.log_format, settings.log_level, service="webhooks")
    run_async(run(settings))


if __name__ == "__main__":
    main()
