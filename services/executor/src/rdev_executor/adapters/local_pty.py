"""A local command in a pseudo-terminal (`CommandRequested.tty`): one `tty` stream out,
keystrokes in, resizable; the shell is the session leader of its terminal."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import struct
import termios
from collections.abc import AsyncIterator

from rdev_common.events import TtySize
from rdev_executor.adapters.process_guard import ProcessGuard
from rdev_executor.service_layer.ports import Chunk, InputClosed

READ_SIZE = 64 * 1024
QUEUE_CHUNKS = 8
EOF_CHAR = b"\x04"  # what a terminal's "end of input" is: ^D at a line's start


def _set_size(fd: int, size: TtySize) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.rows, size.cols, 0, 0))


def _take_terminal() -> None:
    """In the child, after setsid: make its stdin (the terminal) the controlling one."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyProcess:
    def __init__(
        self, proc: asyncio.subprocess.Process, master: int, guard: ProcessGuard | None
    ) -> None:
        self.proc = proc
        self.master = master
        self._queue: asyncio.Queue[Chunk | None] = asyncio.Queue(QUEUE_CHUNKS)
        self._reader = asyncio.create_task(self._read())
        self._input_closed = False
        self._guard = guard
        if guard is not None:
            guard.add(proc.pid)

    async def _ready(self, writing: bool) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        add, remove = (
            (loop.add_writer, loop.remove_writer)
            if writing
            else (loop.add_reader, loop.remove_reader)
        )
        add(self.master, wake)
        try:
            await ready
        finally:
            remove(self.master)

    async def _read(self) -> None:
        try:
            while True:
                await self._ready(writing=False)
                try:
                    data = os.read(self.master, READ_SIZE)
                except BlockingIOError:
                    continue
                except OSError:  # EIO: the terminal's last user closed it
                    break
                if not data:
                    break
                await self._queue.put(Chunk("tty", data))
        finally:
            await self._queue.put(None)

    async def output(self) -> AsyncIterator[Chunk]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk

    async def wait(self) -> int:
        code = await self.proc.wait()
        if self._guard is not None:
            self._guard.remove(self.proc.pid)
        return code

    async def write_input(self, data: bytes) -> None:
        if self._input_closed:
            raise InputClosed("the terminal's input is closed")
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.master, view)
            except BlockingIOError:
                await self._ready(writing=True)
                continue
            except OSError as exc:
                raise InputClosed("the terminal is gone") from exc
            view = view[written:]

    def close_input(self) -> None:
        if not self._input_closed:
            with contextlib.suppress(OSError):
                os.write(self.master, EOF_CHAR)
            self._input_closed = True

    def resize(self, cols: int, rows: int) -> None:
        with contextlib.suppress(OSError):  # the kernel signals SIGWINCH to the foreground
            _set_size(self.master, TtySize(cols=cols, rows=rows))

    def close(self) -> None:
        self._reader.cancel()
        self._queue.put_nowait(None)
        with contextlib.suppress(OSError):
            os.close(self.master)

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)


async def start_pty(
    command: str, cwd: str, env: dict[str, str], size: TtySize, guard: ProcessGuard | None
) -> PtyProcess:
    master, slave = pty.openpty()
    try:
        _set_size(slave, size)
        os.set_blocking(master, False)
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            cwd=cwd,
            env={"TERM": "xterm-256color", **env},
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=_take_terminal,
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)  # the child's; the terminal hangs up once its users close theirs
    return PtyProcess(proc, master, guard)
