"""OutputBatcher: lines, numbering, splitting, decoding, progress output, caps, redaction."""

from __future__ import annotations

from rdev_executor.domain.output import Batch, OutputBatcher
from rdev_executor.domain.redaction import MASK, Redactor


def batcher(**kw: object) -> OutputBatcher:
    args: dict[str, object] = {"max_line_chars": 16, "batch_bytes": 1 << 20, "cap_bytes": 1 << 30}
    args.update(kw)
    return OutputBatcher(**args)  # type: ignore[arg-type]


def lines(batches: list[Batch]) -> list[tuple[str, str]]:
    return [(b.stream, line) for b in batches for line in b.lines]


def test_lines_of_both_streams_share_one_numbering_in_read_order() -> None:
    b = batcher()
    out = b.feed("stdout", b"a\nb\n") + b.feed("stderr", b"e\n") + b.feed("stdout", b"c\n")
    out += b.finish()
    assert [(x.stream, x.first_line, x.lines) for x in out] == [
        ("stdout", 1, ["a", "b"]),
        ("stderr", 3, ["e"]),
        ("stdout", 4, ["c"]),
    ]


def test_a_line_split_across_reads_is_joined() -> None:
    b = batcher()
    out = b.feed("stdout", b"hel") + b.feed("stdout", b"lo\nwor") + b.feed("stdout", b"ld\n")
    assert lines(out + b.finish()) == [("stdout", "hello"), ("stdout", "world")]


def test_a_long_line_is_split_and_flagged_partial() -> None:
    b = batcher(max_line_chars=4)
    out = b.feed("stdout", b"abcdefghij\n") + b.finish()
    assert out[0].lines == ["abcd", "efgh", "ij"]
    assert out[0].partial == [0, 1]


def test_invalid_utf8_is_replaced_also_when_split_across_reads() -> None:
    b = batcher()
    euro = "€".encode()
    out = b.feed("stdout", b"ok \xff\xfe x\n" + euro[:1]) + b.feed("stdout", euro[1:] + b"\n")
    assert [line for _, line in lines(out + b.finish())] == ["ok \ufffd\ufffd x", "€"]


def test_carriage_returns_end_progress_lines_and_crlf_is_one_newline() -> None:
    b = batcher()
    out = b.feed("stdout", b"10%\r20%\r") + b.feed("stdout", b"\n30%\r\ndone\n") + b.finish()
    assert [line for _, line in lines(out)] == ["10%", "20%", "30%", "done"]
    assert out[0].cr == [0]  # "20%\r\n" is a plain line end


def test_output_past_the_cap_is_dropped_and_marked_truncated() -> None:
    b = batcher(cap_bytes=10)
    out = b.feed("stdout", b"12345\n") + b.feed("stdout", b"67890123\n") + b.finish()
    assert [line for _, line in lines(out)] == ["12345"]
    assert b.truncated


def test_batches_close_at_their_size() -> None:
    b = batcher(batch_bytes=8)
    out = b.feed("stdout", b"aaaa\nbbbb\ncccc\n")
    assert [x.lines for x in out] == [["aaaa", "bbbb"]]
    assert [x.lines for x in b.finish()] == [["cccc"]]


def test_a_secret_split_across_two_reads_is_masked() -> None:
    b = batcher(max_line_chars=4096, redactor=Redactor(["hunter2-secret"]))
    out = b.feed("stdout", b"token=hunter2-") + b.feed("stdout", b"secret done\n") + b.finish()
    assert [line for _, line in lines(out)] == [f"token={MASK} done"]


def test_an_idle_flush_never_publishes_the_start_of_a_secret() -> None:
    b = batcher(max_line_chars=4096, redactor=Redactor(["hunter2-secret"]))
    b.feed("stdout", b"password: hunter2-se")
    flushed = b.flush(tails=True)
    assert [line for _, line in lines(flushed)] == ["password: "]
    rest = b.feed("stdout", b"cret\n") + b.finish()
    assert [line for _, line in lines(rest)] == [MASK]


def test_a_secret_across_a_long_line_split_is_masked() -> None:
    secret = "s3cr3t-value-xyz"
    b = batcher(max_line_chars=8, redactor=Redactor([secret]))
    out = b.feed("stdout", b"abcdef" + secret[:5].encode())
    out += b.feed("stdout", secret[5:].encode() + b"ghij\n") + b.finish()
    text = "".join(line for _, line in lines(out))
    assert secret not in text
    assert MASK in text


def test_plain_blocks_keep_empty_lines_and_numbering() -> None:
    b = batcher(batch_bytes=6)
    out = b.feed("stdout", b"a\n\nbb\n\n") + b.feed("stdout", b"ccc\n\n") + b.finish()
    assert lines(out) == [("stdout", x) for x in ["a", "", "bb", "", "ccc", ""]]
    numbers = [x.first_line + i for x in out for i in range(len(x.lines))]
    assert numbers == [1, 2, 3, 4, 5, 6]
    assert b.lines == 6


def test_plain_blocks_match_line_by_line_batching() -> None:
    data = b"".join(b"%d\n" % i for i in range(20000)) + b"x" * 9000 + b"\nend\n"
    chunked = batcher(batch_bytes=4096, max_line_chars=8192)
    out = [x for i in range(0, len(data), 1000) for x in chunked.feed("stdout", data[i : i + 1000])]
    out += chunked.finish()
    expected = [str(i) for i in range(20000)] + ["x" * 8192, "x" * 808, "end"]
    assert [line for _, line in lines(out)] == expected
    numbers = [x.first_line + i for x in out for i in range(len(x.lines))]
    assert numbers == list(range(1, len(expected) + 1))
    assert all(x.size <= 4096 + 8192 + 1 for x in out)


def test_a_batch_splits_into_halves_that_keep_numbering_and_flags() -> None:
    b = batcher(max_line_chars=4)
    out = b.feed("stdout", b"one\nabcdefgh\n10%\rtwo\nlast\n") + b.finish()
    assert len(out) == 1
    first, second = out[0].halves()
    assert (first.first_line, first.lines, first.partial, first.cr) == (
        1,
        ["one", "abcd", "efgh"],
        [1],
        [],
    )
    assert (second.first_line, second.lines, second.partial, second.cr) == (
        4,
        ["10%", "two", "last"],
        [],
        [0],
    )
    assert (first.count, second.count, first.size, second.size) == (3, 3, 14, 13)
