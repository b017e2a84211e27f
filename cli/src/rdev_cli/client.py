"""The CLI's one HTTP client: auth, the `{"data": …}` envelope, errors, and SSE following."""

from __future__ import annotations

import difflib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import EventSource, connect_sse

from rdev_cli import config
from rdev_cli.errors import EXIT_AUTH, EXIT_UNREACHABLE, CliError, exit_code_for

RECONNECT_DELAY_S = 0.5
# How long `follow` keeps trying a server that went away before giving up.
RECONNECT_PATIENCE_S = 120.0


class _Transient(Exception):
    """A restarting server (5xx) while following: retry like a dropped connection."""


@dataclass
class _Progress:
    """How far a run's stream was read: the id to resume after."""

    last_id: str | None = None

    def feed(
        self, source: EventSource, on_event: Callable[[str, dict[str, Any]], None]
    ) -> dict[str, Any] | None:
        """Hand events to `on_event`; the `complete` data, or None if the stream ended first."""
        for sse in source.iter_sse():
            if sse.id:
                self.last_id = sse.id
            data: dict[str, Any] = json.loads(sse.data) if sse.data else {}
            if sse.event == "complete":
                return data
            on_event(sse.event, data)
        return None


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text.strip()[:200] or response.reason_phrase


def raise_for(response: httpx.Response, what: str = "") -> None:
    """A refused request as one sentence in words: what the server said, and for a
    refused key what to do about it."""
    if response.is_success:
        return
    status = response.status_code
    message = _message(response)
    if status == 401:
        message = f"the API key was not accepted ({message}): run `rdev login` or set RDEV_API_KEY"
    elif status == 403:
        message = f"this API key may not do that: {message}"
    elif status == 404 and what and "not found" not in message:
        message = f"{what} not found"
    raise CliError(message, exit_code_for(status))


class RdevClient:
    def __init__(self, cfg: config.Config | None = None) -> None:
        self.cfg = cfg or config.load()
        headers = {"X-API-Key": self.cfg.api_key} if self.cfg.api_key else {}
        self.http = httpx.Client(
            base_url=self.cfg.url, headers=headers, timeout=httpx.Timeout(30.0, read=None)
        )

    def __enter__(self) -> RdevClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def require_key(self) -> None:
        if not self.cfg.api_key:
            raise CliError("no API key: run `rdev login` or set RDEV_API_KEY", EXIT_AUTH)

    def unreachable(self, exc: Exception) -> CliError:
        return CliError(f"cannot reach rdev at {self.cfg.url}: {exc}", EXIT_UNREACHABLE)

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str = "",
        json_body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        self.require_key()
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self.http.request(method, path, json=json_body, params=clean)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from exc
        try:
            raise_for(response, what)
        except CliError as error:
            if response.status_code == 404 and what.startswith("project "):
                error.message += self.project_hint(what.split("'")[1] if "'" in what else "")
            raise
        return response

    def project_hint(self, wanted: str) -> str:
        """`; did you mean 'demo'?` and the projects this key sees, when it can tell."""
        try:
            response = self.http.get("/projects")
            known = sorted(p["id"] for p in response.json()["data"]) if response.is_success else []
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return ""
        if not known:
            return " (this API key sees no project: `rdev projects create` makes one)"
        close = difflib.get_close_matches(wanted, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        shown = ", ".join(known[:10]) + (", …" if len(known) > 10 else "")
        return f"{hint} (known projects: {shown})"

    def data(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json()["data"] if response.content else None

    def page(self, path: str, **kwargs: Any) -> Page:
        body = self.request("GET", path, **kwargs).json()
        return Page(body["data"], body.get("next_cursor"))

    def pages(self, path: str, limit: int | None, **kwargs: Any) -> list[dict[str, Any]]:
        """Items across cursor pages, newest first, up to `limit` (None: all)."""
        params = dict(kwargs.pop("params", None) or {})
        items: list[dict[str, Any]] = []
        while limit is None or len(items) < limit:
            page = self.page(path, params=params, **kwargs)
            items.extend(page.items)
            if not page.next_cursor:
                break
            params["cursor"] = page.next_cursor
        return items if limit is None else items[:limit]

    @contextmanager
    def stream(self, path: str, params: dict[str, Any], what: str) -> Iterator[httpx.Response]:
        self.require_key()
        clean = {k: v for k, v in params.items() if v is not None}
        try:
            with self.http.stream("GET", path, params=clean) as response:
                if not response.is_success:
                    response.read()
                    raise_for(response, what)
                yield response
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from exc

    def submit_and_follow(
        self,
        project: str,
        body: dict[str, Any],
        on_submitted: Callable[[str], None],
        on_event: Callable[[str, dict[str, Any]], None],
    ) -> dict[str, Any]:
        """Submit `body` asking for the run's event stream as the answer (one request),
        feed its events to `on_event` until `complete`, which is returned.

        `on_submitted` gets the command id as soon as the answer names it. A stream
        that drops is resumed by `follow` from the last event seen.
        """
        self.require_key()
        command_id: str | None = None
        progress = _Progress()
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        try:
            with connect_sse(
                self.http, "POST", f"/projects/{project}/shell", json=body, headers=headers
            ) as source:
                if not source.response.is_success:
                    source.response.read()
                try:
                    raise_for(source.response, f"project {project!r}")
                except CliError as error:
                    if source.response.status_code == 404:
                        error.message += self.project_hint(project)
                    raise
                command_id = source.response.headers["location"].rsplit("/", 1)[-1]
                on_submitted(command_id)
                done = progress.feed(source, on_event)
                if done is not None:
                    return done
        except httpx.TransportError as exc:
            if command_id is None:
                raise self.unreachable(exc) from exc
        assert command_id is not None
        return self.follow(project, command_id, on_event, progress.last_id)

    def follow(
        self,
        project: str,
        command_id: str,
        on_event: Callable[[str, dict[str, Any]], None],
        last_id: str | None = None,
    ) -> dict[str, Any]:
        """Feed a run's SSE events to `on_event` until `complete`, which is returned.

        A dropped connection is resumed with Last-Event-ID, so no line is lost or repeated.
        """
        self.require_key()
        progress = _Progress(last_id)
        down_since: float | None = None
        while True:
            headers = {"Last-Event-ID": progress.last_id} if progress.last_id else {}
            try:
                with connect_sse(
                    self.http,
                    "GET",
                    f"/projects/{project}/events",
                    params={"stream_id": command_id},
                    headers=headers,
                ) as source:
                    if source.response.status_code >= 500:
                        raise _Transient(f"server answered {source.response.status_code}")
                    raise_for(source.response, f"command {command_id}")
                    if source.response.status_code == 204:
                        # rdev says this client has seen `complete` already.
                        return dict(self.data("GET", f"/commands/{command_id}"))
                    down_since = None
                    done = progress.feed(source, on_event)
                    if done is not None:
                        return done
            except (httpx.TransportError, _Transient) as exc:
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since > RECONNECT_PATIENCE_S:
                    raise self.unreachable(exc) from exc
                time.sleep(RECONNECT_DELAY_S)
