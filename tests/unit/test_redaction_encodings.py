"""A project secret is masked in the encodings a command commonly prints it in, on stream."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from rdev_executor.domain.output import OutputBatcher
from rdev_executor.domain.redaction import MASK, Redactor

SECRET = "p@ss/w+rd:hunter2&more~ü"


def forms(secret: str) -> dict[str, str]:
    raw = secret.encode()
    b64 = base64.b64encode(raw).decode()
    return {
        "base64": b64,
        "base64 without padding": b64.rstrip("="),
        "url-safe base64": base64.urlsafe_b64encode(raw).decode(),
        # The secret at each alignment inside a longer base64 text (Basic auth is offset 2).
        "base64 at offset 1": base64.b64encode(b"x" + raw + b"tail").decode(),
        "base64 at offset 2": base64.b64encode(b"u:" + raw + b"tail").decode(),
        "base64 at offset 0 with a prefix": base64.b64encode(b"abc" + raw + b"t").decode(),
        "percent-encoded": quote(secret, safe=""),
        "percent-encoded, lower-case hex": quote(secret, safe="").lower(),
        "form-encoded": quote_plus(secret),
        "JSON-escaped": json.dumps(secret)[1:-1],
        "JSON-escaped, slash escaped": json.dumps(secret)[1:-1].replace("/", "\\/"),
    }


def leaks(text: str, secret: str) -> list[str]:
    """Which encodings of `secret` still show in `text` (decoded where the text is base64)."""
    found = [name for name, form in forms(secret).items() if form in text and "base64" not in name]
    for word in text.replace(MASK, " ").split():
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                if secret.encode() in decode(word + "==="):
                    found.append(f"base64 {word!r}")
            except ValueError:
                pass
    if secret in text:
        found.append("plain")
    return found


@pytest.mark.parametrize("name", list(forms(SECRET)))
def test_each_encoding_is_masked(name: str) -> None:
    text = f"before {forms(SECRET)[name]} after"
    masked = Redactor([SECRET])(text)
    assert MASK in masked, masked
    assert masked.startswith("before ") and masked.endswith(" after"), masked
    assert leaks(masked, SECRET) == []


def test_the_chars_around_an_embedded_base64_secret_are_kept() -> None:
    """Only the characters that depend on the secret's own bytes are masked."""
    text = base64.b64encode(b"user:" + SECRET.encode() + b"-tail").decode()
    masked = Redactor([SECRET])(text)
    assert masked.startswith("dXNlcj") and masked.endswith("aWw=") and MASK in masked, masked


def test_short_encoded_fragments_of_a_short_secret_are_left_alone() -> None:
    """A three-letter secret is masked as itself; its 4-letter base64 would mask prose."""
    assert Redactor(["abc"])("YWJj abc plain text") == f"YWJj {MASK} plain text"


@pytest.mark.parametrize("name", list(forms(SECRET)))
def test_an_encoded_secret_split_at_any_read_boundary_is_masked(name: str) -> None:
    line = f"value={forms(SECRET)[name]};\n".encode()
    for cut in range(1, len(line)):
        batcher = OutputBatcher(
            max_line_chars=4096, batch_bytes=1 << 20, cap_bytes=1 << 30, redactor=Redactor([SECRET])
        )
        out = batcher.feed("stdout", line[:cut])
        out += batcher.flush(tails=True)  # an idle flush between the two reads
        out += batcher.feed("stdout", line[cut:]) + batcher.finish()
        text = "".join(x for b in out for x in b.lines)
        assert MASK in text and leaks(text, SECRET) == [], (cut, text)


def test_an_encoded_secret_across_a_long_line_split_is_masked() -> None:
    encoded = base64.b64encode(SECRET.encode()).decode()
    batcher = OutputBatcher(
        max_line_chars=8, batch_bytes=1 << 20, cap_bytes=1 << 30, redactor=Redactor([SECRET])
    )
    out = batcher.feed("stdout", b"abcdef" + encoded[:7].encode())
    out += batcher.feed("stdout", encoded[7:].encode() + b"ghij\n") + batcher.finish()
    text = "".join(x for b in out for x in b.lines)
    assert MASK in text and encoded not in text and leaks(text, SECRET) == [], text
