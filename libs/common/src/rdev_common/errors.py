"""One error hierarchy with stable codes; HTTP mapping lives at the api's edge."""

from __future__ import annotations

from typing import Any


class RdevError(Exception):
    """Base of every error rdev reports to a caller."""

    code = "internal"

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details)
        if field is not None:
            self.details["field"] = field


class ValidationFailed(RdevError):
    code = "validation_error"


class NotFound(RdevError):
    code = "not_found"


class Conflict(RdevError):
    code = "conflict"


class Unauthenticated(RdevError):
    code = "unauthenticated"


class Forbidden(RdevError):
    code = "forbidden"


class PayloadTooLarge(RdevError):
    code = "payload_too_large"


class RateLimited(RdevError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, **details: Any) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s


class Unavailable(RdevError):
    code = "unavailable"
