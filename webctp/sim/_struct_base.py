"""The base of every generated ``CThostFtdc*Field`` class: the binding's setter rules, fast reads.

The binding's structs are SWIG proxies; the rules a caller can observe are (ctp-domain.md §19):

- fields read back as ``''`` / ``0`` / ``0.0`` by default;
- ``char`` fields take a str of at most one byte or an int character code;
- ``char[N]`` fields take a str (``None`` reads back as ``''``) whose UTF-8 encoding fits in
  N-1 bytes; longer → TypeError, never silent truncation; text after a NUL is lost;
- int fields take int/bool only (float, str → TypeError; outside int32 → OverflowError);
- double fields take int/float only;
- ``cls.__annotations__`` maps field → C typedef name in declaration order;
- instances have a ``__dict__``: a misspelt attribute is accepted and has no effect.

Reads must stay plain slot loads (the tick path reads 48 fields per tick per consumer), so the
checks live in ``__setattr__`` and the simulator builds its own structs with ``_sim_make``,
which skips them (the simulator only writes values it has already made valid).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

_T = TypeVar("_T", bound="Struct")
_osa = object.__setattr__
_DEFAULTS = {"c": "", "s": "", "i": 0, "f": 0.0}

Setter = Callable[[Any], Any]
"""Converts an assigned value to the stored one, or raises ``_Reject``."""


class _Reject(Exception):
    """Internal: the value is not acceptable; carries the exception type to raise."""

    def __init__(self, exc_type: type[Exception]) -> None:
        super().__init__()
        self.exc_type = exc_type


def _set_char(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        if value == "" or value == "\x00":
            return ""
        if len(value) == 1 and value.isascii():
            return value
        raise _Reject(TypeError)
    if isinstance(value, int):  # bool included, as in SWIG
        v = int(value)
        if v == 0:
            return ""
        if 0 < v <= 127:
            return chr(v)
        if -128 <= v < 0:  # the binding's C char is signed: reads back as a lone surrogate
            return chr(0xDC00 + (v & 0xFF))
        raise _Reject(OverflowError)
    raise _Reject(TypeError)


def _string_setter(size: int) -> Setter:
    def set_string(value: Any) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise _Reject(TypeError)
        if "\x00" in value:
            value = value.split("\x00", 1)[0]
        n = len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
        if n > size:
            raise _Reject(TypeError)
        text: str = value
        return text

    return set_string


def _set_int(value: Any) -> int:
    if isinstance(value, int):
        v = int(value)
        if INT32_MIN <= v <= INT32_MAX:
            return v
        raise _Reject(OverflowError)
    raise _Reject(TypeError)


def _set_float(value: Any) -> float:
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            raise _Reject(OverflowError) from None
    raise _Reject(TypeError)


def _setter(kind: str, size: int) -> Setter:
    if kind == "c":
        return _set_char
    if kind == "s":
        return _string_setter(size)
    if kind == "i":
        return _set_int
    return _set_float


class Struct:
    """Common behaviour of the generated struct classes (see the module docstring)."""

    __slots__ = ("__dict__",)

    _sim_fields: ClassVar[tuple[str, ...]] = ()
    _sim_kinds: ClassVar[dict[str, tuple[str, int, str]]] = {}
    _sim_setters: ClassVar[dict[str, Setter]] = {}
    _sim_init: ClassVar[tuple[tuple[Callable[[Any, Any], None], Any], ...]] = ()
    _sim_get: ClassVar[tuple[tuple[str, Callable[[Any, Any], Any]], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        typedefs: dict[str, tuple[str, int]] = vars(sys.modules[cls.__module__])["TYPEDEFS"]
        annotations: dict[str, str] = dict(inspect.get_annotations(cls))
        fields = tuple(annotations)
        kinds: dict[str, tuple[str, int, str]] = {}
        setters: dict[str, Setter] = {}
        init: list[tuple[Callable[[Any, Any], None], Any]] = []
        getters: list[tuple[str, Callable[[Any, Any], Any]]] = []
        for name, typedef in annotations.items():
            kind, size = typedefs[typedef]
            kinds[name] = (kind, size, typedef)
            setters[name] = _setter(kind, size)
            descriptor = cls.__dict__[name]
            init.append((descriptor.__set__, _DEFAULTS[kind]))
            getters.append((name, descriptor.__get__))
        cls._sim_fields = fields
        cls._sim_kinds = kinds
        cls._sim_setters = setters
        cls._sim_init = tuple(init)
        cls._sim_get = tuple(getters)

    def __init__(self) -> None:
        for set_, default in self._sim_init:
            set_(self, default)

    def __setattr__(self, name: str, value: Any) -> None:
        setter = self._sim_setters.get(name)
        if setter is None:
            _osa(self, name, value)  # like the binding: unknown names land in __dict__
            return
        try:
            stored = setter(value)
        except _Reject as rej:
            kind, size, typedef = self._sim_kinds[name]
            ctype = f"char [{size + 1}]" if kind == "s" else typedef
            raise rej.exc_type(
                f"in method '{type(self).__name__}_{name}_set', argument 2 of type '{ctype}'"
            ) from None
        _osa(self, name, stored)

    @classmethod
    def _sim_make(cls: type[_T], **values: Any) -> _T:
        """Build a struct without setter checks (the simulator's own, already valid, values)."""
        obj = cls.__new__(cls)
        for set_, default in cls._sim_init:
            set_(obj, default)
        for name, value in values.items():
            _osa(obj, name, value)
        return obj

    @classmethod
    def _sim_maker(cls: type[_T], names: tuple[str, ...]) -> Callable[..., _T]:
        """A builder for the simulator's hot paths (the tick): ``make(*values)`` with the values
        in ``names`` order, every other field at its default. No setter checks (as
        ``_sim_make``) and no keyword dict: about a third of ``_sim_make``'s cost."""
        by_name = dict(zip(cls._sim_fields, cls._sim_init))
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise AttributeError(f"{cls.__name__} has no field(s) {unknown}")
        sets = tuple(by_name[n][0] for n in names)
        rest = tuple(init for name, init in by_name.items() if name not in names)
        new = cls.__new__

        def make(*values: Any) -> _T:
            obj = new(cls)
            for set_, default in rest:
                set_(obj, default)
            for set_, value in zip(sets, values):
                set_(obj, value)
            return obj

        return make

    def _sim_copy(self: _T) -> _T:
        """An independent copy (requests are copied at call time, as the binding serialises)."""
        cls = type(self)
        obj = cls.__new__(cls)
        for name, get in cls._sim_get:
            _osa(obj, name, get(self, cls))
        return obj

    def _sim_dict(self) -> dict[str, Any]:
        """Field name → value, in declaration order."""
        cls = type(self)
        return {name: get(self, cls) for name, get in cls._sim_get}

    def __repr__(self) -> str:
        cls = type(self)
        parts = []
        for name, get in cls._sim_get:
            value = get(self, cls)
            if value != _DEFAULTS[cls._sim_kinds[name][0]]:
                parts.append(f"{name}={value!r}")
        return f"{cls.__name__}({', '.join(parts)})"
