"""Sealing project secrets for the broker: round trip, key rotation, plain values of
before, and clear failures that never show a key."""

from __future__ import annotations

import pytest

from rdev_common.sealing import SEALED, Sealer, SealError, generate_key, seal, unseal
from rdev_common.settings import CommonSettings

SECRETS = {"DEPLOY_TOKEN": "pa55-word", "EMPTY": ""}


def test_a_sealed_value_opens_with_the_key_and_shows_nothing_without_it() -> None:
    sealer = Sealer([generate_key()])
    value = seal(SECRETS, sealer)
    assert value.startswith(SEALED)
    assert b"pa55-word" not in value and b"DEPLOY_TOKEN" not in value
    assert unseal(value, sealer) == SECRETS


def test_rotation_the_first_key_seals_every_key_opens() -> None:
    old, new = generate_key(), generate_key()
    before = seal(SECRETS, Sealer([old]))
    rotated = Sealer([new, old])
    assert unseal(before, rotated) == SECRETS, "a value of the old key still opens"
    after = seal(SECRETS, rotated)
    assert unseal(after, Sealer([new])) == SECRETS, "new values are sealed with the new key"
    with pytest.raises(SealError):
        unseal(after, Sealer([old]))


def test_plain_values_of_before_still_open_with_or_without_a_key() -> None:
    plain = seal(SECRETS, None)
    assert plain == b'{"DEPLOY_TOKEN":"pa55-word","EMPTY":""}'
    assert unseal(plain, None) == SECRETS
    assert unseal(plain, Sealer([generate_key()])) == SECRETS


def test_a_sealed_value_without_a_key_or_with_another_key_is_refused_by_name() -> None:
    value = seal(SECRETS, Sealer([generate_key()]))
    with pytest.raises(SealError, match="has no RDEV_SECRETS_KEY"):
        unseal(value, None)
    with pytest.raises(SealError, match="no key of RDEV_SECRETS_KEY opens"):
        unseal(value, Sealer([generate_key()]))


def test_the_setting_takes_a_comma_separated_list_and_names_itself_when_malformed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = generate_key()
    monkeypatch.setenv("RDEV_SECRETS_KEY", f" {key} , ")
    sealer = CommonSettings().secrets_sealer()
    assert sealer is not None and unseal(sealer.seal(SECRETS), Sealer([key])) == SECRETS
    monkeypatch.setenv("RDEV_SECRETS_KEY", "")
    assert CommonSettings().secrets_sealer() is None
    monkeypatch.setenv("RDEV_SECRETS_KEY", f"{key},not-a-key-0123456789")
    with pytest.raises(SystemExit) as stopped:
        CommonSettings().secrets_sealer()
    assert "RDEV_SECRETS_KEY" in str(stopped.value)
    assert "not-a-key" not in str(stopped.value), "the message must not show the key"


def test_keys_of_the_wrong_length_are_refused_and_nothing_is_sealed_for_no_secrets() -> None:
    import base64

    with pytest.raises(ValueError, match="32 url-safe base64-encoded bytes"):
        Sealer([base64.urlsafe_b64encode(b"x" * 16).decode()])
    assert seal({}, Sealer([generate_key()])) == b"{}"
