"""§5: a followed log ends once its key is revoked or loses its IP allowance, as an
event stream does (one guard for every long-lived response)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from tests.e2e.sse_helpers import submit
from tests.support import RdevSystem, wait_for

pytestmark = pytest.mark.e2e

LOOP = "i=0; while [ $i -lt 600 ]; do echo tick $i; i=$((i+1)); sleep 0.2; done"


class Follower(threading.Thread):
    """Reads a followed log in the background; `ended` once the server closes it."""

    def __init__(self, rdev: RdevSystem, secret: str, url: str) -> None:
        super().__init__(daemon=True)
        self.rdev, self.secret, self.url = rdev, secret, url
        self.lines: list[str] = []
        self.ended = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            headers = {"X-API-Key": self.secret}
            with (
                httpx.Client(base_url=self.rdev.base_url, timeout=180) as c,
                c.stream("GET", self.url, headers=headers) as r,
            ):
                assert r.status_code == 200, r.read()
                for line in r.iter_lines():
                    self.lines.append(line)
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended.set()


def _key(rdev: RdevSystem, project: str) -> dict[str, Any]:
    with rdev.client() as c:
        r = c.post(
            "/api-keys",
            json={
                "name": "follower",
                "scopes": ["commands:read", "commands:execute"],
                "projects": [project],
            },
        )
        assert r.status_code == 201, r.text
        return dict(r.json()["data"])


@pytest.mark.parametrize("how", ["revoke", "ip"])
def test_a_followed_log_ends_when_its_key_may_no_longer_read(rdev: RdevSystem, how: str) -> None:
    rdev.create_project("follow")
    key = _key(rdev, "follow")
    with rdev.client() as admin:
        cid = submit(admin, "follow", LOOP, timeout_s=300)
        fmt = "jsonl" if how == "ip" else "text"
        follower = Follower(rdev, key["secret"], f"/commands/{cid}/output?follow=true&format={fmt}")
        follower.start()
        wait_for(lambda: len(follower.lines) >= 2, 60, "the followed log did not start")
        if how == "revoke":
            assert admin.delete(f"/api-keys/{key['id']}").status_code == 200
        else:
            r = admin.patch(f"/api-keys/{key['id']}", json={"allowed_ips": ["10.99.0.0/16"]})
            assert r.status_code == 200, r.text
        changed = time.monotonic()
        try:
            # The run goes on for two minutes: only the guard can end the stream sooner.
            assert follower.ended.wait(60), "the followed log kept streaming"
            print(f"followed log closed {time.monotonic() - changed:.2f} s after the change")
            assert follower.error is None, follower.error
            assert admin.get(f"/commands/{cid}").json()["data"]["status"] == "running"
        finally:
            admin.post(f"/commands/{cid}/cancel")
    if fmt == "jsonl":
        assert json.loads(follower.lines[-1])["error"]["code"] == "unauthenticated"
