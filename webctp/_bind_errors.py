"""Opening a listener: a failure names the address and the setting the user must change."""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup


class ListenError(Exception):
    """A listener could not be opened (busy port, address not of this machine, ...)."""


def find(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of ``kinds`` in ``exc``, looking inside (nested) exception groups."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find(inner, kinds)
            if found is not None:
                return found
    return None


def advice(service: str, host: str, port: int, port_key: str, error: OSError) -> str:
    """One line: what could not be opened, why, and which setting or option to change."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    reason = error.strerror or str(error)
    port_setting = f"server.{port_key} (--{port_key.replace('_', '-')})"
    where = f"cannot listen for {service} on {address}: {reason}"
    if error.errno == errno.EADDRINUSE:
        return (
            f"{where}; port {port} is taken by another program: set {port_setting} to a free "
            "port (0 lets the system pick one) or stop that program"
        )
    if error.errno == errno.EACCES:
        return f"{where}; ports below 1024 need privileges: set {port_setting} to 1024 or above"
    if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
        return (
            f"{where}; server.host (--host) must be an address of this machine "
            "(e.g. 127.0.0.1, ::1 or 0.0.0.0)"
        )
    return f"{where}; check server.host (--host) and {port_setting}"


@contextmanager
def listen_errors(service: str, host: str, port: int, port_key: str) -> Iterator[None]:
    """Turn a failure to open a listener into a ``ListenError`` saying what to change."""
    try:
        yield
    except (OSError, BaseExceptionGroup) as exc:
        error = find(exc, (OSError,))
        if not isinstance(error, OSError):
            raise
        raise ListenError(advice(service, host, port, port_key, error)) from exc
