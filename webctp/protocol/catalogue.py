"""The message catalogue: every CTP request, callback and struct, from one committed data file.

``catalogue.json`` is generated from the openctp-ctp binding by ``scripts/gen_catalogue.py``
and committed, so that nothing here (nor the simulator) imports the binding.

Naming rules (compatible with openctp/webctp):

- a request MsgType is the ``Req*`` method name; its payload key is the request struct's
  name without the ``CThostFtdc``/``Field`` affixes (``ReqOrderInsert`` -> ``InputOrder``);
- a callback ``OnX`` becomes MsgType ``X``; its payload key is the callback struct's short
  name (``OnRspQryInstrument`` -> ``RspQryInstrument`` with ``Instrument``).
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

FieldKind = Literal["c", "s", "i", "f"]
"""``c`` one character, ``s`` string of at most ``size`` bytes, ``i`` int32, ``f`` double."""

Api = Literal["td", "md"]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    kind: FieldKind
    size: int
    typedef: str


@dataclass(frozen=True)
class StructSpec:
    name: str
    """Short name, e.g. ``InputOrder`` (the binding's class is ``CThostFtdcInputOrderField``)."""
    fields: tuple[FieldSpec, ...]
    doc: str
    unavailable: Mapping[str, str] = field(default_factory=dict, compare=False)
    """Catalogue fields the loaded binding's struct lacks (not in ``fields``), each with the
    reason a request naming it is refused (see ``webctp.backend._adapt``)."""

    @functools.cached_property
    def by_name(self) -> dict[str, FieldSpec]:
        return {f.name: f for f in self.fields}

    @property
    def class_name(self) -> str:
        return f"CThostFtdc{self.name}Field"


@dataclass(frozen=True, slots=True)
class RequestSpec:
    msg_type: str
    """The ``Req*`` method name, which is also the request MsgType."""
    struct: str
    doc: str
    api: Api

    @property
    def payload_key(self) -> str:
        return self.struct

    @property
    def response(self) -> str:
        """The MsgType of the matching response: ``ReqQryOrder`` -> ``RspQryOrder``."""
        return "Rsp" + self.msg_type[3:]

    @property
    def is_query(self) -> bool:
        """Whether CTP's query flow control (one in flight, QryFreq per second) applies.

        ``ReqQry*`` methods are queries; ``ReqQuery*`` go through the trading core and are
        not query-limited (CTP API docs, Flow control).
        """
        return self.msg_type.startswith("ReqQry")


CallbackKind = Literal["rsp", "rtn", "errrtn", "event"]


@dataclass(frozen=True, slots=True)
class CallbackSpec:
    name: str
    """The Spi method name, e.g. ``OnRspQryInstrument``."""
    struct: str | None
    params: tuple[str, ...]
    doc: str
    api: Api

    @property
    def msg_type(self) -> str:
        return self.name[2:]

    @property
    def payload_key(self) -> str | None:
        return self.struct

    @property
    def kind(self) -> CallbackKind:
        if self.name.startswith("OnRsp"):
            return "rsp"
        if self.name.startswith("OnRtn"):
            return "rtn"
        if self.name.startswith("OnErrRtn"):
            return "errrtn"
        return "event"

    @property
    def has_rsp_info(self) -> bool:
        return "pRspInfo" in self.params

    @property
    def has_request_id(self) -> bool:
        return "nRequestID" in self.params


@dataclass(frozen=True, slots=True)
class ApiSpec:
    api: Api
    requests: dict[str, RequestSpec]
    callbacks: dict[str, CallbackSpec]
    methods: dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Catalogue:
    binding: str
    api_version: str
    td: ApiSpec
    md: ApiSpec
    structs: dict[str, StructSpec]
    constants: dict[str, str | int]
    unavailable: Mapping[str, str] = field(default_factory=dict, compare=False)
    """Request MsgTypes the loaded binding lacks, each with the reason it is refused."""

    def api(self, name: Api) -> ApiSpec:
        return self.td if name == "td" else self.md

    def struct(self, name: str) -> StructSpec:
        return self.structs[name]


def raw() -> dict[str, Any]:
    """The parsed ``catalogue.json`` (a fresh copy each call)."""
    text = importlib.resources.files(__package__).joinpath("catalogue.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _api(data: dict[str, Any], api: Api) -> ApiSpec:
    section = data[api]
    return ApiSpec(
        api=api,
        requests={
            name: RequestSpec(name, spec["struct"], spec["doc"], api)
            for name, spec in section["requests"].items()
        },
        callbacks={
            name: CallbackSpec(name, spec["struct"], tuple(spec["params"]), spec["doc"], api)
            for name, spec in section["callbacks"].items()
        },
        methods=section["methods"],
    )


@functools.cache
def load() -> Catalogue:
    """The catalogue, parsed once per process."""
    data = raw()
    structs = {
        name: StructSpec(
            name,
            tuple(FieldSpec(f[0], f[1], f[2], f[3]) for f in spec["fields"]),
            spec["doc"],
        )
        for name, spec in data["structs"].items()
    }
    return Catalogue(
        binding=data["binding"],
        api_version=data["api_version"],
        td=_api(data, "td"),
        md=_api(data, "md"),
        structs=structs,
        constants=data["constants"],
    )
