"""Runs in a pseudo-terminal: size, resize, raw output, Ctrl-C, all through the api."""

from __future__ import annotations

import pytest

from tests.interactive.support import completed, output, state, submit
from tests.support import RdevSystem, wait_for

pytestmark = [pytest.mark.e2e]

TTY = {"cols": 120, "rows": 40}


@pytest.fixture(scope="module")
def project(system: RdevSystem) -> str:
    system.create_project("tty")
    return "tty"


def test_stty_size_reports_the_size_sent_and_follows_a_resize(
    system: RdevSystem, project: str
) -> None:
    with system.client() as client:
        cid = submit(client, project, "stty size; read x; stty size", tty=TTY)
        wait_for(lambda: b"40 120" in output(system, cid), 60, "the first size")
        r = client.post(f"/commands/{cid}/resize", json={"cols": 100, "rows": 30})
        assert r.status_code == 200, r.text
        r = client.put(f"/commands/{cid}/stdin", params={"close": "false"}, content=b"\r")
        assert r.status_code == 200, r.text
    done = completed(system, cid)
    assert done["exit_code"] == 0, done
    assert done["tty"] == TTY
    # The terminal's own bytes: "\r\n" line ends, the echoed Enter included.
    assert output(system, cid) == b"40 120\r\n\r\n30 100\r\n"


def test_output_is_the_terminal_byte_stream(system: RdevSystem, project: str) -> None:
    with system.client() as client:
        cid = submit(
            client, project, r"printf 'caf\303\251 \033[1mbold\033[0m\n'; printf 'no end'", tty=TTY
        )
        completed(system, cid)
        lines = client.get(f"/commands/{cid}/output", params={"format": "jsonl"}).text
    assert output(system, cid) == "café \x1b[1mbold\x1b[0m\r\nno end".encode()
    assert '"stream":"tty"' in lines.replace(" ", "")


def test_ctrl_c_interrupts_the_remote_command_and_the_run_ends_130(
    system: RdevSystem, project: str
) -> None:
    with system.client() as client:
        cid = submit(client, project, "sleep 60", tty=TTY)
        wait_for(lambda: state(system, cid)["status"] == "running", 60, "not running")
        r = client.put(f"/commands/{cid}/stdin", params={"close": "false"}, content=b"\x03")
        assert r.status_code == 200, r.text
    done = completed(system, cid)
    assert done["exit_code"] == 130, done


def test_resize_of_a_run_without_a_terminal_is_a_conflict(system: RdevSystem, project: str) -> None:
    with system.client() as client:
        cid = submit(client, project, "sleep 30", stdin=True)
        r = client.post(f"/commands/{cid}/resize", json={"cols": 80, "rows": 24})
        assert r.status_code == 409, r.text
        r = client.post(f"/commands/{cid}/signal", json={"signal": "TERM"})
        assert r.status_code == 200, r.text
    assert completed(system, cid)["exit_code"] == 143
