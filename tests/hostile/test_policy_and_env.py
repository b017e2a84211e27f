"""§3 and §8: user patterns match in linear time off the event loop; a command cannot
set the variables that decide what runs, nor run outside its workdir through a link."""

from __future__ import annotations

import fnmatch
import random

import pytest

from rdev_common.patterns import PatternError, matches
from tests.e2e.sse_helpers import events_url, read_events, submit
from tests.hostile.support import rejects
from tests.support import RdevSystem

EVIL = "a" * 40 + "!"  # Python's re needs about 2**40 steps for ^(a+)+$ on this


@pytest.mark.e2e
def test_a_catastrophic_deny_pattern_cannot_stall_the_api(rdev: RdevSystem) -> None:
    rdev.create_project("redos")
    policy = {"deny": ["re:^(a+)+$", "rm -rf *"]}
    with rdev.client() as c:
        r = c.patch("/projects/redos", json={"command_policy": policy})
        assert r.status_code == 200, r.text
        # With backtracking this request would take hours; the client gives up after 30 s.
        submit(c, "redos", f"echo {EVIL}")
        r = c.post("/projects/redos/shell", json={"command": EVIL})
        assert r.status_code == 202, r.text
        rejects(c.post("/projects/redos/shell", json={"command": "aaaa"}), "command")
        rejects(c.post("/projects/redos/shell", json={"command": "rm -rf /"}), "command")
        for refused in ("re:(a)\\1", "re:(?=a)b", "re:(", "[z-a]"):
            r = c.patch("/projects/redos", json={"command_policy": {"deny": [refused]}})
            rejects(r, "command_policy.deny[0]")


def test_globs_match_as_fnmatch_does() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        glob = "".join(rng.choice("ab*?[]!^-\\.") for _ in range(rng.randint(0, 7)))
        text = "".join(rng.choice("ab[]!^-\\.\n") for _ in range(rng.randint(0, 5)))
        try:
            got = matches(glob, text)
        except PatternError:
            continue  # e.g. a reversed range: refused when the policy is saved
        assert got == fnmatch.fnmatchcase(text, glob), (glob, text)


RESERVED = ["PATH", "LD_PRELOAD", "HOME", "SHELL", "IFS", "BASH_ENV", "ENV", "RDEV_X"]


@pytest.mark.e2e
@pytest.mark.parametrize("name", RESERVED)
def test_a_command_cannot_override_reserved_variables(rdev: RdevSystem, name: str) -> None:
    rdev.create_project("envpolicy")
    with rdev.client() as c:
        r = c.post("/projects/envpolicy/shell", json={"command": "true", "env": {name: "/x"}})
        rejects(r, f"env.{name}")
        rejects(c.patch("/projects/envpolicy", json={"env": {name: "/x"}}), f"env.{name}")
        rejects(c.patch("/projects/envpolicy", json={"secrets": {name: "/x"}}), f"secrets.{name}")


@pytest.mark.e2e
def test_a_project_can_allow_a_reserved_variable(rdev: RdevSystem) -> None:
    rdev.create_project("envallowed")
    with rdev.client() as c:
        policy = {"allow_env": ["PATH"]}
        r = c.patch("/projects/envallowed", json={"command_policy": policy})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["command_policy"]["allow_env"] == ["PATH"]
        cid = submit(c, "envallowed", 'echo "$PATH"', env={"PATH": "/usr/bin:/bin:/opt/tool"})
        status, events = read_events(c, events_url("envallowed", cid))
        rejects(
            c.post("/projects/envallowed/shell", json={"command": "true", "env": {"HOME": "/"}}),
            "env.HOME",
        )
    assert status == 200
    assert [e.data["line"] for e in events if e.event == "output"] == ["/usr/bin:/bin:/opt/tool"]


@pytest.mark.e2e
def test_cwd_is_resolved_after_symlinks_where_the_command_runs(rdev: RdevSystem) -> None:
    workdir = rdev.create_project("cwdlinks")
    (workdir / "sub").mkdir(exist_ok=True)
    if not (workdir / "out").is_symlink():
        (workdir / "out").symlink_to("/etc")
    if not (workdir / "alias").is_symlink():
        (workdir / "alias").symlink_to(workdir / "sub")
    with rdev.client() as c:
        escaped = submit(c, "cwdlinks", "pwd", cwd="out")
        _, events = read_events(c, events_url("cwdlinks", escaped))
        lines = [e.data["line"] for e in events if e.event == "output"]
        assert "/etc" not in lines, lines
        complete = events[-1]
        assert complete.event == "complete" and complete.data["reason"] == "error", complete
        error = c.get(f"/commands/{escaped}").json()["data"]["error"]
        assert "outside the project's workdir" in error, error
        inside = submit(c, "cwdlinks", "pwd", cwd="alias")
        _, events = read_events(c, events_url("cwdlinks", inside))
    lines = [e.data["line"] for e in events if e.event == "output"]
    assert lines == [str((workdir / "sub").resolve())], lines
