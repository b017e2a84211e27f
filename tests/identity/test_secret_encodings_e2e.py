"""A project secret printed base64-, URL- or JSON-encoded by a command is masked too."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from tests.e2e.sse_helpers import events_url, read_events, submit
from tests.support import RdevSystem

pytestmark = pytest.mark.e2e

VALUE = "s3cr3t/v@lue+" + "k" * 12
PRINT_ENCODED = (
    'import base64, json, os, sys, urllib.parse as u; v = os.environ["API_TOKEN"]; '
    "b = v.encode(); "
    'print("plain", v); '
    'print("b64", base64.b64encode(b).decode()); '
    'print("b64-nopad", base64.b64encode(b).decode().rstrip("=")); '
    'print("basic", base64.b64encode(b"deploy:" + b).decode()); '
    'print("b64-off1", base64.b64encode(b"x" + b + b"yz").decode()); '
    'print("url", u.quote(v, safe="")); '
    'print("json", json.dumps({"token": v}))'
)


def test_encoded_forms_of_a_secret_never_reach_a_client(rdev: RdevSystem) -> None:
    workdir = rdev.data_dir / "workspaces" / "encodings"
    workdir.mkdir(parents=True, exist_ok=True)
    with rdev.client() as c:
        r = c.post(
            "/projects",
            json={"id": "encodings", "workdir": str(workdir), "secrets": {"API_TOKEN": VALUE}},
        )
        assert r.status_code in (201, 409), r.text
        cid = submit(c, "encodings", f"python3 -c '{PRINT_ENCODED}'")
        status, events = read_events(c, events_url("encodings", cid))
        stored = c.get(f"/commands/{cid}/output").text
    assert status == 200
    assert events[-1].data["exit_code"] == 0, events[-1].data
    lines = [e.data["line"] for e in events if e.event == "output"]
    assert [line.split(" ", 1)[0] for line in lines] == [
        "plain",
        "b64",
        "b64-nopad",
        "basic",
        "b64-off1",
        "url",
        "json",
    ], lines
    raw = VALUE.encode()
    forms = [
        VALUE,
        base64.b64encode(raw).decode().rstrip("="),
        base64.b64encode(b"deploy:" + raw).decode()[10:-4],
        base64.b64encode(b"x" + raw + b"yz").decode()[2:-4],
        quote(VALUE, safe=""),
        json.dumps(VALUE)[1:-1],
    ]
    for text in ("\n".join(lines), stored):
        assert [f for f in forms if f in text] == [], text
    assert all("[REDACTED]" in line for line in lines), lines
