"""Masks secret values in output before it is published. Standard library only.

A secret is masked as its exact value and in the encodings a command commonly
prints it in (GitHub Actions learned why: actions/runner#291):

- base64, standard and URL-safe alphabets, with and without padding, and the
  three alignments a secret can have inside a longer base64 text (the
  characters that depend only on the secret's own bytes);
- URL/percent-encoding (`quote`, `quote_plus`, upper- and lower-case hex);
- JSON string escaping (ASCII-only and not, with `/` escaped or not).

All forms go into one pattern, built as a trie so that a position is given up
after a character or two however many forms there are, and matching the
longest form at a position. The streaming batcher (`unsafe_suffix`, `longest`)
holds back a possible start of any form across chunk edges just as for the
plain value. An encoded form shorter than
`MIN_ENCODED` characters is not masked: a three-letter base64 fragment would
mask ordinary words.
"""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, quote_plus

MASK = "[REDACTED]"
MIN_SECRET = 3
MIN_ENCODED = 8
_HEX_ESCAPE = re.compile(r"%[0-9A-F]{2}")

Trie = dict[str, "Trie"]


def base64_forms(secret: bytes) -> set[str]:
    """The base64 text of `secret` whole, and at each of the three offsets in a longer text."""
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(secret).decode()
        forms |= {whole, whole.rstrip("=")}
        for offset in range(3):
            text = encode(b"\0" * offset + secret).decode()
            start = -(-offset * 8 // 6)  # first character with no bit of the prefix
            end = (offset + len(secret)) * 8 // 6  # last character with no bit of what follows
            forms.add(text[start:end])
    return forms


def url_forms(secret: str) -> set[str]:
    forms = {quote(secret, safe=""), quote(secret), quote_plus(secret)}
    return forms | {_HEX_ESCAPE.sub(lambda m: m.group().lower(), f) for f in forms}


def json_forms(secret: str) -> set[str]:
    forms = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    return forms | {f.replace("/", "\\/") for f in forms}


def encoded_forms(secret: str) -> set[str]:
    """Every form of `secret` that is masked besides the value itself."""
    forms = base64_forms(secret.encode()) | url_forms(secret) | json_forms(secret)
    return {f for f in forms if len(f) >= MIN_ENCODED and f != secret}


def build_trie(words: set[str]) -> Trie:
    root: Trie = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}  # a word ends here
    return root


def trie_pattern(words: set[str]) -> str:
    """One regex matching any of `words`, the longest at a position, as a trie of groups."""
    root = build_trie(words)

    def build(node: Trie) -> str:
        branches = []
        for ch, child in sorted(node.items()):
            if not ch:
                continue
            run = [ch]  # follow a chain of single children without recursing (long secrets)
            while len(child) == 1 and "" not in child:
                ((ch, child),) = child.items()
                run.append(ch)
            branches.append(re.escape("".join(run)) + build(child))
        if not branches:
            return ""
        ends_here = "" in node
        if len(branches) == 1 and not ends_here:
            return branches[0]
        group = "(?:" + "|".join(branches) + ")"
        return group + "?" if ends_here else group  # greedy: the longer word first

    return build(root)


class Redactor:
    def __init__(self, secrets: list[str]) -> None:
        plain = {s for s in secrets if len(s) >= MIN_SECRET}
        forms = plain.union(*(encoded_forms(s) for s in plain))
        values = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile(trie_pattern(forms)) if values else None
        self._trie = build_trie(forms)
        self.longest = len(values[0]) if values else 0

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern else text

    def unsafe_suffix(self, text: str) -> int:
        """How many trailing characters of `text` could be the start of a secret (or of
        one of its forms): the longest tail that is a path in the trie. Most starts leave
        the trie after a character or two, so this costs about the tail's length."""
        end = len(text)
        for start in range(max(0, end - self.longest + 1), end):
            node = self._trie
            for index in range(start, end):
                found = node.get(text[index])
                if found is None:
                    break
                node = found
            else:
                return end - start
        return 0
