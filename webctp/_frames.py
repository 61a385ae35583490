"""A session's way to its client: frames into ``out``, error frames, and the envelope check
every client frame passes first.

Shared by the CTP sessions (``_session.Session``: td and per-session md) and the shared md
session (``_mdshared.SharedMdSession``), so that a bad frame is answered the same way on
every socket: an error frame carrying the client's RequestID, counted in the metrics.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._context import ServiceContext
from .protocol import codec, envelope
from .protocol.errors import error_message


class FrameOut(Protocol):
    """Where a session's frames go (``_connection.Outbox``; a memory channel in tests)."""

    async def send(self, text: str, /) -> None: ...

    def send_nowait(self, text: str, /) -> None: ...


class Frames:
    """Base of the sessions: needs ``ctx`` and ``out`` set by the subclass's ``__init__``."""

    ctx: ServiceContext
    out: FrameOut

    async def send(self, frame: dict[str, Any]) -> None:
        await self.out.send(codec.dumps(frame))

    async def send_error(
        self,
        code: int,
        *,
        request: str | None,
        request_id: int | None,
        detail: str = "",
        error_msg: str | None = None,
        msg_type: str | None = None,
    ) -> None:
        self.ctx.metrics.errors[int(code)] += 1
        await self.send(
            error_message(
                code,
                request=request,
                request_id=request_id,
                detail=detail,
                error_msg=error_msg,
                msg_type=msg_type,
            )
        )

    async def parse(self, text: str | bytes) -> envelope.Envelope | None:
        """The client's frame as an envelope; None when it is not one (answered here with the
        error frame, carrying the RequestID when the frame had one)."""
        env = envelope.parse(text, max_bytes=self.ctx.cfg.server.max_message_bytes)
        if isinstance(env, envelope.BadEnvelope):
            await self.send_error(
                env.error.code,
                request=env.msg_type,
                request_id=env.request_id,
                detail=env.error.detail,
            )
            return None
        return env
