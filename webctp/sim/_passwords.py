"""Investor passwords at rest: salted scrypt hashes (standard library only).

A stored password is ``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (base64 salt and hash), so the cost
can be raised later without breaking stored rows. Anything else is a clear-text password left
by an older version: it is still accepted once, and the login that proves it replaces it with
a hash (``verify`` says so).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
"""scrypt cost: 16 MiB and ~60 ms per hash on a 2020s server core (the interactive-login
parameters of the scrypt paper); paid once per account and process (see ``LoginCache``)."""
SALT_BYTES = 16
HASH_BYTES = 32


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=HASH_BYTES, maxmem=64 << 20
    )


def hash_password(password: str) -> str:
    """A fresh salted hash of ``password``, in the stored form."""
    salt = os.urandom(SALT_BYTES)
    digest = _scrypt(password, salt, N, R, P)
    b64 = base64.b64encode
    return f"{SCHEME}${N}${R}${P}${b64(salt).decode()}${b64(digest).decode()}"


def is_hashed(stored: str) -> bool:
    return stored.startswith(SCHEME + "$")


def verify(stored: str, password: str) -> tuple[bool, str | None]:
    """(matches, replacement): ``replacement`` is a new hash to store when ``stored`` was a
    clear-text password of an older version (or used older parameters) and it matched."""
    if not is_hashed(stored):
        ok = hmac.compare_digest(stored.encode("utf-8"), password.encode("utf-8"))
        return ok, hash_password(password) if ok else None
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False, None  # a damaged row never matches
    ok = hmac.compare_digest(actual, expected)
    upgrade = ok and (int(n), int(r), int(p)) != (N, R, P)
    return ok, hash_password(password) if upgrade else None


class LoginCache:
    """Passwords proven in this process, as keyed HMACs (never the passwords), so that a
    reconnecting investor does not pay the KDF again on the engine thread. The key is random
    per process: nothing of it is stored."""

    def __init__(self) -> None:
        self._key = os.urandom(32)
        self._proven: dict[str, bytes] = {}

    def _mac(self, password: str) -> bytes:
        return hmac.digest(self._key, password.encode("utf-8"), "sha256")

    def matches(self, user_id: str, password: str) -> bool:
        known = self._proven.get(user_id)
        return known is not None and hmac.compare_digest(known, self._mac(password))

    def remember(self, user_id: str, password: str) -> None:
        self._proven[user_id] = self._mac(password)

    def forget(self, user_id: str) -> None:
        self._proven.pop(user_id, None)
