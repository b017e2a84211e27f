"""How a run ended, in shell conventions. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass

TIMEOUT_EXIT = 124
RDEV_FAILURE_EXIT = 255


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    reason: str
    error: str | None = None


def from_returncode(
    returncode: int, *, timed_out: bool, cancelled: bool, cancel_reason: str | None = None
) -> Outcome:
    """Exit status of /bin/sh: a negative returncode is death by signal N → 128+N."""
    code = 128 - returncode if returncode < 0 else returncode
    if timed_out:
        return Outcome(TIMEOUT_EXIT, "timeout", "the command ran past its timeout")
    if cancelled:
        return Outcome(code, "cancelled", cancel_reason)
    return Outcome(code, "exited")


def lost(message: str) -> Outcome:
    return Outcome(RDEV_FAILURE_EXIT, "lost", message)


def failed(message: str) -> Outcome:
    return Outcome(RDEV_FAILURE_EXIT, "error", message)


def cancelled_before_start() -> Outcome:
    return Outcome(128 + 15, "cancelled", "cancelled before it started")
