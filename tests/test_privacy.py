"""Phone numbers are normalised and keyed-hashed; the clear value never reaches raw."""

from __future__ import annotations

import hashlib

import pytest

from tierhouse.privacy import crypto


@pytest.mark.parametrize("written", ["13800138000", "+86 138-0013-8000", "0086 13800138000", "138 0013 8000", "(138)00138000"])
def test_every_way_of_writing_a_number_normalises_the_same(written: str) -> None:
    assert crypto.normalise_phone(written) == "13800138000"


@pytest.mark.parametrize("bad", ["12800138000", "1380013800", "138001380001", "+1 415 555 0100", "phone", ""])
def test_non_mobile_numbers_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        crypto.normalise_phone(bad)


def test_keys_are_keyed_versioned_and_stable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(crypto.KEY_ENV, "a" * 64)
    monkeypatch.setenv(crypto.KEY_VERSION_ENV, "1")
    first = crypto.pseudonymise("phone", "13800138000")
    assert first == crypto.pseudonymise("phone", "13800138000")
    assert first.startswith("v1:") and len(first) == 3 + 32
    monkeypatch.setenv(crypto.KEY_ENV, "b" * 64)
    monkeypatch.setenv(crypto.KEY_VERSION_ENV, "2")
    rotated = crypto.pseudonymise("phone", "13800138000")
    assert rotated.startswith("v2:") and rotated[3:] != first[3:]


def test_a_plain_hash_of_the_number_is_not_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(crypto.KEY_ENV, "c" * 64)
    key = crypto.pseudonymise("phone", "13800138000").split(":")[1]
    for plain in (hashlib.sha256(b"13800138000"), hashlib.sha256(b"phone:13800138000"), hashlib.md5(b"13800138000")):
        assert key not in plain.hexdigest()


def test_loading_personal_data_without_a_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(crypto.KEY_ENV)
    with pytest.raises(crypto.MissingKeyError, match=crypto.KEY_ENV):
        crypto.pseudonymise("phone", "13800138000")


def test_personal_data_encryption_is_bound_to_its_column_and_survives_a_key_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    old_key, new_key = "1" * 64, "2" * 64
    monkeypatch.setenv(crypto.PII_KEY_ENV, old_key)
    monkeypatch.setenv(crypto.PII_KEY_VERSION_ENV, "1")
    sealed = crypto.encrypt("张伟", "pii.crm_members.name")
    assert sealed.startswith("enc:v1:") and "张伟" not in sealed
    assert sealed != crypto.encrypt("张伟", "pii.crm_members.name")  # a fresh nonce every time
    assert crypto.decrypt(sealed, "pii.crm_members.name") == "张伟"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(sealed, "pii.crm_members.address")  # moved to another column
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(tampered, "pii.crm_members.name")
    # rotation: the new key encrypts; the old one, kept under its version, still decrypts old rows
    monkeypatch.setenv(crypto.PII_KEY_ENV, new_key)
    monkeypatch.setenv(crypto.PII_KEY_VERSION_ENV, "2")
    with pytest.raises(crypto.MissingKeyError):
        crypto.decrypt(sealed, "pii.crm_members.name")
    monkeypatch.setenv(f"{crypto.PII_KEY_ENV}_V1", old_key)
    assert crypto.decrypt(sealed, "pii.crm_members.name") == "张伟"
    resealed = crypto.encrypt(crypto.decrypt(sealed, "pii.crm_members.name"), "pii.crm_members.name")
    assert resealed.startswith("enc:v2:")
    monkeypatch.delenv(f"{crypto.PII_KEY_ENV}_V1")
    assert crypto.decrypt(resealed, "pii.crm_members.name") == "张伟"


def test_a_wrong_key_cannot_decrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(crypto.PII_KEY_ENV, "3" * 64)
    sealed = crypto.encrypt("13800138000", "pii.crm_members.phone")
    monkeypatch.setenv(crypto.PII_KEY_ENV, "4" * 64)
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(sealed, "pii.crm_members.phone")
