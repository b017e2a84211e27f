"""A terminal's output cut into batches: never inside a UTF-8 or escape sequence, bytes
given back exactly by "each piece, then \\n unless partial"."""

from __future__ import annotations

from rdev_executor.domain.output import Batch
from rdev_executor.domain.redaction import Redactor
from rdev_executor.domain.tty_output import TtyBatcher, incomplete_escape


def replay(batches: list[Batch]) -> str:
    return "".join(
        line + ("" if i in b.partial else "\n") for b in batches for i, line in enumerate(b.lines)
    )


def test_each_read_is_a_batch_and_the_bytes_come_back_exactly() -> None:
    batcher = TtyBatcher(8192, 256 * 1024, 1 << 30)
    reads = [b"$ ls\r\n", b"a  b\r\n$ ", b"\x1b[1mx\x1b[0m", b"\r\n"]
    batches = [batcher.feed("tty", r) for r in reads]
    assert all(len(b) == 1 for b in batches), "a keystroke's echo does not wait"
    assert {b.stream for found in batches for b in found} == {"tty"}
    assert replay([b for found in batches for b in found]) == b"".join(reads).decode()


def test_a_utf8_sequence_split_across_reads_stays_whole() -> None:
    batcher = TtyBatcher(8192, 256 * 1024, 1 << 30)
    first = batcher.feed("tty", "café".encode()[:-1])
    second = batcher.feed("tty", "café".encode()[-1:] + b"!")
    assert replay(first) == "caf"
    assert replay(second) == "é!"


def test_an_escape_sequence_split_across_reads_waits_for_its_end() -> None:
    batcher = TtyBatcher(8192, 256 * 1024, 1 << 30)
    assert replay(batcher.feed("tty", b"ab\x1b[3")) == "ab"
    assert replay(batcher.feed("tty", b"1mred")) == "\x1b[31mred"
    assert batcher.has_tail is False
    assert replay(batcher.feed("tty", b"x\x1b]0;title")) == "x"
    assert replay(batcher.feed("tty", b"\x07")) == "\x1b]0;title\x07"
    assert replay(batcher.feed("tty", b"\x1b")) == ""
    assert replay(batcher.finish()) == "\x1b"


def test_incomplete_escape() -> None:
    assert incomplete_escape("abc") == 0
    assert incomplete_escape("a\x1b[1;3") == 5
    assert incomplete_escape("a\x1b[1;3m") == 0
    assert incomplete_escape("\x1b") == 1


def test_a_secret_is_masked_even_split_across_reads() -> None:
    batcher = TtyBatcher(8192, 256 * 1024, 1 << 30, Redactor(["hunter2secret"]))
    out = batcher.feed("tty", b"pw: hunter2") + batcher.feed("tty", b"secret\r\n")
    assert "hunter2" not in replay(out)
    assert replay(out).startswith("pw: ")
