"""Regenerate the per-message reference sections of docs/td_protocol.md and docs/md_protocol.md.

The sections between the GENERATED markers come from webctp/protocol/catalogue.json; the text
around them is written by hand. ``python scripts/gen_docs.py --check`` fails when they are stale
(the test suite runs it).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webctp.protocol.catalogue import Api, load  # noqa: E402

BEGIN = "<!-- BEGIN GENERATED: do not edit; run python scripts/gen_docs.py -->"
END = "<!-- END GENERATED -->"
KINDS = {"c": "char", "s": "string", "i": "int", "f": "number"}


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def fields_table(struct: str) -> list[str]:
    spec = load().structs[struct]
    rows = ["| field | type | note |", "|---|---|---|"]
    for f in spec.fields:
        if f.name.startswith("reserve"):
            continue
        kind = KINDS[f.kind] + (f" (≤{f.size})" if f.kind == "s" else "")
        note = "never sent back" if "Password" in f.name else ""
        rows.append(f"| {f.name} | {kind} | {note} |")
    return rows


def reference(api: Api) -> str:
    cat = load()
    spec = cat.api(api)
    out: list[str] = [BEGIN, "", f"Generated from {cat.binding} ({cat.api_version}).", ""]
    out += [
        "### Requests",
        "",
        "| MsgType | payload key | response | lane | description |",
        "|---|---|---|---|---|",
    ]
    for name, req in sorted(spec.requests.items()):
        lane = (
            "query"
            if req.is_query
            else ("direct" if name in ("ReqUserLogin", "ReqUserLogout") else "order")
        )
        rsp = req.response if ("On" + req.response) in spec.callbacks else "—"
        out.append(f"| `{name}` | `{req.payload_key}` | `{rsp}` | {lane} | {_one_line(req.doc)} |")
    out += [
        "",
        "### Responses and pushes",
        "",
        "| MsgType | payload key | kind | description |",
        "|---|---|---|---|",
    ]
    for _, cb in sorted(spec.callbacks.items()):
        kind = {"rsp": "response", "rtn": "push", "errrtn": "push (error)", "event": "link event"}[
            cb.kind
        ]
        out.append(
            f"| `{cb.msg_type}` | `{cb.payload_key or '—'}` | {kind} | "
            f"{_one_line(cb.doc.split(':type')[0])} |"
        )
    used = sorted(
        {r.struct for r in spec.requests.values()}
        | {c.struct for c in spec.callbacks.values() if c.struct}
    )
    out += ["", "### Payload fields", ""]
    for struct in used:
        out += [f"#### {struct}", "", _one_line(cat.structs[struct].doc), ""]
        out += fields_table(struct)
        out.append("")
    out.append(END)
    return "\n".join(out)


def render(path: pathlib.Path, api: Api) -> tuple[str, str]:
    text = path.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return text, head + reference(api) + tail


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="fail if the docs are stale")
    args = parser.parse_args()
    stale = []
    for name, api in (("td_protocol.md", "td"), ("md_protocol.md", "md")):
        path = ROOT / "docs" / name
        old, new = render(path, api)  # type: ignore[arg-type]
        if old != new:
            if args.check:
                stale.append(name)
            else:
                path.write_text(new, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)}; run python scripts/gen_docs.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
