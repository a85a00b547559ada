"""Phone numbers are normalised and keyed-hashed; the clear value never reaches raw."""

from __future__ import annotations

import hashlib

import pytest

from tierhouse import privacy


@pytest.mark.parametrize("written", ["13800138000", "+86 138-0013-8000", "0086 13800138000", "138 0013 8000", "(138)00138000"])
def test_every_way_of_writing_a_number_normalises_the_same(written: str) -> None:
    assert privacy.normalise_phone(written) == "13800138000"


@pytest.mark.parametrize("bad", ["12800138000", "1380013800", "138001380001", "+1 415 555 0100", "phone", ""])
def test_non_mobile_numbers_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        privacy.normalise_phone(bad)


def test_keys_are_keyed_versioned_and_stable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(privacy.KEY_ENV, "a" * 64)
    monkeypatch.setenv(privacy.KEY_VERSION_ENV, "1")
    first = privacy.pseudonymise("phone", "13800138000")
    assert first == privacy.pseudonymise("phone", "13800138000")
    assert first.startswith("v1:") and len(first) == 3 + 32
    monkeypatch.setenv(privacy.KEY_ENV, "b" * 64)
    monkeypatch.setenv(privacy.KEY_VERSION_ENV, "2")
    rotated = privacy.pseudonymise("phone", "13800138000")
    assert rotated.startswith("v2:") and rotated[3:] != first[3:]


def test_a_plain_hash_of_the_number_is_not_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(privacy.KEY_ENV, "c" * 64)
    key = privacy.pseudonymise("phone", "13800138000").split(":")[1]
    for plain in (hashlib.sha256(b"13800138000"), hashlib.sha256(b"phone:13800138000"), hashlib.md5(b"13800138000")):
        assert key not in plain.hexdigest()


def test_loading_personal_data_without_a_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(privacy.KEY_ENV)
    with pytest.raises(privacy.MissingKeyError, match=privacy.KEY_ENV):
        privacy.pseudonymise("phone", "13800138000")
