"""The executor's side of the process guard (guard_main.py): a run's processes never
outlive the executor, even one killed with SIGKILL.

Why a guard process, not PR_SET_PDEATHSIG on each command: the death signal reaches
only the process that asked for it (the shell), never its children, and asking needs
a preexec hook, which costs every spawn a full fork() of the executor. Why not a pid
file per run swept at the next start: nothing guarantees a next start, and a process
group id read back later may by then belong to someone else. The guard holds the
current list and acts the moment its pipe from the executor closes, while every group
id on it is still held by the run's processes. A process that leaves its group
(`setsid`) escapes it, as it escapes a cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import structlog

log = structlog.get_logger()

GUARD = Path(__file__).with_name("guard_main.py")


class ProcessGuard:
    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.groups: set[int] = set()
        self._proc: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        await self._spawn()
        self._watch = asyncio.create_task(self._restart_when_gone())

    async def _spawn(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            str(GUARD),
            str(self.grace_s),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            # Out of the executor's session: a terminal's Ctrl-C or a signal to the
            # supervisor's group must not end it before the executor.
            start_new_session=True,
        )
        for pgid in self.groups:
            self._send(f"+{pgid}\n")

    async def _restart_when_gone(self) -> None:
        while self._proc is not None:
            await self._proc.wait()
            if self._closing:
                return
            log.error("process guard exited, starting it again", code=self._proc.returncode)
            await asyncio.sleep(0.5)
            await self._spawn()

    def add(self, pgid: int) -> None:
        self.groups.add(pgid)
        self._send(f"+{pgid}\n")

    def remove(self, pgid: int) -> None:
        self.groups.discard(pgid)
        self._send(f"-{pgid}\n")

    def _send(self, line: str) -> None:
        stdin = self._proc.stdin if self._proc else None
        if stdin is not None and not stdin.is_closing():
            with contextlib.suppress(OSError):
                stdin.write(line.encode())

    def kill_all(self) -> None:
        """SIGKILL every run's process group still listed (the executor is exiting)."""
        for pgid in list(self.groups):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
                log.warning("run processes killed as the executor exits", pgid=pgid)
            self.remove(pgid)

    async def close(self) -> None:
        self._closing = True
        if self._watch is not None:
            self._watch.cancel()
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), self.grace_s + 5)
