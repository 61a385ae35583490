"""The browser client /web/webctp.js in headless Chromium against the service's simulator:
the same scenario as the Python client's tests (login, query, typed errors, an order filled,
one cancelled, a rejection, ticks through ``for await``, link loss surfaced)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.schema_check import check_frame, frame_errors

from .test_demo import CHROMIUM_ARGS, WAIT_MS, base_url, browser  # noqa: F401  (shared fixtures)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

SCENARIO = (Path(__file__).resolve().parent / "webctp_js_scenario.js").read_text("utf-8")
CLIENT_DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"


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
    contract, ticked = out["alias"]
    assert contract.startswith("rb") and contract != "rb.front" and ticked == contract
    assert out["subsAfterAlias"] == 0
    assert out["bar"] is True
    assert out["closed"] == "ConnectionLost"
    assert out["posted"] == [True, True, None]
    assert out["timeout"] == ["RequestTimeout", True, 500] and out["cancelledAnyway"] == "5"
    assert out["text"] == -400
    again, events, new_session, new_client, delay = out["reconnector"]
    assert again and new_session and new_client and delay == 50
    assert events == "connecting,open,close ConnectionLost,retry later,connecting,open"
    assert out["stopped"] == [None, None, "ConnectionLost", 6]  # nothing after stop()
    frames = page.evaluate("window.__frames")
    received = [json.loads(f) for f in frames["received"]]
    assert frames["sent"].count("{not json") == 1  # sendText: as typed
    sent = [json.loads(f) for f in frames["sent"] if f != "{not json"]
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


def test_reconnector_doc_example_runs(page: Page) -> None:
    """docs/client.md's Reconnector example, as shown (its import made dynamic), in the page:
    it logs in; its socket drops; it says when it reconnects and logs in again."""
    blocks = re.findall(r"```js\n(.*?)```", CLIENT_DOC.read_text("utf-8"), re.S)
    [block] = [b for b in blocks if "new Reconnector(" in b]
    code = re.sub(
        r'^import \{(.*?)\} from "(.*?)";', r'const {\1} = await import("\2");', block, flags=re.M
    )
    logged: list[str] = []
    page.on("console", lambda m: logged.append(m.text))
    login_line = re.compile(r"logged in, session \d+")

    def logged_in(m: Any) -> bool:
        return login_line.fullmatch(m.text) is not None

    with page.expect_console_message(logged_in, timeout=WAIT_MS):
        page.evaluate(f"async () => {{\n{code}\nwindow.__keeper = keeper;\n}}")
    with page.expect_console_message(logged_in, timeout=WAIT_MS):
        page.evaluate("() => window.__keeper.client.ws.close()")
    assert "reconnecting in 1 s" in logged, logged
    sessions = {t for t in logged if login_line.fullmatch(t)}
    assert len(sessions) == 2, logged  # a new CTP session after the reconnect
    page.evaluate("() => window.__keeper.stop()")
