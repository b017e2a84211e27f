"""Masks secret values in output before it is published. Standard library only."""

from __future__ import annotations

import re

MASK = "[REDACTED]"


class Redactor:
    def __init__(self, secrets: list[str]) -> None:
        values = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None
        self._values = values
        self.longest = len(values[0]) if values else 0

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern else text

    def unsafe_suffix(self, text: str) -> int:
        """How many trailing characters of `text` could be the start of a secret."""
        for size in range(min(self.longest - 1, len(text)), 0, -1):
            tail = text[-size:]
            if any(v.startswith(tail) for v in self._values):
                return size
        return 0
