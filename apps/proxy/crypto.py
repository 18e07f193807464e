"""Encryption at rest for provider API keys (Fernet from the `cryptography` package).

The Fernet key comes from settings.FIELD_ENCRYPTION_KEY when set (a urlsafe base64 32-byte
key, or any passphrase), else is derived from SECRET_KEY. Keys never leave the server:
pages show only `hint()`.
"""
from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    digest = hashlib.sha256(("playground-field-encryption:" + secret).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _secret() -> str:
    return settings.FIELD_ENCRYPTION_KEY or settings.SECRET_KEY


def _current() -> Fernet:
    return _fernet(_secret())


def encrypt(raw: str) -> str:
    return _current().encrypt(raw.encode()).decode()


def decrypt(token: str) -> str:
    return _decrypt(_secret(), token)


@lru_cache(maxsize=256)
def _decrypt(secret: str, token: str) -> str:
    """Cached: every upstream request needs its provider's key, and Fernet's HMAC check and
    AES decryption (about 0.15 ms) sit on the way to the first token. A token is never
    reused for another plaintext, and the secret is part of the cache key, so a changed
    FIELD_ENCRYPTION_KEY is never answered from the cache."""
    try:
        return _fernet(secret).decrypt(token.encode()).decode()
    except InvalidToken:
        # The encryption key changed since this was saved: the key must be entered again.
        return ""


def hint(raw: str) -> str:
    """`sk-...abcd`: enough to recognise a key, never enough to use it."""
    if len(raw) <= 8:
        return "..." + raw[-2:] if raw else ""
    head = raw[:3] if raw[:3].isascii() else ""
    return f"{head}...{raw[-4:]}"
