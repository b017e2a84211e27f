"""The `local` backend: /bin/sh -c in the project's workdir, in its own process group."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator

from rdev_common import validation
from rdev_common.errors import ValidationFailed
from rdev_common.events import CommandRequested
from rdev_executor.adapters.local_input import stdin_close, stdin_write
from rdev_executor.adapters.local_pty import PtyProcess, start_pty
from rdev_executor.adapters.process_guard import ProcessGuard
from rdev_executor.service_layer.ports import Chunk

READ_SIZE = 256 * 1024
# stdout is a pipe of up to 1 MiB (Linux's limit for an unprivileged process; the
# default is 64 KiB): a fast writer runs ahead while the executor publishes what it
# read, and each read takes up to READ_SIZE at once. In alternating runs of
# `seq 1 5000000` this cut the executor's CPU by about a quarter. Pipe buffers count
# against the user's allowance (fs.pipe-user-pages-soft, 64 MiB by default): past it
# the kernel makes every new pipe of the user tiny, the commands' own pipelines
# included, so the executor keeps its runs' pipes to a quarter of it.
MAX_PIPE_SIZE = 1024 * 1024
DEFAULT_PIPE_SIZE = 64 * 1024
# Chunks read but not yet published; past this (and the stream reader's own buffer
# of twice READ_SIZE) the pipe fills and the command waits: ≈ 2.75 MiB read ahead per
# stream at most, so a fast writer never grows the executor's memory.
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
        transports: list[asyncio.BaseTransport],
        guard: ProcessGuard | None = None,
    ) -> None:
        self.proc = proc
        self._transports = transports
        self._queue: asyncio.Queue[Chunk | None] = asyncio.Queue(QUEUE_CHUNKS)
        self._readers = [
            asyncio.create_task(self._read("stdout", stdout)),
            asyncio.create_task(self._read("stderr", stderr)),
        ]
        if guard is not None:
            guard.add(proc.pid)
            self._unguard = asyncio.create_task(self._unguard_at_end(guard))

    async def _unguard_at_end(self, guard: ProcessGuard) -> None:
        """The run is over for the guard once the shell exited and its output ended
        (what is left of its group then has let go of the run)."""
        try:
            await self.proc.wait()
            await asyncio.gather(*self._readers, return_exceptions=True)
        finally:
            guard.remove(self.proc.pid)

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

    async def write_input(self, data: bytes) -> None:
        """Into the command's stdin; waits while its pipe is full (it does not read)."""
        await stdin_write(self.proc.stdin, data)

    def close_input(self) -> None:
        stdin_close(self.proc.stdin)

    def close(self) -> None:
        for transport in self._transports:  # each reader then sees the end of its pipe
            transport.close()

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)


class LocalBackend:
    def __init__(self, concurrency: int = 1, guard: ProcessGuard | None = None) -> None:
        # The executor's own environment does not change while it runs.
        self.env = base_env()
        self.pipe_size = pipe_size_for(concurrency)
        self.guard = guard

    async def start(
        self, request: CommandRequested, extra_env: dict[str, str]
    ) -> LocalProcess | PtyProcess:
        if not request.workdir or not os.path.isdir(request.workdir):  # noqa: ASYNC240
            raise FileNotFoundError(f"workspace {request.workdir!r} does not exist on this host")
        try:  # symlinks resolved here, on the host that runs the command
            cwd = validation.resolved_cwd(request.workdir, request.cwd or ".")
        except ValidationFailed as exc:
            raise FileNotFoundError(exc.message) from exc
        env = {**self.env, **request.env, **extra_env}
        if request.tty:
            return await start_pty(request.command, cwd, env, request.tty, self.guard)
        # Both readers are set up before the spawn: once the command runs, nothing is
        # left to fail or be cancelled that would leave it running with no handle.
        owned: list[int] = []  # descriptors still to close here
        transports: list[asyncio.BaseTransport] = []
        readers: list[asyncio.StreamReader] = []
        try:
            out_r, out_w = _pipe(self.pipe_size)
            owned += (out_r, out_w)
            err_r, err_w = _pipe(DEFAULT_PIPE_SIZE)
            owned += (err_r, err_w)
            for fd in (out_r, err_r):
                owned.remove(fd)  # the reader owns it from here, failing or not
                reader, transport = await _reader(fd)
                readers.append(reader)
                transports.append(transport)
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                request.command,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.PIPE if request.stdin else asyncio.subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                start_new_session=True,
            )
        except BaseException:
            for transport in transports:
                transport.close()
            raise
        finally:
            # The child's ends (EOF comes when the child and its children close theirs).
            for fd in owned:
                os.close(fd)
        stdout, stderr = readers
        return LocalProcess(proc, stdout, stderr, transports, self.guard)


def pipe_size_for(concurrency: int, allowance: int | None = None) -> int:
    """The stdout pipe size: up to 1 MiB, within a quarter of the user's pipe allowance
    (in bytes; read from the kernel when not given) for `concurrency` runs at once."""
    if allowance is None:
        try:
            with open("/proc/sys/fs/pipe-user-pages-soft") as f:
                allowance = int(f.read()) * 4096
        except (OSError, ValueError):
            allowance = 0
    if not allowance:  # no limit
        return MAX_PIPE_SIZE
    size = MAX_PIPE_SIZE
    while size > DEFAULT_PIPE_SIZE and size * max(concurrency, 1) > allowance // 4:
        size //= 2
    return size


def _pipe(size: int) -> tuple[int, int]:
    """A pipe (non-inheritable ends) of `size`, or of the default size where refused."""
    read_end, write_end = os.pipe()
    if size > DEFAULT_PIPE_SIZE:
        with contextlib.suppress(OSError):  # over the user's total pipe allowance
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, size)
    return read_end, write_end


async def _reader(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """A stream reader on the read end `fd`, which it owns (closed at EOF or on failure)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_SIZE, loop=loop)
    pipe = os.fdopen(fd, "rb", buffering=0)
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe
        )
    except BaseException:
        pipe.close()
        raise
    return reader, transport
