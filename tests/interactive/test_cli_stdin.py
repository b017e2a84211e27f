"""`rdev run` forwards a piped or redirected stdin to the run, as ssh does."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import BIN, RdevSystem

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def cli_env(system: RdevSystem, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    system.create_project("cli-stdin")
    home = tmp_path_factory.mktemp("cli-stdin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RDEV_")}
    env.update(
        {
            "RDEV_URL": system.base_url,
            "RDEV_API_KEY": system.api_key,
            "RDEV_CONFIG": str(home / "config.toml"),
            "RDEV_PROJECT": "cli-stdin",
            "PATH": f"{BIN}:{env.get('PATH', '')}",
        }
    )
    return env


def shell(env: dict[str, str], line: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["/bin/sh", "-c", line], env=env, capture_output=True, timeout=180, check=False
    )


def test_piped_stdin_reaches_cat(cli_env: dict[str, str]) -> None:
    done = shell(cli_env, "printf 'a\\nb\\n' | rdev run -p cli-stdin -- cat")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"a\nb\n"


def test_a_redirected_file_reaches_the_command_whole(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.write_bytes(os.urandom(1024 * 1024 + 7))
    done = shell(cli_env, f"rdev run -- wc -c < {data}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [b"1048583"]


def test_the_remote_exit_code_after_reading_stdin(cli_env: dict[str, str]) -> None:
    done = shell(cli_env, "echo 7 | rdev run -- 'read n; exit $n'")
    assert done.returncode == 7, done.stderr


def test_no_stdin_flag_leaves_the_run_s_stdin_closed(cli_env: dict[str, str]) -> None:
    done = shell(cli_env, "printf 'a\\n' | rdev run -n -- cat")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""


def test_a_silent_open_pipe_does_not_hold_a_command_that_does_not_read(
    cli_env: dict[str, str],
) -> None:
    """CI runners leave stdin an open pipe nobody writes to: a command that does not
    read its stdin ends as usual, and so does `rdev run`."""
    read_end, write_end = os.pipe()
    try:
        done = subprocess.run(
            [str(BIN / "rdev"), "run", "--", "echo ran"],
            env=cli_env,
            stdin=read_end,
            capture_output=True,
            timeout=180,
            check=False,
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    assert (done.returncode, done.stdout) == (0, b"ran\n"), done.stderr
