"""A Kubernetes API server double on loopback, speaking the real wire protocol.

REST for pods (create, get, list with label/field selectors, watch as a stream
of JSON lines, strategic-merge PATCH of metadata, delete) with the shapes the
real API server returns, and pod exec over the channel.k8s.io websocket
subprotocol (v4/v5): each binary frame's first byte is its channel, 1 stdout,
2 stderr, 3 the final v1 Status. Exec'd commands run as real local processes,
so signals and process groups behave as in a container. A created pod turns
Running and Ready after `ready_after_s`; deleting a pod kills every process
exec'd into it, as a container's end would.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import signal
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

TOKEN = "double-token"
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code: int, reason: str, message: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.json_response(body, status=code)


def exec_status(returncode: int, argv: list[str]) -> dict[str, Any]:
    if returncode == 0:
        return {"metadata": {}, "status": "Success"}
    code = 128 - returncode if returncode < 0 else returncode
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
        f"{argv[:2]}, exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        elif value is None:
            into.pop(key, None)
        else:
            into[key] = value


def matches(pod: dict[str, Any], label_selector: str, field_selector: str) -> bool:
    labels = pod["metadata"].get("labels") or {}
    for term in filter(None, label_selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    for term in filter(None, field_selector.split(",")):
        key, _, value = term.partition("=")
        if key == "metadata.name" and pod["metadata"]["name"] != value:
            return False
    return True


def descendants(root: int) -> list[int]:
    """Every live process below `root`, found through /proc parent links."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, pp in parents.items() if pp == pid]
        found += children
        frontier += children
    return found


class ApiServerDouble:
    def __init__(self, ready_after_s: float = 0.2) -> None:
        self.ready_after_s = ready_after_s
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: Counter[str] = Counter()
        self.execs: list[list[str]] = []
        self._version = 0
        self._watchers: list[asyncio.Queue[tuple[str, dict[str, Any]]]] = []
        self._procs: dict[tuple[str, str], set[asyncio.subprocess.Process]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.failing = False  # answer every request 503, as an overloaded API server
        self.forbidden_namespaces: set[str] = set()  # where RBAC grants nothing

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "double", "cluster": {"server": self.url}}],
                    "users": [{"name": "rdev", "user": {"token": TOKEN}}],
                    "contexts": [
                        {"name": "double", "context": {"cluster": "double", "user": "rdev"}}
                    ],
                    "current-context": "double",
                }
            )
        )
        return path

    async def start(self) -> None:
        app = web.Application(middlewares=[self._auth])
        base = "/api/v1/namespaces/{ns}/pods"
        app.router.add_get(base, self._list)
        app.router.add_post(base, self._create)
        app.router.add_get(base + "/{name}", self._get)
        app.router.add_patch(base + "/{name}", self._patch)
        app.router.add_delete(base + "/{name}", self._delete)
        app.router.add_get(base + "/{name}/exec", self._exec)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        if not self.port:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Stop answering, as an API server that went down; pods live on."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for queue in self._watchers:
            queue.put_nowait(("CLOSE", {}))

    async def close(self) -> None:
        await self.stop()
        for key in list(self._procs):
            self._kill_pod_processes(key)
        for task in list(self._tasks):
            task.cancel()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests[f"{request.method} {request.path}"] += 1
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return status(401, "Unauthorized", "Unauthorized")
        if self.failing:
            return status(503, "ServiceUnavailable", "the server is currently unable to respond")
        ns = request.match_info.get("ns")
        if ns in self.forbidden_namespaces:
            message = f'pods "x" is forbidden: User cannot get resource pods in the namespace {ns}'
            return status(403, "Forbidden", message)
        response: web.StreamResponse = await handler(request)
        return response

    # -- pods -------------------------------------------------------------

    def _changed(self, kind: str, pod: dict[str, Any]) -> None:
        self._version += 1
        pod["metadata"]["resourceVersion"] = str(self._version)
        for queue in self._watchers:
            queue.put_nowait((kind, copy.deepcopy(pod)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _create(self, request: web.Request) -> web.Response:
        ns, pod = request.match_info["ns"], await request.json()
        name = pod["metadata"]["name"]
        if (ns, name) in self.pods:
            return status(409, "AlreadyExists", f'pods "{name}" already exists')
        pod["metadata"].update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=now())
        pod["status"] = {"phase": "Pending", "conditions": []}
        self.pods[(ns, name)] = pod
        self._changed("ADDED", pod)
        self._spawn(self._become_ready(ns, name))
        return web.json_response(pod, status=201)

    async def _become_ready(self, ns: str, name: str) -> None:
        await asyncio.sleep(self.ready_after_s)
        pod = self.pods.get((ns, name))
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        pod["status"] = {
            "phase": "Running",
            "podIP": "10.0.0.7",
            "startTime": now(),
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": now()}
                for t in ("Initialized", "ContainersReady", "Ready", "PodScheduled")
            ],
        }
        self._changed("MODIFIED", pod)

    async def _get(self, request: web.Request) -> web.Response:
        pod = self.pods.get((request.match_info["ns"], request.match_info["name"]))
        if pod is None:
            return status(404, "NotFound", f'pods "{request.match_info["name"]}" not found')
        return web.json_response(pod)

    async def _patch(self, request: web.Request) -> web.Response:
        pod = self.pods.get((request.match_info["ns"], request.match_info["name"]))
        if pod is None:
            return status(404, "NotFound", f'pods "{request.match_info["name"]}" not found')
        merge(pod, {"metadata": (await request.json()).get("metadata", {})})
        self._changed("MODIFIED", pod)
        return web.json_response(pod)

    async def _delete(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        pod = self.pods.get(key)
        if pod is None:
            return status(404, "NotFound", f'pods "{key[1]}" not found')
        pod["metadata"]["deletionTimestamp"] = now()
        self._changed("MODIFIED", pod)
        self._kill_pod_processes(key)
        self._spawn(self._remove(key))
        return web.json_response(pod)

    async def _remove(self, key: tuple[str, str]) -> None:
        await asyncio.sleep(0.05)  # the kubelet's grace period, shortened
        pod = self.pods.pop(key, None)
        if pod is not None:
            self._changed("DELETED", pod)

    def evict(self, ns: str, name: str) -> None:
        pod = self.pods[(ns, name)]
        pod["status"].update(
            phase="Failed", reason="Evicted", message="The node was low on resource: memory."
        )
        self._changed("MODIFIED", pod)
        self._kill_pod_processes((ns, name))

    def _kill_pod_processes(self, key: tuple[str, str]) -> None:
        for proc in self._procs.pop(key, set()):
            for pid in [*descendants(proc.pid), proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    async def _list(self, request: web.Request) -> web.StreamResponse:
        ns, q = request.match_info["ns"], request.query
        selected = [
            copy.deepcopy(p)
            for (pns, _), p in self.pods.items()
            if pns == ns and matches(p, q.get("labelSelector", ""), q.get("fieldSelector", ""))
        ]
        if q.get("watch", "").lower() not in ("true", "1"):
            return web.json_response(
                {
                    "kind": "PodList",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(self._version)},
                    "items": selected,
                }
            )
        return await self._watch(request, ns, selected)

    async def _watch(
        self, request: web.Request, ns: str, current: list[dict[str, Any]]
    ) -> web.StreamResponse:
        q = request.query
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._watchers.append(queue)
        for pod in current:  # a watch without resourceVersion starts with the state
            queue.put_nowait(("ADDED", pod))
        try:
            async with asyncio.timeout(float(q.get("timeoutSeconds", "300"))):
                while (event := await queue.get())[0] != "CLOSE":
                    kind, pod = event
                    if pod["metadata"].get("namespace") == ns and matches(
                        pod, q.get("labelSelector", ""), q.get("fieldSelector", "")
                    ):
                        line = json.dumps({"type": kind, "object": pod}) + "\n"
                        await response.write(line.encode())
        except (TimeoutError, ConnectionResetError):
            pass
        finally:
            self._watchers.remove(queue)
        return response

    # -- exec -------------------------------------------------------------

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        key = (request.match_info["ns"], request.match_info["name"])
        pod = self.pods.get(key)
        if pod is None:
            return status(404, "NotFound", f'pods "{key[1]}" not found')
        if pod["status"].get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
            return status(400, "BadRequest", "pod is not running")
        argv = request.query.getall("command")
        self.execs.append(argv)
        ws = web.WebSocketResponse(protocols=PROTOCOLS)
        await ws.prepare(request)
        container = pod["spec"]["containers"][0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RDEV_")}
        env.update({e["name"]: e["value"] for e in container.get("env", [])})
        with_stdin = request.query.get("stdin", "").lower() in ("true", "1")
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            stdin=asyncio.subprocess.PIPE if with_stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self._procs.setdefault(key, set()).add(proc)
        feeding = asyncio.create_task(self._feed_stdin(ws, proc))
        try:
            await asyncio.gather(self._pipe(ws, 1, proc.stdout), self._pipe(ws, 2, proc.stderr))
            returncode = await proc.wait()
            await ws.send_bytes(b"\x03" + json.dumps(exec_status(returncode, argv)).encode())
        finally:
            self._procs.get(key, set()).discard(proc)
            await ws.close()
            feeding.cancel()
        return ws

    async def _feed_stdin(self, ws: web.WebSocketResponse, proc: Any) -> None:
        """Channel 0 to the process's stdin, closed when the client goes away."""
        try:
            async for msg in ws:
                if msg.type is WSMsgType.BINARY and msg.data[:1] == b"\x00" and proc.stdin:
                    proc.stdin.write(msg.data[1:])
        finally:
            if proc.stdin is not None:
                proc.stdin.close()

    async def _pipe(self, ws: web.WebSocketResponse, channel: int, stream: Any) -> None:
        while data := await stream.read(65536):
            if ws.closed:
                return
            await ws.send_bytes(bytes([channel]) + data)
