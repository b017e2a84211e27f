"""The JetStream pull protocol, spelled once for rdev's hand-written pull consumers (the
api's StreamReader, the executor's priority loop, the webhooks service's batches and
`rdev events replay`): they send raw pull requests, several in flight on one inbox,
because nats-py's `fetch()` costs a round trip and objects per message.

A pull request is a message to `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>` with a
JSON body; each message it delivers has its position in its `$JS.ACK…` reply subject.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from nats.aio.msg import Msg

API_PREFIX = "$JS.API"


def next_subject(stream: str, consumer: str) -> str:
    """Where pull requests for `consumer` of `stream` are sent."""
    return f"{API_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{consumer}"


def pull_request(
    batch: int,
    *,
    max_bytes: int | None = None,
    expires_s: float | None = None,
    no_wait: bool = False,
) -> bytes:
    """The body of a pull request: up to `batch` messages (and `max_bytes`, if given),
    waiting at most `expires_s` for them, or, with `no_wait`, ending at once when there
    are none."""
    request: dict[str, object] = {"batch": batch}
    if max_bytes:
        request["max_bytes"] = max_bytes
    if expires_s is not None:
        request["expires"] = int(expires_s * 1e9)
    if no_wait:
        request["no_wait"] = True
    return json.dumps(request).encode()


@dataclass(frozen=True)
class Position:
    """Where a delivered message stands: its stream sequence, how many messages of the
    consumer are still pending after it, and when it was stored (ns since the epoch)."""

    stream_seq: int
    pending: int
    stored_ns: int


def position(reply: str) -> Position:
    """The position in a `$JS.ACK…` reply subject (v1 or v2 form); ValueError for another."""
    tokens = reply.split(".")
    if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>
        return Position(int(tokens[5]), int(tokens[8]), int(tokens[7]))
    if len(tokens) >= 12 and tokens[:2] == ["$JS", "ACK"]:  # with domain and account hash
        ack = Msg.Ack
        return Position(
            int(tokens[ack.StreamSeq]), int(tokens[ack.NumPending]), int(tokens[ack.Timestamp])
        )
    raise ValueError(f"not a JetStream ack subject: {reply[:80]!r}")
