"""The safety net under every log line: values that look like secrets never reach the output.

Code must not log secrets in the first place; this catches the mistakes. It masks
API keys (`rdev_…`), webhook signing secrets (`whsec_…`), bearer tokens, and the
value of any field whose name says it holds a secret, at any depth.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import structlog

MASK = "[REDACTED]"
MAX_DEPTH = 6

SECRET_FIELDS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "secrets",
        "token",
        "api_key",
        "apikey",
        "x-api-key",
        "x_api_key",
        "authorization",
        "cookie",
        "set-cookie",
        "bootstrap_key",
        "private_key",
        "signing_secret",
        "client_secret",
        "access_token",
        "refresh_token",
    }
)
SECRET_SUFFIXES = ("_secret", "_token", "_password", "_api_key")

# Module and bucket names (`rdev_api`, `rdev_idempotency`) are short; keys are long.
PATTERN = re.compile(
    r"\brdev_[A-Za-z0-9_\-]{16,}"
    r"|\bwhsec_[A-Za-z0-9+/=_\-]{8,}"
    r"|(?i:\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}"
)
HINTS = ("rdev_", "whsec_", "earer")


def is_secret_field(name: object) -> bool:
    if not isinstance(name, str):
        return False
    lowered = name.lower()
    return lowered in SECRET_FIELDS or lowered.endswith(SECRET_SUFFIXES)


def redact_text(text: str) -> str:
    if not any(hint in text for hint in HINTS):  # the common case costs three `in` checks
        return text
    return PATTERN.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    found = match.group(0)
    if found.lower().startswith("bearer"):
        return found.split(None, 1)[0] + " " + MASK
    return found.split("_", 1)[0] + "_" + MASK


def redact(value: Any, depth: int = 0) -> Any:
    """`value` with secret-looking strings and secret-named fields masked."""
    if isinstance(value, str):
        return redact_text(value)
    if depth >= MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {
            k: MASK if is_secret_field(k) and v is not None else redact(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v, depth + 1) for v in value)
    return value


def redact_processor(
    _logger: Any, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """structlog processor; runs after exceptions are formatted, so tracebacks are masked too."""
    result: structlog.types.EventDict = redact(event_dict)
    return result


class RedactingFilter(logging.Filter):
    """The same net for stdlib logging (uvicorn, libraries)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
