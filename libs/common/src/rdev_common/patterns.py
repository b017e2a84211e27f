"""User-written patterns (a project's command policy), matched in linear time.

Patterns are compiled with RE2, whose matching time grows linearly with the input
whatever the pattern: `^(a+)+$` against 100,000 characters takes well under a
millisecond, where Python's backtracking `re` takes a second for 24 and doubles per
character. RE2 refuses what it cannot match in linear time (backreferences,
look-around): such a pattern is refused when it is saved, naming the field.

Globs are translated to RE2 too (fnmatch's own translation uses look-ahead groups
RE2 does not have): `*` any run of characters, `?` one, `[...]`/`[!...]` a class.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import re2

REGEX_PREFIX = "re:"
MAX_PROGRAM_BYTES = 8 << 20  # the memory one compiled pattern may take


class PatternError(ValueError):
    """The pattern cannot be compiled (syntax RE2 refuses, or too large)."""


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = MAX_PROGRAM_BYTES
    options.log_errors = False  # the error is raised, and named by the caller
    return options


def glob_to_regex(glob: str) -> str:
    """A shell glob as an RE2 expression matching the whole string."""
    out, i, n = [], 0, len(glob)
    while i < n:
        c = glob[i]
        i += 1
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i + 1 if i < n and glob[i] == "!" else i
            j = j + 1 if j < n and glob[j] == "]" else j
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal '['
                out.append(re.escape(c))
                continue
            body = glob[i:j]
            i = j + 1
            negate = body[:1] == "!"
            body = body[1:] if negate else body
            escaped = "".join("\\" + ch if ch in "\\[]^" else ch for ch in body)
            out.append(f"[{'^' if negate else ''}{escaped}]")
        else:
            out.append(re.escape(c))
    return "(?s)" + "".join(out)


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """The compiled form of a policy pattern (`re:<regex>`, searched; or a glob, whole)."""
    is_regex = pattern.startswith(REGEX_PREFIX)
    source = pattern[len(REGEX_PREFIX) :] if is_regex else glob_to_regex(pattern)
    try:
        return re2.compile(source, _options())
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        raise PatternError(str(detail)) from exc


def matches(pattern: str, text: str) -> bool:
    compiled = compile_pattern(pattern)
    if pattern.startswith(REGEX_PREFIX):
        return compiled.search(text) is not None
    return compiled.fullmatch(text) is not None
