"""Fit the message catalogue to the binding that is actually loaded.

The catalogue is generated from one binding version (``catalogue.json``: openctp-ctp 6.7.11.0).
Every version the pin allows (6.7.2.8 … 6.7.11.0) lacks some of it: struct fields added later
(``OrderMemo`` before 6.7.7, ``LastLoginTime`` before 6.7.11), whole structs, and some
``Req*`` methods. Setting a field the struct does not have would only create a Python attribute
that never reaches CTP, and calling a missing method would fail inside the session, so the
service works from the catalogue restricted to what the binding has:

- a request naming a field the binding lacks is refused with ``-400`` and a Detail naming the
  field and the binding version (``webctp.protocol.validate`` reads ``StructSpec.unavailable``);
- a request the binding lacks is refused with ``-400`` the same way (``Catalogue.unavailable``);
- responses simply do not carry fields the binding lacks (``webctp.protocol.codec``).

Pure introspection with ``hasattr``; it imports nothing and works on the simulator's modules too
(which have everything, so the catalogue comes back unchanged).
"""

from __future__ import annotations

import dataclasses
from types import ModuleType

from webctp.protocol.catalogue import Catalogue, StructSpec


def _struct_for(spec: StructSpec, cls: type | None, label: str, catalogue: str) -> StructSpec:
    if cls is None:
        missing = {f.name for f in spec.fields}
        why = f"{label} has no {spec.class_name} (the catalogue is from {catalogue})"
    else:
        missing = {f.name for f in spec.fields if not hasattr(cls, f.name)}
        why = ""
    if not missing:
        return spec
    unavailable = {
        name: why or f"not in {label}'s {spec.class_name} (the catalogue is from {catalogue})"
        for name in sorted(missing)
    }
    return dataclasses.replace(
        spec,
        fields=tuple(f for f in spec.fields if f.name not in missing),
        unavailable=unavailable,
    )


def adapt(cat: Catalogue, td: ModuleType, md: ModuleType, label: str) -> Catalogue:
    """``cat`` as far as the binding ``td``/``md`` (described by ``label``, e.g.
    ``openctp-ctp 6.7.2.8``) supports it."""
    structs = {
        name: _struct_for(spec, getattr(td, spec.class_name, None), label, cat.binding)
        for name, spec in cat.structs.items()
    }
    unavailable: dict[str, str] = {}
    for api, module, cls_name in (
        (cat.td, td, "CThostFtdcTraderApi"),
        (cat.md, md, "CThostFtdcMdApi"),
    ):
        api_cls = getattr(module, cls_name)
        for msg_type in api.requests:
            if not hasattr(api_cls, msg_type):
                unavailable[msg_type] = (
                    f"{msg_type} is not in {label} (the catalogue is from {cat.binding}); "
                    "install a binding version that has it"
                )
    if not unavailable and all(structs[n] is s for n, s in cat.structs.items()):
        return cat
    return dataclasses.replace(cat, structs=structs, unavailable=unavailable)


def summary(adapted: Catalogue) -> tuple[int, int]:
    """(catalogue fields the binding lacks, requests it lacks): for the start-up log line."""
    return sum(len(s.unavailable) for s in adapted.structs.values()), len(adapted.unavailable)
