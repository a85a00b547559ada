"""Pseudonymous keys for personal identifiers, and encryption of the personal data itself.

A phone number has so few possible values (about 10^9 plausible mainland mobiles) that a plain
hash is reversed by hashing them all; a keyed hash (HMAC-SHA256) with a secret held outside the
database is not. The key version is part of every key so keys can be rotated: a new version
is introduced, identities are re-keyed from the restricted copy, then the old key retired.

Personal data in the restricted ``pii`` schema is encrypted by the application (AES-256-GCM)
with a key from outside the database (the embedded PostgreSQL has no pgcrypto, and a key in SQL
text would end up in the server's logs). Each value is bound to its table and column, so a
ciphertext copied into another column does not decrypt. See docs/PRIVACY.md for rotation.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import hmac
import json
import os
import re
import secrets
from functools import lru_cache
from pathlib import Path

from tierhouse import settings
from tierhouse.errors import TierhouseError

KEY_ENV = "TIERHOUSE_PSEUDONYM_KEY"
KEY_VERSION_ENV = "TIERHOUSE_PSEUDONYM_KEY_VERSION"
PII_KEY_ENV = "TIERHOUSE_PII_KEY"
PII_KEY_VERSION_ENV = "TIERHOUSE_PII_KEY_VERSION"
_CIPHERTEXT = re.compile(r"^enc:v(?P<version>\d+):(?P<payload>[A-Za-z0-9_-]+={0,2})$")
_MOBILE = re.compile(r"^1[3-9]\d{9}$", re.ASCII)
#: An HMAC key shorter than SHA-256's output weakens every key made with it.
MIN_KEY_BYTES = 32


class MissingKeyError(TierhouseError, RuntimeError):
    """No usable key is configured."""


class WeakKeyError(MissingKeyError):
    """The pseudonymisation key is too short to be a secret."""


def normalise_phone(text: str) -> str:
    """A mainland mobile number as 11 digits; raises ValueError for anything else.

    Tills and web forms write '+86 138-0013-8000', '0086 13800138000' or '138 0013 8000' for
    the same person: they must give the same key.
    """
    digits = re.sub(r"[\s\-().]", "", text)
    digits = re.sub(r"^(\+86|0086|86)(?=1\d{10}$)", "", digits)
    if not _MOBILE.match(digits):
        raise ValueError("not a mainland mobile number")
    return digits


def local_secrets_file() -> Path:
    return settings.STATE_DIR / "secrets.json"


def ensure_local_key() -> dict[str, str]:
    """For local runs only: a random key kept beside the embedded warehouse (mode 600, ignored
    by git). Deployments set TIERHOUSE_PSEUDONYM_KEY from their secrets store instead."""
    path = local_secrets_file()
    wanted = {KEY_ENV: secrets.token_hex(32), KEY_VERSION_ENV: "1", PII_KEY_ENV: secrets.token_hex(32), PII_KEY_VERSION_ENV: "1"}
    try:
        keys = json.loads(path.read_text()) if path.exists() else {}
        if set(wanted) - set(keys):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({**wanted, **keys}))
            path.chmod(0o600)
        return json.loads(path.read_text())
    except OSError as exc:
        raise MissingKeyError(f"cannot use the local key file {path}: {exc.strerror or exc}") from exc


#: A JSON file of the keys (mode 0600) read instead of the environment: the local Airflow
#: passes keys this way, so that no child process (dbt's ``env_var``) finds them in its environment.
KEYS_FILE_ENV = "TIERHOUSE_KEYS_FILE"


def secret(name: str) -> str | None:
    """A key setting from the environment, else from the keys file; a placeholder value
    (``change-me``, empty, ...) is refused, never used."""
    value = os.environ.get(name)
    if value is None and os.environ.get(KEYS_FILE_ENV):
        value = json.loads(Path(os.environ[KEYS_FILE_ENV]).read_text()).get(name)
    if value is None:
        return None
    if value.strip().lower() in settings.PLACEHOLDER_SECRETS:
        raise MissingKeyError(f"{name} holds a placeholder value; set a real secret (e.g. `openssl rand -hex 32`)")
    return value


@lru_cache(maxsize=4)
def _key(raw: str) -> bytes:
    return raw.encode()


def pseudonymise(kind: str, value: str) -> str:
    """``v<version>:<hex>``: HMAC-SHA256 over the kind and the normalised value."""
    raw = secret(KEY_ENV)
    if not raw:
        raise MissingKeyError(f"set {KEY_ENV} (the secret for pseudonymous keys) before loading personal data")
    if len(raw.encode()) < MIN_KEY_BYTES:
        # a short key is guessed from known phone numbers and their keys, and then every key reversed
        raise WeakKeyError(
            f"{KEY_ENV} must be at least {MIN_KEY_BYTES} bytes, e.g. `openssl rand -hex 32`; it has {len(raw.encode())}"
        )
    version = secret(KEY_VERSION_ENV) or "1"
    digest = hmac.new(_key(raw), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"v{version}:{digest[:32]}"


def subject_keys(value: str) -> set[str]:
    """The keys a value has in the erasure ledger: as a member id, and as a phone number when it
    is one (a phone typed into a member-id field is caught too)."""
    value = value.strip()
    if not value:
        return set()
    keys = {pseudonymise("member_id", value)}
    with contextlib.suppress(ValueError):
        keys.add(pseudonymise("phone", normalise_phone(value)))
    return keys


def record_subject_keys(raw_text: str) -> set[str]:
    """The ledger keys of every field of a CSV record's raw text (a rejected record may not split
    into its columns, so every field counts)."""
    try:
        fields = [field for line in csv.reader(raw_text.splitlines()) for field in line]
    except csv.Error:
        fields = re.split(r"[,\s]", raw_text)
    return {key for field in fields for key in subject_keys(field)}


class DecryptionError(TierhouseError, ValueError):
    """A value cannot be decrypted: wrong key, wrong column, or tampered with."""


def _encryption_key(version: str) -> bytes:
    """The current key, or an older one kept as TIERHOUSE_PII_KEY_V<n> while rows are re-encrypted."""
    current = secret(PII_KEY_VERSION_ENV) or "1"
    raw = secret(PII_KEY_ENV) if version == current else secret(f"{PII_KEY_ENV}_V{version}")
    if not raw:
        raise MissingKeyError(f"set {PII_KEY_ENV} (version {version}) to encrypt or decrypt personal data")
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        raise MissingKeyError(f"{PII_KEY_ENV} must be 64 hex characters (a 256-bit key)") from None
    if len(key) != 32:
        raise MissingKeyError(f"{PII_KEY_ENV} must be 64 hex characters (a 256-bit key)")
    return key


def encrypt(value: str | None, context: str) -> str | None:
    """``enc:v<version>:<nonce+ciphertext, base64url>``, bound to ``context`` (table.column)."""
    if value is None:
        return None
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    version = secret(PII_KEY_VERSION_ENV) or "1"
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_encryption_key(version)).encrypt(nonce, value.encode(), context.encode())
    return f"enc:v{version}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def decrypt(token: str | None, context: str) -> str | None:
    if token is None:
        return None
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    match = _CIPHERTEXT.match(token)
    if not match:
        raise DecryptionError("not an encrypted value")
    blob = base64.urlsafe_b64decode(match["payload"])
    try:
        return AESGCM(_encryption_key(match["version"])).decrypt(blob[:12], blob[12:], context.encode()).decode()
    except InvalidTag:
        raise DecryptionError(f"cannot decrypt a value of {context}: wrong key or column, or altered") from None


def is_encrypted(value: object) -> bool:
    return isinstance(value, str) and bool(_CIPHERTEXT.match(value))
