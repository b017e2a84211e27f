"""structlog set-up: readable console output in development, JSON in production."""

from __future__ import annotations

import logging
import sys

import structlog

from rdev_common.redaction import RedactingFilter, redact_processor
from rdev_common.telemetry import add_trace_context, configure_telemetry


def configure_logging(fmt: str = "console", level: str = "info", service: str = "rdev") -> None:
    """Configure structlog, the stdlib root logger and tracing once per process.

    Tracing is set up here too because log lines carry trace and span ids: every
    service that logs also traces (exporting only as the `OTEL_*` variables say).
    """
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_context,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, redact_processor, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        # One write per line: `rdev up`'s services share one output, and with unbuffered
        # streams (PYTHONUNBUFFERED) print() writes a line and its newline separately,
        # which let another service's line land between them.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    configure_telemetry(service)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
