"""Pseudonymous keys for personal identifiers.

A phone number has so few possible values (about 10^9 plausible mainland mobiles) that a plain
hash is reversed by hashing them all; a keyed hash (HMAC-SHA256) with a secret held outside the
database is not. The key version is part of every key so keys can be rotated: a new version
is introduced, identities are re-keyed from the restricted copy, then the old key retired.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from functools import lru_cache
from pathlib import Path

from tierhouse import settings

KEY_ENV = "TIERHOUSE_PSEUDONYM_KEY"
KEY_VERSION_ENV = "TIERHOUSE_PSEUDONYM_KEY_VERSION"
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


class MissingKeyError(RuntimeError):
    """No pseudonymisation key is configured."""


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
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({KEY_ENV: secrets.token_hex(32), KEY_VERSION_ENV: "1"}))
        path.chmod(0o600)
    return json.loads(path.read_text())


@lru_cache(maxsize=4)
def _key(raw: str) -> bytes:
    return raw.encode()


def pseudonymise(kind: str, value: str) -> str:
    """``v<version>:<hex>``: HMAC-SHA256 over the kind and the normalised value."""
    raw = os.environ.get(KEY_ENV)
    if not raw:
        raise MissingKeyError(f"set {KEY_ENV} (the secret for pseudonymous keys) before loading personal data")
    version = os.environ.get(KEY_VERSION_ENV, "1")
    digest = hmac.new(_key(raw), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"v{version}:{digest[:32]}"
