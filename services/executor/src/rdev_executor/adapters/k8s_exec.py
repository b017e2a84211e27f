"""A command running in a workspace pod through the exec API (channel.k8s.io).

Each binary websocket frame starts with its channel: 1 stdout, 2 stderr, 3 the
final v1 Status. The command runs in its own session (`setsid`) and its
process-group id is kept in a pid file in the pod, so a second exec can signal
the whole group; the wrapper kills whatever of the group is left when the
command exits, so nothing keeps running in the pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
import structlog

from rdev_executor.service_layer.ports import Chunk, ProcessLost

log = structlog.get_logger()

STDOUT, STDERR, STATUS = 1, 2, 3
CHANNELS = {STDOUT: "stdout", STDERR: "stderr"}
QUEUE_CHUNKS = 32

# $1 command, $2 cwd, $3 pid-file name, then NAME=VALUE environment entries.
# The background job is not a group leader, so setsid makes it a new session
# without forking: its pid is the group id. `wait 2>/dev/null` keeps the
# shell's "Terminated" notice out of the command's stderr. The exec's stdin
# stays open while rdev is connected; a watcher (its own group, fed fd 3 since
# background jobs get /dev/null) kills the command when it ends, so an
# executor that dies or loses the API server leaves nothing running.
RUN_SCRIPT = """c=$1 d=$2 f=/tmp/rdev-$3.pid
shift 3
cd "$d" || exit 1
exec 3<&0
setsid env "$@" /bin/sh -c "$c" </dev/null 3<&- &
p=$!
echo "$p" > "$f"
setsid /bin/sh -c 'cat >/dev/null; kill -9 -"$1"' rdev-watch "$p" <&3 >/dev/null 2>&1 &
w=$!
exec 3<&-
wait "$p" 2>/dev/null
r=$?
kill -9 -"$p" -"$w" 2>/dev/null
rm -f "$f"
exit "$r"
"""

# $1 signal number, $2 pid-file name. The command may not have written its pid
# file yet when a cancel arrives at once, so wait for it briefly.
KILL_SCRIPT = """f=/tmp/rdev-$2.pid
for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s "$f" ] && break; sleep 0.1; done
[ -s "$f" ] && kill -"$1" -"$(cat "$f")" 2>/dev/null
exit 0
"""


def run_argv(command: str, cwd: str, tag: str, env: dict[str, str]) -> list[str]:
    return ["/bin/sh", "-c", RUN_SCRIPT, "rdev", command, cwd, tag] + [
        f"{k}={v}" for k, v in env.items()
    ]


def kill_argv(signum: int, tag: str) -> list[str]:
    return ["/bin/sh", "-c", KILL_SCRIPT, "rdev-kill", str(signum), tag]


def exit_code_of(status: dict[str, Any]) -> int | None:
    """The exit code in a v1 Status from channel 3, or None if it reports no exit."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                return int(cause["message"])
    return None


class KubernetesProcess:
    """The `Process` port over one exec websocket."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        *,
        pod: str,
        signal_group: Callable[[int], Coroutine[Any, Any, None]],
        pod_gone: Callable[[], Awaitable[str | None]],
        on_exit: Callable[[], None] = lambda: None,
    ) -> None:
        self.pod = pod
        self._ws = ws
        self._signal = signal_group
        self._pod_gone = pod_gone
        self._on_exit = on_exit
        self._queue: asyncio.Queue[Chunk | None] = asyncio.Queue(QUEUE_CHUNKS)
        self._status: dict[str, Any] | None = None
        self._kills: set[asyncio.Task[None]] = set()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type is not aiohttp.WSMsgType.BINARY or not msg.data:
                    continue
                channel, data = msg.data[0], msg.data[1:]
                if channel in CHANNELS and data:
                    await self._queue.put(Chunk(CHANNELS[channel], data))
                elif channel == STATUS and data:
                    self._status = json.loads(data)
        finally:
            self._on_exit()
            await self._ws.close()
            await self._queue.put(None)

    async def output(self) -> AsyncIterator[Chunk]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk

    async def wait(self) -> int:
        with contextlib.suppress(aiohttp.ClientError):
            await asyncio.shield(self._reader)
        code = exit_code_of(self._status) if self._status is not None else None
        if code == 0:
            return 0
        # A non-zero exit or a stream cut without a status may be the pod
        # going away (a killed container ends its execs with 137).
        reason = await self._pod_gone()
        if reason is not None:
            raise ProcessLost(f"workspace pod {self.pod} {reason} while the command ran")
        if code is None:
            message = (self._status or {}).get("message") or "the exec stream closed early"
            raise ProcessLost(f"lost the command in workspace pod {self.pod}: {message}")
        return code

    def close(self) -> None:
        self._reader.cancel()  # it closes the websocket and ends the output

    def signal_group(self, signum: int) -> None:
        task = asyncio.create_task(self._signal(signum))
        self._kills.add(task)
        task.add_done_callback(self._kills.discard)
