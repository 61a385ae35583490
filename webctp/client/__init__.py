"""A Python client for webctp, on Trio and trio-websocket.

::

    from webctp.client import connect_md, connect_td

    async with connect_td("ws://127.0.0.1:8081/td/") as td:
        await td.login("demo", "secret")
        account = (await td.query("QryTradingAccount"))[0]
        order = await td.insert_order("rb.front", "buy", 1, 3100.0)
        await order.wait_done()

    async with connect_md("ws://127.0.0.1:8081/md/") as md:
        await md.login()
        async for tick in md.subscribe(["rb.front"]):
            print(tick["InstrumentID"], tick["LastPrice"])

RequestIDs are chosen by the client; answers are collected up to IsLast; error answers raise
:class:`CtpError` (``error_id``, ``error_msg``, ``detail``); link state is in ``state``
(``SessionState``) and :meth:`~TdClient.pushes` delivers any push. Everything runs in the
``async with`` block's own nursery, and nothing outlives it.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from ssl import SSLContext
from typing import TypeVar
from urllib.parse import urlencode

import trio
from trio_websocket import ConnectionRejected, HandshakeError, open_websocket_url

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

from ._conn import Connection, PushStream
from ._errors import ClientError, ConnectionLost, CtpError, OrderRejected
from ._md import MdClient, Subscription
from ._td import Order, TdClient

__all__ = [
    "ClientError",
    "Connection",
    "ConnectionLost",
    "CtpError",
    "MdClient",
    "Order",
    "OrderRejected",
    "PushStream",
    "Subscription",
    "TdClient",
    "connect_md",
    "connect_td",
]

_C = TypeVar("_C", bound=Connection)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@asynccontextmanager
async def _connect(
    cls: type[_C],
    url: str,
    token: str | None,
    ssl_context: SSLContext | None,
    connect_timeout: float,
    send_timeout: float,
) -> AsyncIterator[_C]:
    if token:
        url += ("&" if "?" in url else "?") + urlencode({"token": token})
    try:
        async with AsyncExitStack() as stack:
            try:
                ws = await stack.enter_async_context(
                    open_websocket_url(
                        url,
                        ssl_context,
                        connect_timeout=connect_timeout,
                        disconnect_timeout=5,
                        max_message_size=MAX_MESSAGE_BYTES,
                    )
                )
            except ConnectionRejected as exc:  # e.g. 401: missing or wrong token
                body = exc.body.decode("utf-8", "replace").strip() if exc.body else ""
                raise ConnectionLost(exc.status_code, body or "connection refused") from None
            except (HandshakeError, OSError, trio.TooSlowError) as exc:
                raise ConnectionLost(None, f"cannot connect: {exc!r}") from None
            nursery = await stack.enter_async_context(trio.open_nursery())
            client = cls(ws, send_timeout=send_timeout)
            nursery.start_soon(client.run)
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The receive task never raises, so a group holds the body's own exception: give the
        # caller that exception, as if there were no nursery.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from group.exceptions[0].__cause__
        raise


def connect_td(
    url: str,
    *,
    token: str | None = None,
    ssl_context: SSLContext | None = None,
    connect_timeout: float = 10.0,
    send_timeout: float = 10.0,
) -> AbstractAsyncContextManager[TdClient]:
    """``async with connect_td("ws://host:8081/td/") as td:`` a trader session."""
    return _connect(TdClient, url, token, ssl_context, connect_timeout, send_timeout)


def connect_md(
    url: str,
    *,
    token: str | None = None,
    ssl_context: SSLContext | None = None,
    connect_timeout: float = 10.0,
    send_timeout: float = 10.0,
) -> AbstractAsyncContextManager[MdClient]:
    """``async with connect_md("ws://host:8081/md/") as md:`` a market-data session."""
    return _connect(MdClient, url, token, ssl_context, connect_timeout, send_timeout)
