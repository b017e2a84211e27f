"""A project's command policy: which command lines may run there.

Patterns are shell-style globs matched against the whole command line, or regular
expressions when written as `re:<expression>` (searched anywhere in the line). A command
must match some `allow` pattern when any are given, and no `deny` pattern.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

REGEX_PREFIX = "re:"


def _matches(pattern: str, command: str) -> bool:
    if pattern.startswith(REGEX_PREFIX):
        return re.search(pattern[len(REGEX_PREFIX) :], command) is not None
    return fnmatch.fnmatchcase(command, pattern)


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
