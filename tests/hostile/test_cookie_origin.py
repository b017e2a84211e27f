"""§6: a state change authenticated by the session cookie must come from this origin."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.sse_helpers import submit
from tests.hostile.support import rejects
from tests.support import RdevSystem

pytestmark = pytest.mark.e2e

LONG = "sleep 120"


def _log_in(rdev: RdevSystem, browser: httpx.Client) -> None:
    """Give `browser` the session cookie a browser gets at login (and no key)."""
    r = browser.post("/session", json={"api_key": rdev.api_key})
    assert r.status_code == 200, r.text


def test_a_foreign_origin_cannot_use_the_cookie(rdev: RdevSystem) -> None:
    rdev.create_project("csrf")
    with rdev.client() as admin, httpx.Client(base_url=rdev.base_url, timeout=30) as browser:
        _log_in(rdev, browser)
        cid = submit(admin, "csrf", LONG, timeout_s=300)
        try:
            foreign = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
            rejects(browser.post(f"/commands/{cid}/cancel", headers=foreign), "Origin", 403)
            rejects(browser.post(f"/commands/{cid}/cancel"), "Origin", 403)  # no Origin at all
            r = browser.patch("/projects/csrf", json={"env": {"A": "1"}}, headers=foreign)
            rejects(r, "Origin", 403)
            assert admin.get(f"/commands/{cid}").json()["data"]["status"] != "completed"
            # reading needs no Origin; the console's own requests pass
            assert browser.get(f"/commands/{cid}", headers=foreign).status_code == 200
            own = {"Origin": rdev.base_url}
            assert browser.post(f"/commands/{cid}/cancel", headers=own).status_code == 202
        finally:
            admin.post(f"/commands/{cid}/cancel")
        same = {"Sec-Fetch-Site": "same-origin"}
        r = browser.patch("/projects/csrf", json={"env": {"A": "1"}}, headers=same)
        assert r.status_code == 200, r.text
        # a key in a header is not a cookie: no Origin needed
        keyed = admin.patch("/projects/csrf", json={"env": {"A": "2"}}, headers=foreign)
        assert keyed.status_code == 200, keyed.text
