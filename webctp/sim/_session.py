"""One connection of an API object to the simulated front (CTP's FrontID + SessionID).

A connection lives from OnFrontConnected to OnFrontDisconnected; a reconnect is a new
``Conn`` with a new SessionID, so authentication, login and OrderRef numbering start over, as
with a real front (ctp-domain.md §8.2).
"""

from __future__ import annotations

from collections import deque

from ._ports import FrontClient


class Conn:
    """State the front keeps per session."""

    def __init__(self, api: FrontClient, kind: str, front_id: int, session_id: int) -> None:
        self.api = api
        self.kind = kind  # "td" | "md"
        self.front_id = front_id
        self.session_id = session_id
        self.alive = True
        self.authenticated = False
        self.app_id = ""
        self.user_id: str | None = None  # set by a successful login
        self.login_pending = False  # the password is being checked (off the engine thread)
        self.user_product_info = ""
        self.last_order_ref = 0
        self.query_times: deque[float] = deque()
        self.order_times: deque[float] = deque()
        self.subscriptions: set[str] = set()
        self.private_resume = api._sim_private_resume
        self.public_resume = api._sim_public_resume

    @property
    def logged_in(self) -> bool:
        return self.user_id is not None

    def __repr__(self) -> str:
        return f"Conn({self.kind} {self.front_id}/{self.session_id} user={self.user_id})"
