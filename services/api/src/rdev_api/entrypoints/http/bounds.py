"""Bounded numbers and times of request bodies and queries (docs/api.md, "Limits").

Every duration, count and time the API takes has documented bounds, so no value can
overflow a timedelta, a database column or a stream sequence: out of bounds is a 422
naming the field. Numbers are strict (`true` is not 1) and times are ISO 8601 text
(a bare number is not a time).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

MAX_TIMEOUT_S = 7 * 86400.0  # the server's RDEV_MAX_TIMEOUT_S may lower it
MAX_GRACE_S = 7 * 86400.0
MAX_LIMIT = 1_000_000_000
MAX_SEQUENCE = 2**63 - 1
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def moment(value: Any) -> Any:
    """An ISO 8601 time (no zone: UTC) between 1970 and 9999, as an aware datetime."""
    if isinstance(value, datetime):
        when = value
    else:
        if not isinstance(value, str) or not _ISO_DATE.match(value):
            raise ValueError("must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z")
        try:
            when = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError("must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        when = when.astimezone(UTC)
    except OverflowError:
        when = LATEST
    if not EARLIEST <= when < LATEST:
        raise ValueError("must be between 1900-01-01 and 9999-01-01 (UTC)")
    return when


# the years the document promises (any zone offset stays within the server's bounds)
YEARS = r"^(190[1-9]|19[1-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9])-"
Moment = Annotated[
    datetime,
    BeforeValidator(moment),
    Field(
        description="ISO 8601, years 1901 to 9989; no zone: UTC",
        json_schema_extra={"pattern": YEARS},
    ),
]
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
EnvName = Annotated[str, Field(pattern=ENV_NAME)]
_ONLY_NAMED = Field(json_schema_extra={"additionalProperties": False})
EnvMap = Annotated[dict[EnvName, str], _ONLY_NAMED]
EnvChanges = Annotated[dict[EnvName, str | None], _ONLY_NAMED]
Timeout = Annotated[float, Field(strict=True, ge=1, le=MAX_TIMEOUT_S)]
Grace = Annotated[float, Field(strict=True, ge=0, le=MAX_GRACE_S)]
Count = Annotated[int, Field(strict=True, ge=1, le=MAX_LIMIT)]
