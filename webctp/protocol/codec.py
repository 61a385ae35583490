"""CTP struct <-> JSON: per-struct cached field getters and orjson frames.

Structs passed to a callback are valid only during the callback, so the CTP thread captures
the field values into a tuple (one C-level ``attrgetter`` call) and everything else — the dict,
the fix-ups, JSON — happens on the Trio side.

"No value" doubles: CTP marks an unset double as DBL_MAX. In ``DepthMarketData`` every double
that is DBL_MAX becomes 0, as the reference does for prices (and, unlike the reference, also for
Turnover, OpenInterest and the deltas). Other structs pass doubles through unchanged. NaN and
infinities become null. Deprecated ``reserve*`` slots are not sent, and neither is any
``*Password*`` field (password-update responses echo them in CTP).

Binding versions: the catalogue comes from one binding version (6.7.11.0); an older binding's
struct may lack some of its fields. The capture reads, per struct *class*, only the catalogue
fields that class has (worked out on its first object and cached), and a field the class lacks
is **absent** from the JSON object (never null, never invented). Fields a binding has beyond the
catalogue are not sent either: the catalogue is the protocol.
"""

from __future__ import annotations

import functools
import operator
import sys
from collections.abc import Callable
from typing import Any

import orjson

from .catalogue import StructSpec, load

DBL_MAX = sys.float_info.max
Values = tuple[Any, ...]
RspInfo = tuple[int, str]

_ZERO_DBL_MAX = frozenset({"DepthMarketData"})


class Partial(tuple[Any, ...]):
    """Captured values of a struct class that lacks some catalogue fields: ``ABSENT`` marks
    them, and ``to_dict`` leaves them out."""

    __slots__ = ()


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def _tuple_getter(names: tuple[str, ...]) -> Callable[[Any], Values]:
    """One C-level call reading ``names`` into a tuple."""
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda obj: (one(obj),)
    if names:
        many: Callable[[Any], Values] = operator.attrgetter(*names)
        return many
    return lambda obj: ()


class StructCodec:
    """Field list, capture function and dict builder for one struct."""

    __slots__ = ("_by_class", "_dbl_fields", "_full", "name", "names")

    def __init__(self, spec: StructSpec) -> None:
        self.name = spec.name
        self.names: tuple[str, ...] = tuple(
            f.name
            for f in spec.fields
            if not f.name.startswith("reserve") and "Password" not in f.name
        )
        self._full = _tuple_getter(self.names)
        self._by_class: dict[type, Callable[[Any], Values]] = {}
        self._dbl_fields: tuple[int, ...] = ()
        if spec.name in _ZERO_DBL_MAX:
            self._dbl_fields = tuple(
                i for i, n in enumerate(self.names) if spec.by_name[n].kind == "f"
            )

    def capture(self, obj: Any) -> Values:
        """The struct's values in catalogue order (run on the CTP thread; the struct is valid
        only during the callback). Cannot raise for a struct of any binding version."""
        try:
            getter = self._by_class[type(obj)]
        except KeyError:
            getter = self._by_class[type(obj)] = self._getter_for(obj)
        return getter(obj)

    def _getter_for(self, obj: Any) -> Callable[[Any], Values]:
        names = self.names
        present = tuple(n for n in names if hasattr(obj, n))
        if len(present) == len(names):
            return self._full
        get = _tuple_getter(present)
        slots = tuple(names.index(n) for n in present)
        width = len(names)

        def capture_partial(o: Any) -> Values:
            out = [ABSENT] * width
            for i, v in zip(slots, get(o)):
                out[i] = v
            return Partial(out)

        return capture_partial

    def missing(self, cls: type) -> tuple[str, ...]:
        """The catalogue fields (as sent) that instances of ``cls`` lack."""
        return tuple(n for n in self.names if not hasattr(cls, n))

    def to_dict(self, values: Values) -> dict[str, Any]:
        if self._dbl_fields and DBL_MAX in values:
            fixed = list(values)
            for i in self._dbl_fields:
                if fixed[i] == DBL_MAX:
                    fixed[i] = 0.0
            values = Partial(fixed) if type(values) is Partial else tuple(fixed)
        if type(values) is Partial:
            return {n: v for n, v in zip(self.names, values) if v is not ABSENT}
        return dict(zip(self.names, values))


@functools.cache
def codec(struct_name: str) -> StructCodec:
    return StructCodec(load().structs[struct_name])


def capture_rsp_info(info: Any) -> RspInfo | None:
    """Copy a CThostFtdcRspInfoField (or None) on the CTP thread."""
    if info is None:
        return None
    return (info.ErrorID, info.ErrorMsg)


def _clean(obj: Any) -> Any:
    if isinstance(obj, str):
        return obj.encode("utf-8", "replace").decode("utf-8")
    if isinstance(obj, bytes):
        # openctp-ctp reads SettlementInfo.Content (TThostFtdcContentType) as raw GBK bytes;
        # a character split across two chunks comes out as U+FFFD here
        return obj.decode("gb18030", "replace")
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def dumps(message: dict[str, Any]) -> str:
    """Encode a frame. Text that is not valid Unicode (a lone surrogate from a one-char field
    holding a byte >= 0x80) is replaced with '?' instead of breaking the frame; bytes (the
    binding's settlement ``Content``) are decoded as GB18030."""
    try:
        return orjson.dumps(message).decode("utf-8")
    except orjson.JSONEncodeError:
        return orjson.dumps(_clean(message)).decode("utf-8")


def rsp_info_obj(info: RspInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {"ErrorID": info[0], "ErrorMsg": info[1]}


def response(
    msg_type: str,
    payload_key: str | None,
    payload: dict[str, Any] | None,
    info: RspInfo | None,
    request_id: int | None,
    is_last: bool,
) -> dict[str, Any]:
    """A response frame: RequestID and IsLast always present."""
    frame: dict[str, Any] = {
        "MsgType": msg_type,
        "RspInfo": rsp_info_obj(info),
        "RequestID": request_id,
        "IsLast": is_last,
    }
    if payload_key is not None:
        frame[payload_key] = payload
    return frame


def push(
    msg_type: str,
    payload_key: str | None,
    payload: dict[str, Any] | None,
    info: RspInfo | None,
    *,
    with_rsp_info: bool = True,
) -> dict[str, Any]:
    """A push frame: no RequestID, no IsLast (md ticks carry no RspInfo, as the reference)."""
    frame: dict[str, Any] = {"MsgType": msg_type}
    if with_rsp_info:
        frame["RspInfo"] = rsp_info_obj(info)
    if payload_key is not None:
        frame[payload_key] = payload
    return frame
