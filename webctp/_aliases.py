"""Instrument aliases: ``<ProductID>.front`` stands for the product's front-month contract.

``rb.front`` is the nearest listed ``rb`` contract on the current trading day, so examples,
demos and tests need no contract id that expires. The service replaces an alias by the contract
before anything reaches CTP, so every answer names the real contract (``RtnOrder``,
``RspSubMarketData``, ticks). Only the simulator backend resolves aliases; with a real front an
alias is refused with -400 (docs/td_protocol.md, "Instrument aliases", says why).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .protocol.errors import Code, ProtocolError

SUFFIX = ".front"
"""No CTP instrument id contains a dot, so an alias never shadows a listed contract."""

FrontMonth = Callable[[str], str | None]
"""ProductID → its front-month contract (None: no such product is listed)."""


def is_alias(value: object) -> bool:
    return isinstance(value, str) and value.endswith(SUFFIX)


def resolve(instrument_id: str, front_month: FrontMonth | None, where: str) -> str:
    """``instrument_id`` itself, or the contract its alias stands for; a ProtocolError (-400)
    naming ``where`` when the alias cannot be resolved."""
    if not instrument_id.endswith(SUFFIX):
        return instrument_id
    if front_month is None:
        raise ProtocolError(
            Code.BAD_REQUEST,
            f"{where}: {instrument_id!r} is an instrument alias, which only the simulator "
            "resolves; send a listed InstrumentID (ReqQryInstrument lists them)",
        )
    product = instrument_id[: -len(SUFFIX)]
    contract = front_month(product) if product else None
    if contract is None:
        raise ProtocolError(
            Code.BAD_REQUEST,
            f"{where}: {instrument_id!r}: no product {product!r} is listed "
            "(an alias is <ProductID>.front, e.g. rb.front)",
        )
    return contract


def for_fronts(
    lookup: Callable[[str, str], str | None] | None, fronts: Sequence[str]
) -> FrontMonth | None:
    """The resolver of a session registered at ``fronts``, from the backend's
    ``front_month(front, product)`` (None: the backend has no aliases)."""
    if lookup is None:
        return None

    def front_month(product: str) -> str | None:
        return next(filter(None, (lookup(front, product) for front in fronts)), None)

    return front_month


def resolve_ids(ids: list[str], front_month: FrontMonth | None) -> list[str]:
    """An md ``InstrumentID`` list with its aliases resolved, item for item (an alias listed
    with its own contract stays two items, so each gets its answer as the docs promise); the
    list itself when it has none."""
    if not any(map(is_alias, ids)):
        return ids
    return [resolve(iid, front_month, f"InstrumentID[{n}]") for n, iid in enumerate(ids)]


def resolve_body(body: dict[str, Any], front_month: FrontMonth | None) -> dict[str, Any]:
    """A request whose top-level ``InstrumentID`` is a string (``GetBars``) with its alias
    resolved; the body itself when it names none."""
    value = body.get("InstrumentID")
    if not isinstance(value, str) or not is_alias(value):
        return body
    return body | {"InstrumentID": resolve(value, front_month, "InstrumentID")}
