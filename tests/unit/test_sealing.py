"""Sealing project secrets for the broker: round trip, key rotation, plain values,
binding to the project, and clear failures that never show a key."""

from __future__ import annotations

import base64

import pytest

from rdev_common.sealing import SEALED, Sealer, SealError, generate_key, seal, unseal
from rdev_common.settings import CommonSettings

SECRETS = {"DEPLOY_TOKEN": "pa55-word", "EMPTY": ""}


def test_a_sealed_value_opens_with_the_key_and_shows_nothing_without_it() -> None:
    sealer = Sealer([generate_key()])
    value = seal("alpha", SECRETS, sealer)
    assert value.startswith(SEALED)
    assert b"pa55-word" not in value and b"DEPLOY_TOKEN" not in value
    assert unseal("alpha", value, sealer) == SECRETS


def test_a_value_sealed_for_one_project_does_not_open_for_another() -> None:
    sealer = Sealer([generate_key()])
    with pytest.raises(SealError, match="sealed for another one"):
        unseal("beta", seal("alpha", SECRETS, sealer), sealer)


def test_rotation_the_first_key_seals_every_key_opens() -> None:
    old, new = generate_key(), generate_key()
    before = seal("alpha", SECRETS, Sealer([old]))
    rotated = Sealer([new, old])
    assert unseal("alpha", before, rotated) == SECRETS, "a value of the old key still opens"
    after = seal("alpha", SECRETS, rotated)
    assert unseal("alpha", after, Sealer([new])) == SECRETS, "new values use the new key"
    with pytest.raises(SealError):
        unseal("alpha", after, Sealer([old]))


def test_plain_values_open_only_without_a_key_and_empty_ones_always() -> None:
    plain = seal("alpha", SECRETS, None)
    assert plain == b'{"DEPLOY_TOKEN":"pa55-word","EMPTY":""}'
    assert unseal("alpha", plain, None) == SECRETS
    # With a key, a plain value could only come from someone without it.
    with pytest.raises(SealError, match="stored unsealed while RDEV_SECRETS_KEY is set"):
        unseal("alpha", plain, Sealer([generate_key()]))
    sealer = Sealer([generate_key()])
    assert seal("alpha", {}, sealer) == b"{}", "nothing to hide: not sealed"
    assert unseal("alpha", b"{}", sealer) == {}
    assert unseal("alpha", b"", sealer) == {}


@pytest.mark.parametrize(
    "value", [b"not json", b"[1, 2]", b'"text"', b'{"A": 1}', b"[" * 100_000, b"\xff\xfe"]
)
def test_a_stored_value_that_is_not_an_object_of_strings_is_a_seal_error(value: bytes) -> None:
    with pytest.raises(SealError):
        unseal("alpha", value, None)


def test_a_sealed_value_without_a_key_or_with_another_key_is_refused_by_name() -> None:
    value = seal("alpha", SECRETS, Sealer([generate_key()]))
    with pytest.raises(SealError, match="has no RDEV_SECRETS_KEY"):
        unseal("alpha", value, None)
    with pytest.raises(SealError, match="no key of RDEV_SECRETS_KEY opens"):
        unseal("alpha", value, Sealer([generate_key()]))


def test_the_setting_takes_a_comma_separated_list_and_names_itself_when_malformed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = generate_key()
    monkeypatch.setenv("RDEV_SECRETS_KEY", f" {key} , ")
    sealer = CommonSettings().secrets_sealer()
    assert sealer is not None
    assert unseal("p", sealer.seal("p", SECRETS), Sealer([key])) == SECRETS
    for blank in ("", " , "):
        monkeypatch.setenv("RDEV_SECRETS_KEY", blank)
        assert CommonSettings().secrets_sealer() is None
    monkeypatch.setenv("RDEV_SECRETS_KEY", f"{key},not-a-key-0123456789")
    with pytest.raises(SystemExit) as stopped:
        CommonSettings().secrets_sealer()
    assert "RDEV_SECRETS_KEY" in str(stopped.value)
    assert "not-a-key" not in str(stopped.value), "the message must not show the key"


def test_keys_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(ValueError, match="32 url-safe base64-encoded bytes"):
        Sealer([base64.urlsafe_b64encode(b"x" * 16).decode()])


@pytest.mark.parametrize(
    "content", [{"project": "alpha"}, {"project": "alpha", "secrets": [1]}, {"secrets": {}}]
)
def test_a_sealed_payload_of_the_wrong_shape_is_a_seal_error(content: dict[str, object]) -> None:
    import orjson

    from rdev_common.sealing import SEALED

    sealer = Sealer([generate_key()])
    value = SEALED + sealer._fernet.encrypt(orjson.dumps(content))
    with pytest.raises(SealError):
        unseal("alpha", value, sealer)
