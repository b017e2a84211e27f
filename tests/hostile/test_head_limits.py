"""§4: an oversized request head is refused (431, 414) before the application sees it."""

from __future__ import annotations

import contextlib
import socket

import pytest

from tests.support import RdevSystem

pytestmark = pytest.mark.e2e


def _raw(rdev: RdevSystem, head: bytes) -> bytes:
    """Send `head` and read the answer until the server closes (or 30 s pass)."""
    with socket.create_connection(("127.0.0.1", rdev.port), timeout=30) as sock:
        # the server may answer and close while the head is still being sent
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def test_an_8_mib_header_is_a_431(rdev: RdevSystem) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (8 << 20) + b"\r\n\r\n"
    answer = _raw(rdev, head)
    assert _status(answer) == 431, answer[:300]
    assert b'"code":"request_header_fields_too_large"' in answer


def test_one_long_header_line_and_too_many_headers_are_431(rdev: RdevSystem) -> None:
    long_line = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"b" * 9000 + b"\r\n\r\n"
    assert _status(_raw(rdev, long_line)) == 431
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(101))
    assert _status(_raw(rdev, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")) == 431


def test_a_long_request_target_is_414(rdev: RdevSystem) -> None:
    target = b"/healthz?" + b"q" * 9000
    assert _status(_raw(rdev, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")) == 414


def test_heads_within_the_limits_are_served(rdev: RdevSystem) -> None:
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 500) for i in range(90))
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + b"\r\n"
    assert _status(_raw(rdev, head)) == 200
    body = b'{"command":"true"}'
    post = (
        b"POST /projects/none/shell HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert _status(_raw(rdev, post)) == 401
