"""A small WebSocket + HTTP client for the integration tests (loopback only)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from tests.schema_check import check_frame

Frame = dict[str, Any]


class Client:
    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.seen: list[Frame] = []

    async def send(self, message: Frame | str | bytes) -> None:
        if isinstance(message, dict):
            message = orjson.dumps(message).decode()
        await self.ws.send_message(message)

    async def recv(self, timeout: float = 10.0) -> Frame:
        with trio.fail_after(timeout):
            text = await self.ws.get_message()
        frame: Frame = orjson.loads(text)
        check_frame(frame)  # every frame the end-to-end tests see follows docs/schemas
        self.seen.append(frame)
        return frame

    async def expect(
        self, predicate: Callable[[Frame], bool] | str, timeout: float = 10.0
    ) -> Frame:
        """The next frame matching ``predicate`` (a MsgType or a function); skips others."""
        if isinstance(predicate, str):
            msg_type = predicate
            predicate = lambda f: f.get("MsgType") == msg_type  # noqa: E731
        with trio.fail_after(timeout):
            while True:
                frame = await self.recv(timeout)
                if predicate(frame):
                    return frame

    async def collect(
        self, msg_type: str, request_id: int | None, timeout: float = 10.0
    ) -> list[Frame]:
        """All rows of one response, up to IsLast."""
        rows = []
        with trio.fail_after(timeout):
            while True:
                frame = await self.expect(
                    lambda f: (
                        f.get("MsgType") in (msg_type, "RspError")
                        and f.get("RequestID") == request_id
                    ),
                    timeout,
                )
                rows.append(frame)
                if frame.get("IsLast"):
                    return rows

    async def login(self, user: str = "alice", password: str = "pw", rid: int = 1) -> Frame:
        await self.send(
            {
                "MsgType": "ReqUserLogin",
                "ReqUserLogin": {"UserID": user, "Password": password},
                "RequestID": rid,
            }
        )
        return await self.expect(
            lambda f: (
                f.get("RequestID") == rid
                and f.get("MsgType")
                in ("RspUserLogin", "RspAuthenticate", "RspSettlementInfoConfirm")
            )
        )

    async def query(
        self, msg_type: str, payload: Frame | None = None, rid: int = 100
    ) -> list[Frame]:
        key = msg_type[3:]
        await self.send({"MsgType": msg_type, key: payload or {}, "RequestID": rid})
        return await self.collect("Rsp" + msg_type[3:], rid)


@asynccontextmanager
async def connect(port: int, path: str = "/td/") -> AsyncIterator[Client]:
    async with open_websocket_url(f"ws://127.0.0.1:{port}{path}") as ws:
        yield Client(ws)


async def http_get(port: int, path: str, extra: str = "") -> tuple[int, dict[str, str], bytes]:
    """GET over a raw loopback socket (reads up to Content-Length; no HTTP client needed)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}"
            "Connection: close\r\n\r\n".encode()
        )
        data = b""
        with trio.fail_after(10):
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                assert chunk, "connection closed before the headers"
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
            length = int(headers.get("content-length", "-1"))
            while length < 0 or len(body) < length:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                body += chunk
    return status, headers, body
