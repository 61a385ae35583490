"""The one hook the generated ``Req*`` methods call (implemented by the API classes)."""

from __future__ import annotations

from typing import Any


class ApiBase:
    """Abstract request sink; see ``_api.ApiCore._sim_request`` for the behaviour."""

    __slots__ = ()

    def _sim_request(self, name: str, struct_cls: type[Any], struct: Any, request_id: Any) -> int:
        raise NotImplementedError
