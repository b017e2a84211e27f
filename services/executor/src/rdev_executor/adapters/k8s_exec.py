"""A command running in a workspace pod through the exec API (channel.k8s.io).

Each binary websocket frame starts with its channel: 0 stdin, 1 stdout, 2 stderr,
3 the final v1 Status. The command runs in its own session (`setsid`) and its
process-group id is kept in a pid file in the pod, so a second exec can signal
the whole group; the wrapper kills whatever of the group is left when the
command exits, so nothing keeps running in the pod.

The environment (project secrets included) travels over stdin, never in the
exec URL: the API server keeps every request URI in its audit log, and a
refused handshake would put the URL into error text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
import structlog

from rdev_executor.service_layer.ports import Chunk, ProcessLost

log = structlog.get_logger()

STDIN, STDOUT, STDERR, STATUS = 0, 1, 2, 3
CHANNELS = {STDOUT: "stdout", STDERR: "stderr"}
QUEUE_CHUNKS = 32
KILLED = 137  # 128 + SIGKILL: the container (OOM) or the runtime killed the command

# $1 command, $2 cwd, $3 pid-file name, $4 end-of-environment marker. The
# environment arrives first on stdin as `export NAME='value'` lines, ended by
# the marker line. The background job is not a group leader, so setsid makes
# it a new session without forking: its pid is the group id. `wait
# 2>/dev/null` keeps the shell's "Terminated" notice out of the command's
# stderr. The exec's stdin stays open while rdev is connected (rdev writes a
# newline now and then, which keeps idle proxies from closing the stream); a
# watcher (its own group, fed fd 3 since background jobs get /dev/null) kills
# the command when it ends, so an executor that dies or loses the API server
# leaves nothing running.
RUN_SCRIPT = """c=$1 d=$2 f=/tmp/rdev-$3.pid m=$4 e= ok=
while IFS= read -r l; do
  if [ "$l" = "$m" ]; then ok=1; break; fi
  e="$e$l
"
done
[ -n "$ok" ] || exit 1
cd "$d" || exit 1
exec 3<&0
setsid /bin/sh -c 'eval "$1"; exec /bin/sh -c "$2"' rdev-env "$e" "$c" </dev/null 3<&- &
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


def run_argv(command: str, cwd: str, tag: str, marker: str) -> list[str]:
    return ["/bin/sh", "-c", RUN_SCRIPT, "rdev", command, cwd, tag, marker]


def env_block(env: dict[str, str], marker: str) -> bytes:
    """The stdin frame that hands the command its environment."""
    lines = [f"export {name}={shlex.quote(value)}\n" for name, value in env.items()]
    return bytes([STDIN]) + "".join([*lines, marker, "\n"]).encode()


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
        lost_reason: Callable[[bool], Awaitable[str | None]],
        keepalive_s: float,
        on_exit: Callable[[], None] = lambda: None,
    ) -> None:
        self.pod = pod
        self._ws = ws
        self._signal = signal_group
        self._lost_reason = lost_reason
        self._on_exit = on_exit
        self._queue: asyncio.Queue[Chunk | None] = asyncio.Queue(QUEUE_CHUNKS)
        self._status: dict[str, Any] | None = None
        self._dead: str | None = None
        self._killed = False
        self._kills: set[asyncio.Task[None]] = set()
        self._reader = asyncio.create_task(self._read())
        self._keepalive = asyncio.create_task(self._keep_alive(keepalive_s))

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
            if isinstance(self._ws.exception(), aiohttp.ServerTimeoutError):
                self._dead = "stopped answering pings"
        finally:
            self._keepalive.cancel()
            self._on_exit()
            await self._ws.close()
            await self._queue.put(None)

    async def _keep_alive(self, every_s: float) -> None:
        """A newline on stdin now and then: traffic every hop sees (the wrapper's
        watcher reads and drops it), besides the websocket pings."""
        with contextlib.suppress(Exception):
            while not self._ws.closed:
                await asyncio.sleep(every_s)
                await self._ws.send_bytes(bytes([STDIN]) + b"\n")

    async def output(self) -> AsyncIterator[Chunk]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk

    async def wait(self) -> int:
        with contextlib.suppress(aiohttp.ClientError):
            await asyncio.shield(self._reader)
        code = exit_code_of(self._status) if self._status is not None else None
        if code == 0:
            return 0
        if self._dead is not None:
            self.signal_group(9)  # the stream is gone; the command must not run on unseen
            raise ProcessLost(
                f"the exec stream to workspace pod {self.pod} {self._dead}; the command was killed"
            )
        # A non-zero exit or a stream cut without a status may be the pod going
        # away or its container killed for memory (which ends its execs with 137,
        # and whose status the kubelet posts a little later).
        reason = await self._lost_reason(code in (KILLED, None) and not self._killed)
        if reason is not None:
            raise ProcessLost(f"workspace pod {self.pod} {reason} while the command ran")
        if code is None:
            message = (self._status or {}).get("message") or "the exec stream closed early"
            self.signal_group(9)
            raise ProcessLost(f"lost the command in workspace pod {self.pod}: {message}")
        return code

    def close(self) -> None:
        self._reader.cancel()  # it closes the websocket and ends the output

    def signal_group(self, signum: int) -> None:
        self._killed = self._killed or signum == 9
        task = asyncio.create_task(self._signal(signum))
        self._kills.add(task)
        task.add_done_callback(self._kills.discard)
