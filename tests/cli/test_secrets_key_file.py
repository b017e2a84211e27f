"""`rdev up`'s key for sealing project secrets: made once, whole, private, and refused
when the file holds no key."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rdev_cli.supervisor import local_secrets_key
from rdev_common.sealing import Sealer


def test_made_once_private_and_kept(tmp_path: Path) -> None:
    key = local_secrets_key(tmp_path)
    assert Sealer([key])
    path = tmp_path / "secrets.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert local_secrets_key(tmp_path) == key, "the same key on every start"
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.key"], "no temporary file left"


def test_starts_at_the_same_moment_agree_on_one_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: local_secrets_key(tmp_path), range(16)))
    assert len(keys) == 1


@pytest.mark.parametrize("content", [b"", b"\n", b"not-a-key\n", b"a,b\n", b"\xff\xfe\n"])
def test_a_file_without_a_well_formed_key_stops_rdev_up(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "secrets.key").write_bytes(content)
    with pytest.raises(SystemExit, match="must hold one key"):
        local_secrets_key(tmp_path)


def test_made_where_the_filesystem_has_no_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: str, dst: str) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("os.link", refuse)
    key = local_secrets_key(tmp_path)
    assert Sealer([key]) and local_secrets_key(tmp_path) == key
    assert (tmp_path / "secrets.key").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.key"]
