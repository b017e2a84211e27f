"""How a run is presented: one vocabulary for the API, the CLI and the console.

The event log knows a run as `queued`, `running` or `completed` with a `reason` and
an exit code; people want to know whether it worked. Every surface shows the state
below, in the same words and colours, and filters by it.
"""

from __future__ import annotations

from rdev_common.errors import ValidationFailed

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
TIMED_OUT = "timed_out"
CANCELLED = "cancelled"
LOST = "lost"

STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, LOST)
ENDED = frozenset({SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, LOST})

# Shown as words: `timed_out` is an identifier, "timed out" what a person reads.
WORDS = {state: state.replace("_", " ") for state in STATES}

# One colour per state, named as terminals name them; the console's CSS and the
# CLI's styles both follow this table.
COLOURS = {
    QUEUED: "yellow",
    RUNNING: "blue",
    SUCCEEDED: "green",
    FAILED: "red",
    TIMED_OUT: "red",
    CANCELLED: "magenta",
    LOST: "red",
}

# The lifecycle statuses of the event log, still accepted as filters.
LIFECYCLE = {"queued": {QUEUED}, "running": {RUNNING}, "completed": ENDED}
_ALIASES = {"timeout": TIMED_OUT, "timed-out": TIMED_OUT, "canceled": CANCELLED}


def state_of(status: str, reason: str | None, exit_code: int | None) -> str:
    """The state of a run from its lifecycle status, end reason and exit code."""
    if status != "completed":
        return status
    if reason == "exited":
        return SUCCEEDED if exit_code == 0 else FAILED
    if reason == "timeout":
        return TIMED_OUT
    if reason in (CANCELLED, LOST):
        return str(reason)
    return FAILED  # "error": rdev could not run it


def label(state: str, reason: str | None = None, exit_code: int | None = None) -> str:
    """The state in words, with what a reader needs next to it: `failed (exit 3)`."""
    if state == FAILED:
        return "failed (rdev error)" if reason == "error" else f"failed (exit {exit_code})"
    return WORDS.get(state, state)


def parse(text: str) -> set[str]:
    """The states a filter names: a state in words or as identifier, or a lifecycle
    status (`completed` is every ended state). Raises ValidationFailed in words."""
    key = text.strip().lower().replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key in LIFECYCLE:
        return set(LIFECYCLE[key])
    if key in STATES:
        return {key}
    known = ", ".join(WORDS[s] for s in STATES)
    raise ValidationFailed(
        f"status {text!r} is not one of: {known} (or completed, for any ended run)",
        field="status",
    )
