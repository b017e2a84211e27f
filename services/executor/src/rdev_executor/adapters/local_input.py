"""Writing a local command's standard input (a pipe, or a terminal's master side)."""

from __future__ import annotations

import asyncio
import contextlib

from rdev_executor.service_layer.ports import InputClosed


async def stdin_write(stdin: asyncio.StreamWriter | None, data: bytes) -> None:
    """`data` into a command's stdin pipe, waiting while the pipe is full; InputClosed
    when there is none or the command closed it (exited, or closed its stdin)."""
    if stdin is None or stdin.is_closing():
        raise InputClosed("the command's stdin is closed")
    try:
        stdin.write(data)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError) as exc:
        raise InputClosed("the command closed its stdin") from exc


def stdin_close(stdin: asyncio.StreamWriter | None) -> None:
    if stdin is not None:
        with contextlib.suppress(OSError):
            stdin.close()
