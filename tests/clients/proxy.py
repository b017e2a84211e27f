"""A TCP forwarder in front of rdev that can drop the open event streams, like a flaky network.

The clients talk to rdev through it (same host, so the session cookie goes along), and a
test cuts their SSE connections mid-run to watch them reconnect with `Last-Event-ID`.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

EVENTS_REQUEST = re.compile(rb"^GET /projects/[^ ]*/events[? ]")
LAST_EVENT_ID = re.compile(rb"\r\nlast-event-id: *([^\r]*)\r\n", re.IGNORECASE)


class CuttingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._streams: list[tuple[socket.socket, socket.socket]] = []
        self._sockets: list[socket.socket] = []
        # The Last-Event-ID of every event-stream request (None when it sent none), in order.
        self.event_requests: list[str | None] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_event_streams(self) -> int:
        """Drop every event-stream connection open now; returns how many were cut."""
        with self._lock:
            streams, self._streams = self._streams, []
        for pair in streams:
            for sock in pair:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        return len(streams)

    def close(self) -> None:
        with suppress(OSError):
            self.listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._sockets += [client, upstream]
            pair = (client, upstream)
            threading.Thread(target=self._pump, args=(client, upstream, pair), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def _pump(
        self,
        source: socket.socket,
        sink: socket.socket,
        requests_of: tuple[socket.socket, socket.socket] | None,
    ) -> None:
        with suppress(OSError):
            while chunk := source.recv(65536):
                if requests_of is not None and EVENTS_REQUEST.match(chunk):
                    self._note_event_request(chunk, requests_of)
                sink.sendall(chunk)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def _note_event_request(self, chunk: bytes, pair: tuple[socket.socket, socket.socket]) -> None:
        found = LAST_EVENT_ID.search(chunk)
        with self._lock:
            self.event_requests.append(found.group(1).decode() if found else None)
            self._streams.append(pair)


@contextmanager
def cutting_proxy(upstream_port: int) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(upstream_port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
