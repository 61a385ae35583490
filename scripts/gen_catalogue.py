"""Generate ``webctp/protocol/catalogue.json`` from the openctp-ctp binding.

The catalogue is the single source of truth for message names, payload keys, struct field
lists (name, kind, capacity, C typedef) and THOST_FTDC_* constants. It is committed so that
the service, the simulator and offline use never import the binding.

Run (needs the zh_CN.GB18030 locale, see docs/real_ctp.md)::

    python scripts/gen_catalogue.py [--out webctp/protocol/catalogue.json]
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import json
import pathlib
import sys
from typing import Any

PREFIX, SUFFIX = "CThostFtdc", "Field"


def short(struct_class: str) -> str:
    assert struct_class.startswith(PREFIX) and struct_class.endswith(SUFFIX), struct_class
    return struct_class[len(PREFIX) : -len(SUFFIX)]


def probe_kind(cls: type, field: str) -> tuple[str, int]:
    """Find a field's Python kind and capacity by exercising the binding's setter."""
    obj = cls()
    try:
        setattr(obj, field, 1.5)
        return "f", 0
    except TypeError:
        pass
    try:
        setattr(obj, field, 7)
        if isinstance(getattr(obj, field), int):
            return "i", 0
        # an int 0-127 is accepted as a character code by single-char fields
        return "c", 1
    except (TypeError, OverflowError):
        pass
    size = 0
    for n in range(1, 4200):
        try:
            setattr(obj, field, "x" * n)
        except TypeError:
            break
        size = n
    return "s", size


def parse_methods(source: str, class_name: str) -> dict[str, list[tuple[str, str]]]:
    """Return {method: [(param, annotation), ...]} for a SWIG proxy class."""
    tree = ast.parse(source)
    out: dict[str, list[tuple[str, str]]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    params = []
                    for arg in item.args.args[1:]:
                        ann = arg.annotation
                        text = ann.value if isinstance(ann, ast.Constant) else ""
                        params.append((arg.arg, str(text)))
                    doc = ast.get_docstring(item) or ""
                    out[item.name] = params
                    out[item.name + "#doc"] = [("doc", doc)]
    return out


def api_section(module: Any, api_class: str, spi_class: str) -> dict[str, Any]:
    source = pathlib.Path(module.__file__).read_text(encoding="utf-8")
    api = parse_methods(source, api_class)
    spi = parse_methods(source, spi_class)
    requests: dict[str, Any] = {}
    methods: dict[str, Any] = {}
    for name, params in api.items():
        if name.endswith("#doc") or name.startswith("_"):
            continue
        doc = api[name + "#doc"][0][1]
        if name.startswith("Req"):
            (_, ann), (_, rid) = params
            assert rid == "int", (name, params)
            requests[name] = {"struct": short(ann), "doc": doc}
        else:
            methods[name] = {"params": [[p, a] for p, a in params], "doc": doc}
    callbacks: dict[str, Any] = {}
    for name, params in spi.items():
        if name.endswith("#doc") or not name.startswith("On"):
            continue
        doc = spi[name + "#doc"][0][1]
        struct = None
        kinds = []
        for pname, ann in params:
            if ann.startswith(PREFIX) and pname != "pRspInfo":
                struct = short(ann)
            kinds.append(pname)
        callbacks[name] = {
            "struct": struct,
            "params": kinds,
            "doc": doc,
        }
    return {"requests": requests, "callbacks": callbacks, "methods": methods}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out",
        default=str(
            pathlib.Path(__file__).resolve().parent.parent / "webctp/protocol/catalogue.json"
        ),
    )
    args = parser.parse_args()
    from openctp_ctp import mdapi, tdapi  # needs the locale: see the module docstring

    structs: dict[str, Any] = {}
    kind_cache: dict[str, tuple[str, int]] = {}
    for name in sorted(vars(tdapi)):
        cls = getattr(tdapi, name)
        if not (isinstance(cls, type) and name.startswith(PREFIX) and name.endswith(SUFFIX)):
            continue
        fields = []
        for field, typedef in cls.__annotations__.items():
            if typedef not in kind_cache:
                kind_cache[typedef] = probe_kind(cls, field)
            kind, size = kind_cache[typedef]
            fields.append([field, kind, size, typedef])
        structs[short(name)] = {"fields": fields, "doc": (cls.__doc__ or "").strip()}
    constants = {
        k: v for k, v in sorted(vars(tdapi).items()) if k.startswith(("THOST_FTDC_", "THOST_TE"))
    }
    catalogue = {
        "generator": "scripts/gen_catalogue.py",
        "binding": "openctp-ctp " + importlib.metadata.version("openctp-ctp"),
        "api_version": tdapi.CThostFtdcTraderApi.GetApiVersion(),
        "td": api_section(tdapi, "CThostFtdcTraderApi", "CThostFtdcTraderSpi"),
        "md": api_section(mdapi, "CThostFtdcMdApi", "CThostFtdcMdSpi"),
        "structs": structs,
        "constants": constants,
    }
    text = json.dumps(catalogue, ensure_ascii=False, indent=1, sort_keys=False)
    pathlib.Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(
        f"wrote {args.out}: {len(structs)} structs, "
        f"{len(catalogue['td']['requests'])} td requests, "
        f"{len(catalogue['td']['callbacks'])} td callbacks, {len(constants)} constants",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
