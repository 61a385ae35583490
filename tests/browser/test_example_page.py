"""examples/web/index.html, served from its own origin (a static server on loopback), imports
/web/webctp.js from the service, shows the ticks of a contract and buys at the ask."""

from __future__ import annotations

import functools
import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .test_demo import WAIT_MS, base_url, browser  # noqa: F401  (shared fixtures)

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

PAGE_DIR = Path(__file__).resolve().parents[2] / "examples" / "web"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page_origin() -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(PAGE_DIR))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_example_page_streams_ticks_and_buys(
    browser: Browser,  # noqa: F811
    base_url: str,  # noqa: F811
    page_origin: str,
) -> None:
    with urllib.request.urlopen(base_url + "/api/endpoints", timeout=10) as r:
        ws_base = json.load(r)["td"].removesuffix("/td/")
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{page_origin}/index.html?http={base_url}&ws={ws_base}")
        page.wait_for_function(
            "() => /^rb\\d{4}$/.test(document.getElementById('instrument').textContent)"
            " && Number(document.getElementById('ask').textContent) > 0",
            timeout=WAIT_MS,
        )
        assert page.locator("#status").text_content() in ("logged in", "link: ready")
        page.locator("#buy").click()
        page.wait_for_function(
            "() => /^bought 1 rb\\d{4} @ [\\d.]+$/.test("
            "document.querySelector('#fills li')?.textContent || '')",
            timeout=WAIT_MS,
        )
    finally:
        context.close()
    assert not errors, errors
