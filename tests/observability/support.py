"""Helpers of the observability tests: spans written by each process, health ports, a receiver."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.support import RdevSystem

SERVICES = ("api", "executor", "webhooks", "audit")


def read_spans(data_dir: Path) -> list[dict[str, Any]]:
    """Every span the services wrote to $RDEV_DATA_DIR/spans-<service>.jsonl so far."""
    spans: list[dict[str, Any]] = []
    for path in sorted(data_dir.glob("spans-*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                spans.append(json.loads(line))
    return spans


def trace_of(spans: list[dict[str, Any]], trace_id: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["trace_id"] == trace_id]


def one(spans: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [s for s in spans if all(s.get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one span {match}, found {len(found)}: {summary(spans)}"
    return found[0]


def summary(spans: list[dict[str, Any]]) -> list[str]:
    return [f"{s['service']}:{s['name']}:{s['span_id']}<-{s['parent_span_id']}" for s in spans]


def service_process(system: RdevSystem, service: str) -> tuple[int, dict[str, str]]:
    """The pid and environment of the service process `rdev up` started."""
    assert system.process is not None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == system.process.pid and f"rdev_{service}".encode() in cmdline:
            env = dict(e.decode().split("=", 1) for e in environ if b"=" in e)
            return int(proc.name), env
    raise AssertionError(f"no {service} child of rdev up found")


def health_port(system: RdevSystem, service: str) -> int:
    """The health port `rdev up` gave a service, read from that child's environment."""
    return int(service_process(system, service)[1]["RDEV_HEALTH_PORT"])


def metrics_text(url: str) -> str:
    response = httpx.get(url, timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text `text` (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        metric, _, value = line.rpartition(" ")
        head, _, label_part = metric.partition("{")
        if head != name:
            continue
        found = dict(
            part.split("=", 1) for part in label_part.rstrip("}").split(",") if "=" in part
        )
        if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(value)
    return 0.0


@dataclass
class Receiver:
    """A webhook endpoint on loopback that answers 200 and remembers what it got."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> None:
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                received.append({"headers": dict(self.headers), "body": json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
