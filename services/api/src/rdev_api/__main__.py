"""`python -m rdev_api`: serve the API with uvicorn."""

from __future__ import annotations

import uvicorn

from rdev_api.bootstrap import create_app
from rdev_api.entrypoints.head_limits import BoundedHttpToolsProtocol
from rdev_api.settings import ApiSettings
from rdev_common.logging import configure_logging


def main() -> None:
    settings = ApiSettings()
    configure_logging(settings.log_format, settings.log_level, service="api")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        proxy_headers=False,
        http=BoundedHttpToolsProtocol,  # 414/431 for an oversized request head
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
