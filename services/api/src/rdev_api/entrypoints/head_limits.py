"""Bounds on a request's head, enforced while it is parsed (docs/security.md).

uvicorn's httptools parser keeps any amount of request line and headers in memory:
an unauthenticated client could send megabytes of headers to `/healthz`. This
protocol counts as bytes arrive and answers before the application sees anything:
414 for a request target over MAX_TARGET_BYTES, 431 for a header line over
MAX_HEADER_BYTES, more than MAX_HEADERS headers, or a head over MAX_HEAD_BYTES.
"""

from __future__ import annotations

from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

MAX_TARGET_BYTES = 8 * 1024
MAX_HEADER_BYTES = 8 * 1024
MAX_HEADERS = 100
MAX_HEAD_BYTES = 64 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the head bounded (pass as uvicorn's `http=`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._in_head and not self._refused:
            # only what stays unparsed-as-head counts: a body in the same read does not
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, f"request headers are larger than {MAX_HEAD_BYTES} bytes")

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        super().on_url(url)
        if len(self.url) > MAX_TARGET_BYTES:
            self._refuse(414, f"request target is longer than {MAX_TARGET_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._header_count += 1
        if self._header_count > MAX_HEADERS:
            self._refuse(431, f"more than {MAX_HEADERS} request headers")
        elif len(name) + len(value) > MAX_HEADER_BYTES:
            self._refuse(431, f"a request header is larger than {MAX_HEADER_BYTES} bytes")
        else:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if not self._refused:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def _refuse(self, status: int, message: str) -> None:
        """Answer with the error envelope and close: the rest of the request is unread."""
        self._refused = True
        code = "request_header_fields_too_large" if status == 431 else "uri_too_long"
        body = orjson.dumps({"error": {"code": code, "message": message, "details": {}}})
        head = [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
