"""Every frame the client tests send or receive is checked against docs/schemas: a received
frame must follow its schema; a sent frame that does not (the tests send some bad input on
purpose) must be answered with -400, so the schemas and the service agree on what is valid."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.schema_check import check_frame, frame_errors
from webctp.client._conn import Connection


@pytest.fixture(autouse=True)
def schema_checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    dispatch = Connection.dispatch
    send = Connection.send
    invalid: dict[int, list[str]] = {}  # RequestID -> why the schema refused the frame sent

    def checked_dispatch(self: Connection, frame: dict[str, Any]) -> None:
        check_frame(frame)
        rid = frame.get("RequestID")
        if isinstance(rid, int) and rid in invalid:
            info = frame.get("RspInfo") or {}
            assert info.get("ErrorID") == -400, (invalid[rid], frame)
            del invalid[rid]
        dispatch(self, frame)

    async def checked_send(self: Connection, frame: dict[str, Any]) -> None:
        errors = frame_errors(frame)
        if errors:
            invalid[frame["RequestID"]] = errors
        await send(self, frame)

    monkeypatch.setattr(Connection, "dispatch", checked_dispatch)
    monkeypatch.setattr(Connection, "send", checked_send)
    yield
