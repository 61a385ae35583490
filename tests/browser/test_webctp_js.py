"""The browser client /web/webctp.js in headless Chromium against the service's simulator:
the same scenario as the Python client's tests (login, query, typed errors, an order filled,
one cancelled, a rejection, ticks through ``for await``, link loss surfaced)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.schema_check import check_frame, frame_errors

from .test_demo import CHROMIUM_ARGS, base_url, browser  # noqa: F401  (shared fixtures)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

SCENARIO = (Path(__file__).resolve().parent / "webctp_js_scenario.js").read_text("utf-8")


# Records every frame the page's WebSockets send and receive (checked against the schemas).
RECORD_FRAMES = """
window.__frames = { sent: [], received: [] };
const Native = window.WebSocket;
window.WebSocket = class extends Native {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (ev) => window.__frames.received.push(ev.data));
  }
  send(data) { window.__frames.sent.push(data); return super.send(data); }
};
"""


@pytest.fixture
def page(browser: Browser, base_url: str) -> Any:  # noqa: F811
    context = browser.new_context()
    context.add_init_script(RECORD_FRAMES)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.goto(base_url + "/")
    yield p
    context.close()
    assert not errors, errors


def test_webctp_js_against_the_simulator(page: Page) -> None:
    out = page.evaluate(SCENARIO)
    assert out["beforeLogin"] == ["CtpError", -401, True]
    assert out["login"] == ["jsuser", True] and out["state"] == "ready"
    assert out["available"] == 1_000_000 and out["empty"] == []
    assert out["bad"][0] == -400 and "NoSuchField" in out["bad"][1]
    assert out["bad"][2:] == ["RspQryInstrument", "ReqQryInstrument"]
    status, traded, trades, pushed = out["filled"]
    assert (status, traded) == ("0", 2) and trades == pushed >= 1
    assert out["cancelled"] == ["3", False, "5", True]
    assert out["rejected"] == ["OrderRejected", 16, True]
    assert out["tick"] is True and len(out["ticks"]) == 1 and out["subsAfterBreak"] == 0
    assert out["bar"] is True
    assert out["closed"] == "ConnectionLost"
    frames = page.evaluate("window.__frames")
    received = [json.loads(f) for f in frames["received"]]
    sent = [json.loads(f) for f in frames["sent"]]
    assert len(received) > 20 and len(sent) > 10
    for frame in received:
        check_frame(frame)
    bad_rids = {f["RequestID"] for f in sent if frame_errors(f)}
    assert len(bad_rids) == 1  # the query with NoSuchField: answered -400 (asserted above)


def test_webctp_js_is_served_as_a_module(page: Page, base_url: str) -> None:  # noqa: F811
    response = page.request.get(base_url + "/web/webctp.js")
    assert response.ok and "javascript" in response.headers["content-type"]
    assert "export function connectTd" in response.text()
    assert CHROMIUM_ARGS
