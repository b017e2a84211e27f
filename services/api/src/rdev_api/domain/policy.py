"""A project's command policy: which command lines may run there.

Patterns are shell-style globs matched against the whole command line, or regular
expressions when written as `re:<expression>` (searched anywhere in the line). A command
must match some `allow` pattern when any are given, and no `deny` pattern. Both kinds
are matched by RE2, in time linear in the command's length (rdev_common.patterns).
"""

from __future__ import annotations

from typing import Any

from rdev_common.patterns import matches as _matches


def refusal(policy: dict[str, Any], command: str) -> str | None:
    """Why the policy refuses `command`, or None when it may run."""
    line = command.strip()
    for pattern in policy.get("deny") or ():
        if _matches(pattern, line):
            return f"the project's command policy denies it (pattern {pattern!r})"
    allow = policy.get("allow") or ()
    if allow and not any(_matches(p, line) for p in allow):
        return "the project's command policy allows only commands matching " + ", ".join(
            repr(p) for p in allow
        )
    return None
