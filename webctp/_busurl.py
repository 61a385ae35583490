"""``[bus] url``: where and how to reach Redis, read the way coredis reads it, so that the
bus's own connections (``_resp``) and coredis's agree on host, credentials, database and TLS.

Pure (no I/O until ``tls_context`` loads the files it names); checked when the config is
loaded, so a bad URL is a config error at start-up, never a failure later in a task."""

from __future__ import annotations

import dataclasses
import os
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

_CERT_REQS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Address:
    host: str = "127.0.0.1"
    port: int = 6379
    path: str = ""
    """A Unix socket's path (``unix://``); then host and port are not used."""
    tls: bool = False
    username: str = ""
    password: str = ""
    db: int = 0
    cert_reqs: str = "optional"
    """``ssl_cert_reqs``: none, optional (coredis's default) or required."""
    check_hostname: bool = False
    ca_certs: str = ""
    certfile: str = ""
    keyfile: str = ""


def parse_url(url: str) -> Address:
    """``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS) or
    ``unix://path[?db=n]``; user and password percent-decoded; with ``rediss://`` the query's
    ``ssl_cert_reqs``, ``ssl_check_hostname``, ``ssl_ca_certs``, ``ssl_certfile`` and
    ``ssl_keyfile``. ValueError when it is none of these."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    username = unquote(parts.username or "")
    password = unquote(parts.password or "")
    db_text = query.get("db", "")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("unix:// needs the socket's path")
        return Address(
            path=unquote(parts.path),
            username=username,
            password=password,
            db=_int(db_text or "0", "db"),
        )
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"expected redis://, rediss:// or unix://, not {parts.scheme}://")
    try:
        port = parts.port or 6379
    except ValueError as exc:
        raise ValueError(f"bad port: {exc}") from None
    address = Address(
        host=unquote(parts.hostname or "127.0.0.1"),
        port=port,
        tls=parts.scheme == "rediss",
        username=username,
        password=password,
        db=_int(db_text or parts.path.strip("/") or "0", "db"),
    )
    if not address.tls:
        return address
    cert_reqs = query.get("ssl_cert_reqs", "optional")
    if cert_reqs not in _CERT_REQS:
        raise ValueError("ssl_cert_reqs: none, optional or required")
    check = query.get("ssl_check_hostname", "").lower()
    if check not in _TRUE + _FALSE:
        raise ValueError("ssl_check_hostname: true or false")
    if check in _TRUE and cert_reqs == "none":
        raise ValueError("ssl_check_hostname needs ssl_cert_reqs optional or required")
    return dataclasses.replace(
        address,
        cert_reqs=cert_reqs,
        check_hostname=check in _TRUE,
        ca_certs=query.get("ssl_ca_certs", ""),
        certfile=query.get("ssl_certfile", ""),
        keyfile=query.get("ssl_keyfile", ""),
    )


def tls_context(address: Address) -> ssl.SSLContext:
    """The TLS settings coredis applies for the same URL: the system's CAs (plus
    ``ssl_ca_certs``), a client certificate when ``ssl_certfile`` and ``ssl_keyfile`` are
    given, ``ssl_check_hostname`` and ``ssl_cert_reqs`` as set (coredis's defaults: no
    hostname check, certificate optional)."""
    context = ssl.create_default_context()
    if address.certfile and address.keyfile:
        context.load_cert_chain(certfile=address.certfile, keyfile=address.keyfile)
    if address.ca_certs:
        if os.path.isdir(address.ca_certs):
            context.load_verify_locations(capath=address.ca_certs)
        else:
            context.load_verify_locations(cafile=address.ca_certs)
    context.check_hostname = address.check_hostname
    context.verify_mode = _CERT_REQS[address.cert_reqs]
    return context


def _int(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}: not a number: {text!r}") from None
    if value < 0:
        raise ValueError(f"{name}: must not be negative")
    return value
