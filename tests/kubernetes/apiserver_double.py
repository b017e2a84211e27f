"""A Kubernetes API server double on loopback, speaking the real wire protocol.

REST for pods (create, get, list with label/field selectors, strategic-merge
PATCH of metadata, delete with DeleteOptions preconditions) with the shapes and
Status bodies the real API server returns, and pod exec over the channel.k8s.io
websocket subprotocol (v4/v5): each binary frame's first byte is its channel,
0 stdin, 1 stdout, 2 stderr, 3 the final v1 Status. Exec'd commands run as real
local processes, so signals and process groups behave as in a container.

Unkind where a real cluster is (see double_kubelet.py for pods): TLS and a
bearer token that can be rotated (401 for the old one); every request is
authorised against deploy/base/executor-rbac.yaml; every request URI is kept
(as an audit log keeps them); 429 with Retry-After and 503 on demand; exec
refused by a kubelet with a Status body; idle exec streams closed after
`exec_idle_timeout_s` without a frame either way (pings count); streams that
go half-open (no pong, no data, never closed); pods that stay Terminating.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import os
import signal
import ssl
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import WSMsgType, web

from tests.kubernetes.double_kubelet import Kubelet, now
from tests.kubernetes.double_rbac import Rbac
from tests.kubernetes.double_tls import make_server_tls

TOKEN = "double-token"
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")


def status(code: int, reason: str, message: str, **headers: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.json_response(body, status=code, headers=headers)


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


def verbs_for(request: web.Request) -> tuple[list[str], str] | None:
    """The RBAC verbs and resource a request needs, as the API server derives them."""
    name, sub = request.match_info.get("name"), request.path.rsplit("/", 1)[-1]
    if sub == "exec":  # websocket exec: GET upgraded, authorised as get and create (1.35)
        return ["get", "create"], "pods/exec"
    method = request.method
    if name is None:
        if method == "POST":
            return ["create"], "pods"
        watching = request.query.get("watch", "").lower() in ("true", "1")
        return ["watch" if watching else "list"], "pods"
    verb = {"GET": "get", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}[method]
    return [verb], "pods"


class ApiServerDouble:
    def __init__(
        self, ready_after_s: float = 0.2, *, tls_dir: Path | None = None, rbac: Rbac | None = None
    ) -> None:
        self.ready_after_s = ready_after_s
        self.rbac = rbac or Rbac.load()
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: Counter[str] = Counter()
        self.uris: list[str] = []  # every request URI, as the audit log keeps them
        self.execs: list[list[str]] = []
        self.token = TOKEN
        self.kubelet = Kubelet(self)
        self._version = 0
        self._procs: dict[tuple[str, str], set[asyncio.subprocess.Process]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._streams: set[web.WebSocketResponse] = set()
        self._watchers: list[asyncio.Queue[tuple[str, dict[str, Any]]]] = []
        self._frozen: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self._ssl: ssl.SSLContext | None = None
        self._ca: bytes | None = None
        if tls_dir is not None:
            self._ssl, self._ca = make_server_tls(tls_dir)
        self.port = 0
        # Unkindness on demand.
        self.failing = False  # answer every request 503, as an overloaded API server
        self.throttled = 0  # answer this many next requests 429 (API Priority and Fairness)
        self.retry_after = "1"
        self.exec_refusals: dict[str, tuple[int, str, str]] = {}  # pod → kubelet's refusal
        self.exec_refusals_left: dict[str, int] = {}  # pod → refusals before it accepts again
        self.exec_idle_timeout_s: float | None = None  # streamingConnectionIdleTimeout
        self.unpullable_images: set[str] = set()
        self.pull_backoff_s = 0.3
        self.slow_pulls: dict[str, asyncio.Event] = {}  # image → its pull ends when set
        self.extra_nodes: dict[str, dict[str, str]] = {}  # nodes an autoscaler added
        self.nodes_changed = asyncio.Event()
        self.delete_after_s = 0.05  # the kubelet's grace period, shortened
        self.holds: dict[str, asyncio.Event] = {}  # method → requests wait until it is set
        self.held: Counter[str] = Counter()

    @property
    def url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://127.0.0.1:{self.port}"

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for the double, with its current token."""
        cluster: dict[str, Any] = {"server": self.url}
        if self._ca is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self._ca).decode()
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "double", "cluster": cluster}],
                    "users": [{"name": "rdev", "user": {"token": self.token}}],
                    "contexts": [
                        {"name": "double", "context": {"cluster": "double", "user": "rdev"}}
                    ],
                    "current-context": "double",
                }
            )
        )
        return path

    def client_ssl(self) -> ssl.SSLContext | bool:
        """What a client of the double verifies its certificate with."""
        if self._ca is None:
            return True
        return ssl.create_default_context(cadata=self._ca.decode())

    def rotate_token(self) -> str:
        """A new token; the old one is refused from now on, as an expired credential."""
        self.token = f"double-token-{uuid.uuid4().hex[:8]}"
        return self.token

    async def start(self) -> None:
        app = web.Application(middlewares=[self._gate])
        base = "/api/v1/namespaces/{ns}/pods"
        app.router.add_get(base, self._list)
        app.router.add_post(base, self._create)
        app.router.add_get(base + "/{name}", self._get)
        app.router.add_patch(base + "/{name}", self._patch)
        app.router.add_delete(base + "/{name}", self._delete)
        app.router.add_get(base + "/{name}/exec", self._exec)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self._ssl)
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
            self.kill_pod_processes(key)
        for task in list(self._tasks):
            task.cancel()

    def hold(self, method: str) -> asyncio.Event:
        """Requests of `method` wait (as a slow API server would) until the event is set."""
        return self.holds.setdefault(method, asyncio.Event())

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests[f"{request.method} {request.path}"] += 1
        self.uris.append(unquote(request.raw_path))
        if (gate := self.holds.get(request.method)) is not None and not gate.is_set():
            self.held[request.method] += 1
            await gate.wait()
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return status(401, "Unauthorized", "Unauthorized")
        if self.failing:
            return status(503, "ServiceUnavailable", "the server is currently unable to respond")
        if self.throttled > 0:
            self.throttled -= 1
            message = "Too many requests, please try again later."
            return status(429, "TooManyRequests", message, **{"Retry-After": self.retry_after})
        needed = verbs_for(request)
        if needed is not None:
            ns, name = request.match_info["ns"], request.match_info.get("name", "")
            denial = self.rbac.denial(ns, needed[0], needed[1], name)
            if denial is not None:
                return status(403, "Forbidden", denial)
        response: web.StreamResponse = await handler(request)
        return response

    # -- pods -------------------------------------------------------------

    def changed(self, pod: dict[str, Any], kind: str = "MODIFIED") -> None:
        self._version += 1
        pod["metadata"]["resourceVersion"] = str(self._version)
        for queue in self._watchers:
            queue.put_nowait((kind, copy.deepcopy(pod)))

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _create(self, request: web.Request) -> web.Response:
        ns, pod = request.match_info["ns"], await request.json()
        name = pod["metadata"]["name"]
        if (ns, name) in self.pods:
            return status(409, "AlreadyExists", f'pods "{name}" already exists')
        uid = str(uuid.uuid4())
        pod["metadata"].update(namespace=ns, uid=uid, creationTimestamp=now())
        pod["status"] = {"phase": "Pending", "conditions": [], "qosClass": "Burstable"}
        self.pods[(ns, name)] = pod
        self.changed(pod, "ADDED")
        self.spawn(self.kubelet.run_pod((ns, name), uid))
        return web.json_response(pod, status=201)

    def _found(self, request: web.Request) -> tuple[tuple[str, str], dict[str, Any] | None]:
        key = (request.match_info["ns"], request.match_info["name"])
        return key, self.pods.get(key)

    async def _get(self, request: web.Request) -> web.Response:
        key, pod = self._found(request)
        if pod is None:
            return status(404, "NotFound", f'pods "{key[1]}" not found')
        return web.json_response(pod)

    async def _patch(self, request: web.Request) -> web.Response:
        key, pod = self._found(request)
        if pod is None:
            return status(404, "NotFound", f'pods "{key[1]}" not found')
        merge(pod, {"metadata": (await request.json()).get("metadata", {})})
        self.changed(pod)
        return web.json_response(pod)

    async def _delete(self, request: web.Request) -> web.Response:
        key, pod = self._found(request)
        if pod is None:
            return status(404, "NotFound", f'pods "{key[1]}" not found')
        options = (await request.json()) if request.can_read_body else {}
        meta = pod["metadata"]
        pre = (options or {}).get("preconditions") or {}
        for field, have in (("uid", meta["uid"]), ("resourceVersion", meta["resourceVersion"])):
            want = pre.get(field)
            if want is not None and want != have:
                label = "UID" if field == "uid" else "ResourceVersion"
                return status(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on Pod "{key[1]}": Precondition failed: '
                    f"{label} in precondition: {want}, {label} in object meta: {have}",
                )
        if meta.get("deletionTimestamp"):
            return web.json_response(pod)  # already terminating: nothing changes
        meta["deletionTimestamp"] = now()
        meta["deletionGracePeriodSeconds"] = pod["spec"].get("terminationGracePeriodSeconds", 30)
        self.changed(pod)
        self.kill_pod_processes(key)
        if not meta.get("finalizers"):
            self.spawn(self._remove(key, meta["uid"]))
        return web.json_response(pod)

    async def _remove(self, key: tuple[str, str], uid: str) -> None:
        await asyncio.sleep(self.delete_after_s)
        if (pod := self.pods.get(key)) is not None and pod["metadata"]["uid"] == uid:
            del self.pods[key]
            self.changed(pod, "DELETED")

    def add_node(self, name: str, labels: dict[str, str]) -> None:
        """A node joins, as a cluster autoscaler adds one: pending pods may fit now."""
        self.extra_nodes[name] = {**labels, "kubernetes.io/hostname": name}
        changed, self.nodes_changed = self.nodes_changed, asyncio.Event()
        changed.set()

    def add_finalizer(self, ns: str, name: str, finalizer: str = "rdev.test/stuck") -> None:
        """The pod's delete will never finish (a finalizer no controller removes)."""
        pod = self.pods[(ns, name)]
        pod["metadata"].setdefault("finalizers", []).append(finalizer)
        self.changed(pod)

    def evict(self, ns: str, name: str) -> None:
        pod = self.pods[(ns, name)]
        pod["status"].update(
            phase="Failed", reason="Evicted", message="The node was low on resource: memory."
        )
        self.changed(pod)
        self.kill_pod_processes((ns, name))

    def oom_kill(self, ns: str, name: str, status_delay_s: float = 1.0) -> None:
        self.spawn(self.kubelet.oom_kill((ns, name), status_delay_s))

    def kill_pod_processes(self, key: tuple[str, str]) -> None:
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
        if q.get("watch", "").lower() in ("true", "1"):
            return await self._watch(request, ns, selected)
        return web.json_response(
            {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self._version)},
                "items": selected,
            }
        )

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

    def drop_streams(self) -> None:
        """Cut every open exec stream, as an API server or kubelet restart does: the
        TCP connection ends, with no close frame and no Status."""
        for ws in list(self._streams):
            transport = ws._req.transport if ws._req is not None else None
            if transport is not None:
                transport.abort()

    def freeze_streams(self) -> None:
        """Every open exec stream goes half-open: no data, no pong, never closed."""
        self._frozen |= self._streams

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        key, pod = self._found(request)
        if pod is None:
            return status(404, "NotFound", f'pods "{key[1]}" not found')
        if key[1] in self.exec_refusals:
            left = self.exec_refusals_left.get(key[1])
            if left is None or left > 0:
                if left is not None:
                    self.exec_refusals_left[key[1]] = left - 1
                return status(*self.exec_refusals[key[1]])
        if pod["status"].get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
            return status(400, "BadRequest", f"pod {key[1]} is not running")
        argv = request.query.getall("command")
        self.execs.append(argv)
        ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=False)
        await ws.prepare(request)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RDEV_")}
        env.update({e["name"]: e["value"] for e in pod["spec"]["containers"][0].get("env", [])})
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
        self._streams.add(ws)
        activity = [time.monotonic()]
        feeding = asyncio.create_task(self._feed_stdin(ws, proc, activity))
        idle = asyncio.create_task(self._close_when_idle(ws, activity))
        try:
            pipes = asyncio.gather(
                self._pipe(ws, 1, proc.stdout, activity), self._pipe(ws, 2, proc.stderr, activity)
            )
            await asyncio.wait({pipes, idle}, return_when=asyncio.FIRST_COMPLETED)
            if not idle.done():
                returncode = await proc.wait()
                await self._hold_if_frozen(ws)
                await ws.send_bytes(b"\x03" + json.dumps(exec_status(returncode, argv)).encode())
            else:
                pipes.cancel()
        finally:
            self._streams.discard(ws)
            self._procs.get(key, set()).discard(proc)
            idle.cancel()
            feeding.cancel()
            if proc.stdin is not None:
                proc.stdin.close()
            await ws.close()
        return ws

    async def _hold_if_frozen(self, ws: web.WebSocketResponse) -> None:
        if ws in self._frozen:
            await asyncio.Event().wait()  # until the double closes

    async def _close_when_idle(self, ws: web.WebSocketResponse, activity: list[float]) -> None:
        while True:
            await asyncio.sleep(0.05)
            limit = self.exec_idle_timeout_s
            if ws in self._frozen:
                continue
            if limit is not None and time.monotonic() - activity[0] > limit:
                return  # the kubelet closes the idle stream: no Status

    async def _feed_stdin(
        self, ws: web.WebSocketResponse, proc: Any, activity: list[float]
    ) -> None:
        """Channel 0 to the process's stdin, closed when the client goes away."""
        try:
            async for msg in ws:
                await self._hold_if_frozen(ws)
                activity[0] = time.monotonic()
                if msg.type is WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type is WSMsgType.BINARY and msg.data[:1] == b"\x00" and proc.stdin:
                    proc.stdin.write(msg.data[1:])
        finally:
            if proc.stdin is not None:
                proc.stdin.close()

    async def _pipe(
        self, ws: web.WebSocketResponse, channel: int, stream: Any, activity: list[float]
    ) -> None:
        while data := await stream.read(65536):
            await self._hold_if_frozen(ws)
            if ws.closed:
                return
            activity[0] = time.monotonic()
            await ws.send_bytes(bytes([channel]) + data)
