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
import queue
import threading
from collections.abc import Callable
from typing import Any

SCHEME = "scrypt"
N, R, P = 2**10, 8, 1
"""Default scrypt cost (``SimSettings.password_scrypt_n`` sets N): 1 MiB and ~4 ms per hash on
a 2020s server core, paid once per account and process (see ``LoginCache``) on the KDF thread.
Cheap enough for a thousand sessions logging in at once (docs/benchmarks.md item 6), still a
salted memory-hard KDF against a stolen database; raise N for more (each doubling doubles the
cost; stored hashes are upgraded at their next login)."""
SALT_BYTES = 16
HASH_BYTES = 32


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=HASH_BYTES, maxmem=64 << 20
    )


def hash_password(password: str, n: int = N) -> str:
    """A fresh salted hash of ``password``, in the stored form."""
    salt = os.urandom(SALT_BYTES)
    digest = _scrypt(password, salt, n, R, P)
    b64 = base64.b64encode
    return f"{SCHEME}${n}${R}${P}${b64(salt).decode()}${b64(digest).decode()}"


def is_hashed(stored: str) -> bool:
    return stored.startswith(SCHEME + "$")


def verify(stored: str, password: str, n: int = N) -> tuple[bool, str | None]:
    """(matches, replacement): ``replacement`` is a new hash (cost ``n``) to store when
    ``stored`` was a clear-text password of an older version (or used another cost) and it
    matched."""
    if not is_hashed(stored):
        ok = hmac.compare_digest(stored.encode("utf-8"), password.encode("utf-8"))
        return ok, hash_password(password, n) if ok else None
    try:
        _, cost, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(cost), int(r), int(p))
    except (ValueError, TypeError):
        return False, None  # a damaged row never matches
    ok = hmac.compare_digest(actual, expected)
    upgrade = ok and (int(cost), int(r), int(p)) != (n, R, P)
    return ok, hash_password(password, n) if upgrade else None


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


class KdfWorker:
    """One thread that runs the KDF for logins, so that the engine thread never spends
    ~60 ms on a password (a burst of logins with wrong passwords would stall every investor
    and the market). ``hashlib.scrypt`` releases the GIL while it works.

    The queue is bounded (``MAX_WAITING``): when it is full ``submit`` returns False and the
    login is refused at once with a "try again" error. ``done`` runs on this thread: it must
    only hand the result back to the engine (``Engine.post``) and cannot raise."""

    MAX_WAITING = 4096

    def __init__(self, name: str) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], Callable[[Any], None]] | None] = (
            queue.Queue(self.MAX_WAITING)
        )
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"sim-{name}-kdf", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, work: Callable[[], Any], done: Callable[[Any], None]) -> bool:
        if self._stopping:
            return False
        try:
            self._jobs.put_nowait((work, done))
        except queue.Full:
            return False
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Drop what waits, finish the running hash, end the thread."""
        self._stopping = True
        if self._thread.is_alive():
            self._jobs.put(None)  # the thread drops the rest quickly: there is room soon
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._stopping:
                continue
            work, done = job
            try:
                result = work()
            except Exception as exc:  # noqa: BLE001 - handed back, reported there
                result = exc
            done(result)
