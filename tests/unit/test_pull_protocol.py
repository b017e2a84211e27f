"""The JetStream pull protocol as rdev's pull consumers speak it."""

from __future__ import annotations

import json

import pytest

from rdev_common.pull import Position, next_subject, position, pull_request


def test_a_pull_request_names_its_consumer_and_asks_for_what_it_was_given() -> None:
    assert next_subject("RDEV_RUNS", "abc") == "$JS.API.CONSUMER.MSG.NEXT.RDEV_RUNS.abc"
    assert json.loads(pull_request(32)) == {"batch": 32}
    assert json.loads(pull_request(32, max_bytes=1024, expires_s=5.0)) == {
        "batch": 32,
        "max_bytes": 1024,
        "expires": 5_000_000_000,
    }
    assert json.loads(pull_request(8, no_wait=True)) == {"batch": 8, "no_wait": True}


def test_the_position_is_read_from_both_forms_of_ack_subject() -> None:
    v1 = "$JS.ACK.RDEV_RUNS.reader.1.42.7.1765150000000000000.3"
    assert position(v1) == Position(stream_seq=42, pending=3, stored_ns=1765150000000000000)
    v2 = "$JS.ACK.hub.ACCHASH.RDEV_RUNS.reader.1.42.7.1765150000000000000.3.tok"
    assert position(v2) == Position(stream_seq=42, pending=3, stored_ns=1765150000000000000)


@pytest.mark.parametrize("reply", ["", "_INBOX.abc", "rdev.runs.p.c.output"])
def test_anything_else_is_refused(reply: str) -> None:
    with pytest.raises(ValueError):
        position(reply)
