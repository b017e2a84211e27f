"""A real webhook receiver on loopback that verifies every signature with `standardwebhooks`.

Each path is one endpoint with its own behaviour (`ok`, `fail`, `hang`, `gone`,
`busy`) and its own secrets; every request is recorded with whether its
signature verified against each secret the test registered. Every answer sets a
cookie, so a test can see whether the sender ever sends one back.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from rdev_common.broker import free_port


@dataclass
class Received:
    path: str
    webhook_id: str
    attempt: int
    timestamp: str
    event: dict[str, Any]
    verified: list[bool]  # one verdict per secret of the path
    status: int
    at: float
    cookie: str | None = None


@dataclass
class Endpoint:
    behaviour: str = "ok"
    secrets: list[str] = field(default_factory=list)
    fail_first: int = 0  # answer 500 to the first N attempts of each delivery
    hold_attempt: int = 0  # hold requests of this attempt number until `release` is set
    release: threading.Event = field(default_factory=threading.Event)


class Receiver:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoints: dict[str, Endpoint] = {}
        self.received: list[Received] = []
        self.arrived: list[tuple[str, int]] = []  # (path, attempt) as requests come in
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def endpoint(self, path: str, **kwargs: Any) -> Endpoint:
        self.endpoints[path] = Endpoint(**kwargs)
        return self.endpoints[path]

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = receiver.handle(self.path, dict(self.headers.items()), body)
                try:
                    self.send_response(status)
                    if status in (429, 503):
                        self.send_header("Retry-After", "7")
                    if status == 302:
                        self.send_header("Location", receiver.url("/elsewhere"))
                    self.send_header("Set-Cookie", "session=from-the-receiver; Path=/")
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up (timeout) before we answered

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        for endpoint in self.endpoints.values():
            endpoint.release.set()

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        lower = {k.lower(): v for k, v in headers.items()}
        attempt = int(lower.get("webhook-attempt", "0"))
        with self.lock:
            self.arrived.append((path, attempt))
        endpoint = self.endpoints.get(path, Endpoint())
        verdicts = [_verifies(secret, body, lower) for secret in endpoint.secrets]
        status = self._status(endpoint, attempt)
        if endpoint.behaviour == "hang" or attempt == endpoint.hold_attempt:
            endpoint.release.wait(120)
        record = Received(
            path,
            lower.get("webhook-id", ""),
            attempt,
            lower.get("webhook-timestamp", ""),
            json.loads(body),
            verdicts,
            status,
            time.monotonic(),
            lower.get("cookie"),
        )
        with self.lock:
            self.received.append(record)
        return status

    @staticmethod
    def _status(endpoint: Endpoint, attempt: int) -> int:
        if attempt <= endpoint.fail_first:
            return 500
        return {"ok": 200, "fail": 500, "gone": 410, "busy": 429, "hang": 200, "moved": 302}[
            endpoint.behaviour
        ]

    def arrivals(self, path: str, attempt: int | None = None) -> int:
        with self.lock:
            return sum(1 for p, a in self.arrived if p == path and attempt in (None, a))

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]


def _verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True
