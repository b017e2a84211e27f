"""Project secrets end to end, on the whole system: a command gets them as environment
variables, and neither its output, its events nor any API response carries their values."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.sse_helpers import events_url, read_events, submit
from tests.support import RdevSystem, service_pids

pytestmark = pytest.mark.e2e

VALUE = "pa55-" + "q" * 16


def test_a_secret_reaches_the_command_but_never_a_client(rdev: RdevSystem) -> None:
    workdir = rdev.data_dir / "workspaces" / "secretive"
    workdir.mkdir(parents=True, exist_ok=True)
    with rdev.client() as c:
        r = c.post(
            "/projects",
            json={"id": "secretive", "workdir": str(workdir), "secrets": {"DEPLOY_TOKEN": VALUE}},
        )
        assert r.status_code in (201, 409), r.text
        command = 'test "$DEPLOY_TOKEN" = "' + VALUE[:5] + '"' + "'" + VALUE[5:] + "'"
        command += ' && echo "token present" && echo "$DEPLOY_TOKEN"'
        cid = submit(c, "secretive", command)
        status, events = read_events(c, events_url("secretive", cid))
        responses = [c.get("/projects/secretive").text, c.get(f"/commands/{cid}").text]
        responses.append(c.get(f"/commands/{cid}/output").text)
    assert status == 200
    lines = [e.data["line"] for e in events if e.event == "output"]
    assert lines[0] == "token present", lines
    assert events[-1].data["exit_code"] == 0
    everything = "\n".join([*responses, *(str(e.data) for e in events)])
    assert VALUE not in everything
    assert VALUE not in rdev.log_path.read_text()
    # At rest in the broker the value is sealed: no file of its store holds it, while the
    # key `rdev up` made for this data dir is readable by its owner alone.
    assert secret_in_files(rdev.data_dir / "nats", VALUE) == []
    key_file = rdev.data_dir / "secrets.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    # Only the api and the executor are given the key.
    for service, holds in (
        ("api", True),
        ("executor", True),
        ("webhooks", False),
        ("audit", False),
    ):
        (pid,) = service_pids(rdev, service)
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert (b"RDEV_SECRETS_KEY=" in environ) is holds, service


def secret_in_files(root: Path, value: str) -> list[Path]:
    assert any(path.is_file() for path in root.rglob("*")), f"no broker files under {root}"
    return [p for p in root.rglob("*") if p.is_file() and value.encode() in p.read_bytes()]
