"""The `local` backend: /bin/sh -c in the project's workdir, in its own process group."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

from rdev_common.events import CommandRequested
from rdev_executor.service_layer.ports import Chunk

READ_SIZE = 256 * 1024
# Pipes of 1 MiB (Linux's limit for an unprivileged process, the default being
# 64 KiB): a fast writer runs ahead while the executor publishes what it read,
# instead of stopping every 64 KiB, and each read takes up to READ_SIZE at once.
# For `seq 1 5000000` this halved the executor's CPU time.
PIPE_SIZE = 1024 * 1024
# Chunks read but not yet published (2 MiB at most); past this the pipes fill and
# the command waits, so a fast writer never grows the executor's memory.
QUEUE_CHUNKS = 8
HIDDEN_ENV_PREFIXES = ("RDEV_", "OTEL_", "NATS_")


def base_env() -> dict[str, str]:
    """The executor's environment without its own configuration and credentials."""
    return {k: v for k, v in os.environ.items() if not k.startswith(HIDDEN_ENV_PREFIXES)}


class LocalProcess:
    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
    ) -> None:
        self.proc = proc
        self._queue: asyncio.Queue[Chunk | None] = asyncio.Queue(QUEUE_CHUNKS)
        self._readers = [
            asyncio.create_task(self._read("stdout", stdout)),
            asyncio.create_task(self._read("stderr", stderr)),
        ]

    async def _read(self, name: str, stream: asyncio.StreamReader) -> None:
        try:
            while data := await stream.read(READ_SIZE):
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
        (out_r, out_w), (err_r, err_w) = _pipe(), _pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                request.command,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                start_new_session=True,
            )
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w):  # the child's ends: EOF comes when the child closes them
                os.close(fd)
        return LocalProcess(proc, await _reader(out_r), await _reader(err_r))


def _pipe() -> tuple[int, int]:
    """A pipe (non-inheritable ends) of PIPE_SIZE, or of the default size where refused."""
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):  # over the user's total pipe allowance
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    return read_end, write_end


async def _reader(fd: int) -> asyncio.StreamReader:
    """A stream reader on the read end `fd`, which it owns (and closes at EOF)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_SIZE, loop=loop)
    pipe = os.fdopen(fd, "rb", buffering=0)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe)
    except BaseException:
        pipe.close()
        raise
    return reader
