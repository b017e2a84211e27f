"""`rdev run -t` and `rdev attach` driven through a real pseudo-terminal, as a person would."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from tests.support import BIN, RdevSystem

pytestmark = [pytest.mark.e2e]


def _take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """`rdev` on the slave side of a PTY of `rows` by `cols`; the test types and reads."""

    def __init__(self, env: dict[str, str], args: list[str], rows: int, cols: int) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(
            [str(BIN / "rdev"), *args],
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=_take_terminal,
        )
        os.close(slave)
        self.screen = b""

    def read_until(self, pattern: bytes, timeout: float = 120) -> bytes:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.screen):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} on the screen: {self.screen!r}")
            readable, _, _ = select.select([self.master], [], [], min(left, 1.0))
            if readable:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    data = b""
                if not data and self.proc.poll() is not None:
                    raise AssertionError(f"rdev exited before {pattern!r}: {self.screen!r}")
                self.screen += data
        return self.screen

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout)
        with_rest = select.select([self.master], [], [], 0)[0]
        while with_rest:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                break
            if not data:
                break
            self.screen += data
            with_rest = select.select([self.master], [], [], 0)[0]
        os.close(self.master)
        return code


@pytest.fixture(scope="module")
def env(system: RdevSystem, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    system.create_project("cli-tty")
    home: Path = tmp_path_factory.mktemp("cli-tty")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RDEV_")}
    env.update(
        {
            "RDEV_URL": system.base_url,
            "RDEV_API_KEY": system.api_key,
            "RDEV_CONFIG": str(home / "config.toml"),
            "RDEV_PROJECT": "cli-tty",
            "TERM": "xterm",
        }
    )
    return env


def test_run_t_sends_the_terminal_size(env: dict[str, str]) -> None:
    term = Terminal(env, ["run", "-t", "--", "stty size"], rows=33, cols=111)
    assert term.wait() == 0, term.screen
    assert b"33 111\r\n" in term.screen


def test_ctrl_c_interrupts_the_remote_sleep_and_the_run_ends_130(env: dict[str, str]) -> None:
    term = Terminal(env, ["run", "-t", "--", "echo ready; sleep 60"], rows=24, cols=80)
    term.read_until(b"ready")
    term.type(b"\x03")
    assert term.wait() == 130, term.screen


def test_keys_in_screen_out_detach_and_attach_again(env: dict[str, str]) -> None:
    command = "echo ready; read a; echo got-$a; read b; echo then-$b"
    term = Terminal(env, ["run", "-t", "--", command], rows=24, cols=80)
    term.read_until(b"ready")
    term.type(b"one\r")
    term.read_until(b"got-one")
    term.type(b"~.")
    assert term.wait() == 0, term.screen
    found = re.search(rb"detached from (\S+);", term.screen)
    assert found, term.screen
    command_id = found.group(1).decode()
    again = Terminal(env, ["attach", command_id], rows=24, cols=80)
    # Nothing missed: what came before the detach is shown again, then the run goes on.
    again.read_until(b"got-one")
    again.type(b"two\r")
    again.read_until(b"then-two")
    assert again.wait() == 0, again.screen


def test_a_window_change_resizes_the_remote_terminal(env: dict[str, str]) -> None:
    command = "stty size; while read x; do stty size; done"
    term = Terminal(env, ["run", "-t", "--", command], rows=24, cols=80)
    term.read_until(b"24 80\r\n")
    # The kernel sends rdev SIGWINCH; rdev resizes the remote terminal. Each Enter asks
    # the remote side for its size again, until it has the new one.
    fcntl.ioctl(term.master, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 150, 0, 0))
    deadline = time.monotonic() + 120
    while b"50 150" not in term.screen:
        assert time.monotonic() < deadline, term.screen
        answers = term.screen.count(b"\r\n")
        term.type(b"\r")
        # The echoed Enter and the size that follows it.
        term.read_until(b"(?:.*\r\n){%d}" % (answers + 2), timeout=60)
    term.type(b"\x04")  # ^D: read ends, and so does the run
    assert term.wait() == 0, term.screen
