"""The `local` backend: /bin/sh -c in the project's workdir, in its own process group."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from rdev_common.events import CommandRequested
from rdev_executor.service_layer.ports import Chunk

READ_SIZE = 64 * 1024
# Chunks read but not yet published; past this the pipes fill and the command
# waits, so a fast writer never grows the executor's memory.
QUEUE_CHUNKS = 32
HIDDEN_ENV_PREFIXES = ("RDEV_", "OTEL_", "NATS_")


def base_env() -> dict[str, str]:
    """The executor's environment without its own configuration and credentials."""
    return {k: v for k, v in os.environ.items() if not k.startswith(HIDDEN_ENV_PREFIXES)}


class LocalProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._queue: asyncio.Queue[Chunk | None] = asyncio.Queue(QUEUE_CHUNKS)
        self._readers = [
            asyncio.create_task(self._read("stdout", proc.stdout)),
            asyncio.create_task(self._read("stderr", proc.stderr)),
        ]

    async def _read(self, name: str, stream: asyncio.StreamReader | None) -> None:
        try:
            while stream is not None and (data := await stream.read(READ_SIZE)):
                await self._queue.put(Chunk(name, data))
        finally:
            await self._queue.put(None)

    async def output(self) -> AsyncIterator[Chunk]:
        open_streams = len(self._readers)
        while open_streams:
            chunk = await self._queue.get()
            if chunk is None:
                open_streams -= 1
            else:
                yield chunk

    async def wait(self) -> int:
        return await self.proc.wait()

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)


class LocalBackend:
    def __init__(self) -> None:
        # The executor's own environment does not change while it runs.
        self.env = base_env()

    async def start(self, request: CommandRequested, extra_env: dict[str, str]) -> LocalProcess:
        if not request.workdir or not os.path.isdir(request.workdir):  # noqa: ASYNC240
            raise FileNotFoundError(f"workspace {request.workdir!r} does not exist on this host")
        cwd = Path(request.workdir, request.cwd or ".")
        if not os.path.isdir(cwd):  # noqa: ASYNC240
            raise FileNotFoundError(f"cwd {request.cwd!r} does not exist in the workspace")
        env = {**self.env, **request.env, **extra_env}
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            request.command,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=READ_SIZE,
        )
        return LocalProcess(proc)
