"""Signing checked against `standardwebhooks`, the schedule, event patterns, the SSRF guard."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks import Webhook

from rdev_api.domain.model import ApiKey, Principal, Project, Scope
from rdev_api.service_layer import webhook_service
from rdev_api.service_layer.webhook_ports import WebhookServices
from rdev_common.errors import ValidationFailed
from rdev_common.webhook_rules import check_destination, event_patterns, matches, webhook_url
from rdev_webhooks.adapters.httpx_sender import HttpxWebhookSender
from rdev_webhooks.domain import signing
from rdev_webhooks.domain.model import Delivery, Endpoint
from rdev_webhooks.domain.schedule import DEFAULT_SCHEDULE, RetrySchedule, parse_schedule
from tests.webhooks.receiver import Receiver


def test_signature_verifies_with_the_reference_library() -> None:
    secret = signing.generate_secret()
    body = json.dumps({"id": "e1", "type": "dev.rdev.command.completed.v1"}).encode()
    now = int(datetime.now(UTC).timestamp())
    headers = signing.headers([secret], "msg_1", now, body, attempt=1)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    reference = Webhook(secret).sign("msg_1", datetime.fromtimestamp(now, UTC), body.decode())
    assert headers["webhook-signature"] == reference


def test_during_rotation_both_secrets_verify_and_a_stranger_does_not() -> None:
    old, new = signing.generate_secret(), signing.generate_secret()
    body = b'{"a":1}'
    headers = signing.headers([new, old], "msg_2", int(datetime.now(UTC).timestamp()), body, 1)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(signing.generate_secret()).verify(body, headers)


def test_schedule_defaults_parse_jitter_and_retry_after() -> None:
    assert DEFAULT_SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert parse_schedule("0, 1,1 ,1") == (0, 1, 1, 1)
    with pytest.raises(ValueError):
        parse_schedule("1,-2")
    schedule = RetrySchedule((0, 10, 100))
    assert schedule.delay_after(1, rand=lambda: 0.0) == pytest.approx(9.0)
    assert schedule.delay_after(1, rand=lambda: 1.0) == pytest.approx(11.0)
    assert schedule.delay_after(2, retry_after_s=500, rand=lambda: 0.5) == 500
    assert schedule.delay_after(3) is None


def test_event_patterns() -> None:
    assert matches(["command.*"], "dev.rdev.command.completed.v1")
    assert matches(["*"], "dev.rdev.command.started.v1")
    assert matches(["command.completed"], "dev.rdev.command.completed.v1")
    assert not matches(["command.completed"], "dev.rdev.command.started.v1")
    assert event_patterns(["command.*", "command.*"]) == ["command.*"]
    for bad in ([], ["Command.*"], ["a b"]):
        with pytest.raises(ValidationFailed):
            event_patterns(bad)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://100.64.0.1/hook",
    ],
)
async def test_private_destinations_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(ValidationFailed, match="loopback, private"):
        await check_destination(url, allow_private=False)
    await check_destination(url, allow_private=True)


def test_only_http_urls_without_credentials() -> None:
    for bad in ("ftp://example.com/x", "file:///etc/passwd", "http://u:p@example.com/", "/x"):
        with pytest.raises(ValidationFailed):
            webhook_url(bad)


class _Projects:
    async def get(self, project_id: str) -> Project | None:
        now = datetime.now(UTC)
        return Project(id=project_id, workdir="/tmp", created_at=now, updated_at=now)


class _Uow:
    projects = _Projects()

    async def __aenter__(self) -> _Uow:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None


class _Store:
    def __init__(self) -> None:
        self.added: list[Any] = []

    async def add(self, webhook: Any, event: Any) -> None:
        self.added.append(webhook)


def _principal() -> Principal:
    key = ApiKey(
        id="k1",
        name="t",
        secret_hash="h",
        prefix="p",
        scopes=frozenset({Scope.WEBHOOKS_WRITE}),
        created_at=datetime.now(UTC) - timedelta(days=1),
    )
    return Principal(key=key, client_ip="127.0.0.1")


async def test_registration_refuses_a_private_address_when_not_allowed() -> None:
    store = _Store()
    uow: Any = _Uow()
    fake_store: Any = store  # only `add` is reached
    no_log: Any = None
    ws = WebhookServices(fake_store, no_log, lambda: datetime.now(UTC), allow_private_targets=False)
    with pytest.raises(ValidationFailed, match="loopback, private") as info:
        await webhook_service.create(
            ws,
            uow,
            _principal(),
            "p1",
            url="http://10.0.0.7/hook",
            events=["command.*"],
            description=None,
        )
    assert info.value.details["field"] == "url"
    assert store.added == []
    ws.allow_private_targets = True
    created = await webhook_service.create(
        ws,
        uow,
        _principal(),
        "p1",
        url="http://10.0.0.7/hook",
        events=["command.*"],
        description=None,
    )
    assert created.secret.startswith("whsec_") and store.added == [created]


async def test_delivery_time_guard_refuses_loopback_even_if_registered() -> None:
    """DNS can change after registration: the sender checks the address it dials."""
    receiver = Receiver()
    receiver.start()
    try:
        endpoint = Endpoint("w1", "p", receiver.url("/x"), ["*"], [signing.generate_secret()], True)
        delivery = Delivery("msg_1", "w1", "e1", "t", "{}", 0)
        guarded = HttpxWebhookSender(timeout_s=5, allow_private=False)
        result = await guarded.send(endpoint, delivery, 1)
        await guarded.aclose()
        assert result.status_code is None and "destination refused" in (result.error or "")
        assert receiver.at("/x") == []
        open_sender = HttpxWebhookSender(timeout_s=5, allow_private=True)
        result = await open_sender.send(endpoint, delivery, 1)
        await open_sender.aclose()
        assert result.status_code == 200 and len(receiver.at("/x")) == 1
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    ("behaviour", "status", "retry_after"),
    [("ok", 200, None), ("moved", 302, None), ("busy", 429, 7.0), ("gone", 410, None)],
)
async def test_sender_outcomes(behaviour: str, status: int, retry_after: float | None) -> None:
    """3xx is a failure and is not followed; Retry-After is read on 429/503."""
    receiver = Receiver()
    receiver.endpoint("/x", behaviour=behaviour)
    receiver.start()
    sender = HttpxWebhookSender(timeout_s=5, allow_private=True)
    try:
        endpoint = Endpoint("w1", "p", receiver.url("/x"), ["*"], [signing.generate_secret()], True)
        result = await sender.send(endpoint, Delivery("msg_1", "w1", "e1", "t", "{}", 0), 1)
    finally:
        await sender.aclose()
        receiver.stop()
    assert result.status_code == status
    assert result.succeeded is (status == 200)
    assert result.gone is (status == 410)
    assert result.retry_after_s == retry_after
    assert receiver.at("/elsewhere") == []


async def test_a_request_past_its_timeout_is_a_failure() -> None:
    receiver = Receiver()
    receiver.endpoint("/slow", behaviour="hang")
    receiver.start()
    sender = HttpxWebhookSender(timeout_s=0.5, allow_private=True)
    try:
        endpoint = Endpoint(
            "w1", "p", receiver.url("/slow"), ["*"], [signing.generate_secret()], True
        )
        result = await sender.send(endpoint, Delivery("msg_1", "w1", "e1", "t", "{}", 0), 1)
    finally:
        await sender.aclose()
        receiver.stop()
    assert result.status_code is None and result.error == "timed out after 0.5s"
    assert not result.succeeded


async def test_the_sender_never_sends_a_cookie_back() -> None:
    """One client serves every endpoint: a cookie one set must not ride along later."""
    receiver = Receiver()
    receiver.endpoint("/x")
    receiver.start()
    sender = HttpxWebhookSender(timeout_s=5, allow_private=True)
    try:
        endpoint = Endpoint("w1", "p", receiver.url("/x"), ["*"], [signing.generate_secret()], True)
        for n in (1, 2):
            result = await sender.send(endpoint, Delivery(f"msg_{n}", "w1", "e1", "t", "{}", 0), 1)
            assert result.status_code == 200
    finally:
        await sender.aclose()
        receiver.stop()
    assert [r.cookie for r in receiver.at("/x")] == [None, None]
