"""The ids the API takes in paths, queries and headers, checked at the edge.

Every id that can reach a NATS subject, a KV key or a consumer filter is one of these
types: a malformed one is a 422 naming the parameter before any look-up, a well-formed
unknown one a 404. `rdev_common.subjects` checks each token again where subjects are
built.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

# ids rdev issues: UUIDs (commands, keys, webhooks) and `msg_<hex>` (deliveries)
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
ID_WORDS = "an id: 1-64 letters, digits, '-' or '_', starting with a letter or digit"
# project ids: slugs (rdev_common.ids.ID_RE)
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
SLUG_WORDS = "a project id: 1-63 of a-z, 0-9 and '-', starting with a letter or digit"
# SSE event ids: `<stream sequence>` or `<stream sequence>-<line index>`
EVENT_ID_PATTERN = r"^[0-9]{1,19}(-[0-9]{1,9})?$"
EVENT_ID_WORDS = "an event id rdev issued: <sequence> or <sequence>-<line>"

# What a pattern means, for error messages in words rather than regular expressions.
PATTERN_WORDS = {
    ID_PATTERN: ID_WORDS,
    SLUG_PATTERN: SLUG_WORDS,
    EVENT_ID_PATTERN: EVENT_ID_WORDS,
}

ProjectId = Annotated[
    str, Path(pattern=SLUG_PATTERN, max_length=63, description="project id", examples=["demo"])
]
CommandId = Annotated[
    str,
    Path(
        pattern=ID_PATTERN,
        max_length=64,
        description="command id (a UUID)",
        examples=["01939a4e-7b1c-7c3e-9d2a-0b5f4e6a7c8d"],
    ),
]
KeyId = Annotated[str, Path(pattern=ID_PATTERN, max_length=64, description="API key id")]
WebhookId = Annotated[str, Path(pattern=ID_PATTERN, max_length=64, description="webhook id")]
DeliveryId = Annotated[
    str, Path(pattern=ID_PATTERN, max_length=64, description="delivery id (`msg_…`)")
]
StreamIdQuery = Annotated[
    str | None,
    Query(pattern=ID_PATTERN, max_length=64, description="one command's events only"),
]
