"""End-to-end test of the web demo in a real headless Chromium (Debian's package).

Starts ``python -m webctp`` on the embedded simulator with a temporary database, opens the
page the service serves, and drives it like a trader: log in, subscribe, watch ticks, buy,
see the trade and the position, rest an order and cancel it, provoke errors and check they
are shown in words, close today's lots (SHFE rule), take a screenshot, log out.

Every wait is on a DOM condition with a timeout; there are no fixed sleeps.

Needs: ``pip install playwright`` (the Python package only; never ``playwright install``) and
``apt-get install chromium``. The screenshot goes to ``artifacts/`` (or $WEBCTP_ARTIFACTS).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page, Request

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("WEBCTP_ARTIFACTS", REPO / "artifacts"))
CHROMIUM = os.environ.get("WEBCTP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LISTENING = re.compile(r"event=listening service=(http|ws)\b.*?\bport=(\d+)")
START_TIMEOUT_S = 30.0
WAIT_MS = 20_000


def _missing(what: str) -> NoReturn:
    """Never skip: the browser session exists to run this test (`nox -s browser` installs
    Debian's chromium when it runs as root; otherwise install it yourself)."""
    pytest.fail(f"browser test prerequisite missing: {what} (apt-get install chromium)")


class Service:
    """``python -m webctp`` on the simulator, on free ports read from its log lines."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log_lines: list[str] = []
        self.ports: dict[str, int] = {}
        self._ready = threading.Event()
        config = workdir / "config.toml"
        # TOML basic strings: escape backslashes so Windows-style paths would survive too.
        db = str(workdir / "sim.sqlite3").replace("\\", "\\\\")
        flow = str(workdir / "flow").replace("\\", "\\\\")
        config.write_text(
            f'[ctp]\nbackend = "sim"\nflow_dir = "{flow}"\n\n[sim]\ndb_path = "{db}"\nseed = 7\n',
            encoding="utf-8",
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "webctp",
                "--config",
                str(config),
                "--port",
                "0",
                "--ws-port",
                "0",
            ],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._reader = threading.Thread(target=self._read, name="webctp-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log_lines.append(line.rstrip("\n"))
            m = LISTENING.search(line)
            if m:
                self.ports[m.group(1)] = int(m.group(2))
                if {"http", "ws"} <= self.ports.keys():
                    self._ready.set()
        self._ready.set()  # the process ended: stop waiting

    def wait_ready(self) -> str:
        if not self._ready.wait(START_TIMEOUT_S) or not {"http", "ws"} <= self.ports.keys():
            self.stop()
            tail = "\n".join(self.log_lines[-30:])
            pytest.fail(f"webctp did not report its ports within {START_TIMEOUT_S} s:\n{tail}")
        return f"http://127.0.0.1:{self.ports['http']}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "demo-service.log").write_text(
            "\n".join(self.log_lines) + "\n", encoding="utf-8"
        )


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    service = Service(tmp_path_factory.mktemp("webctp-demo"))
    try:
        yield service.wait_ready()
    finally:
        service.stop()


@pytest.fixture()
def page(base_url: str) -> Iterator[Page]:
    """A 1280x800 Chromium page on the demo; fails on JavaScript errors or outside requests."""
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        _missing(f"{CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright Python package (pip install playwright)")

    errors: list[str] = []
    outside: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(f"console.error: {msg.text}")

    def on_request(req: Request) -> None:
        # Nothing outside the service may be fetched (no CDN, no external network).
        if not req.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:")):
            outside.append(req.url)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            pg = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            pg.set_default_timeout(WAIT_MS)
            pg.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            pg.on("console", on_console)
            pg.on("request", on_request)
            pg.goto(base_url + "/")
            yield pg
            # The page as the test left it (after a failure: where it stopped).
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(ARTIFACTS / "demo-last.png"))
            assert not outside, f"the page fetched from outside the service: {outside}"
            assert not errors, "JavaScript errors on the page:\n" + "\n".join(errors)
        finally:
            browser.close()


def test_demo_end_to_end(page: Page) -> None:
    from playwright.sync_api import expect

    started = time.monotonic()

    # --- the page found its endpoints and offers the simulator's login hint
    expect(page.get_by_test_id("login-hint")).to_contain_text("Simulator")
    expect(page.get_by_test_id("td-state")).to_have_attribute("data-state", "offline")

    # --- log in (a fresh account in the temporary simulator database)
    page.get_by_test_id("login-user").fill("webdemo")
    page.get_by_test_id("login-password").fill("secret1")
    page.get_by_test_id("login-button").click()
    expect(page.get_by_test_id("td-state")).to_have_attribute("data-state", "ready")
    expect(page.get_by_test_id("md-state")).to_have_attribute("data-state", "ready")
    expect(page.get_by_test_id("session-info")).to_contain_text("webdemo")
    expect(page.get_by_test_id("logout-button")).to_be_visible()

    # --- account from the initial query, instrument list loaded
    expect(page.get_by_test_id("account-balance")).to_have_text(re.compile(r"^[\d,]+\.\d\d$"))
    expect(page.locator("#instrument-options option").first).to_be_attached()

    # --- pick the nearest SHFE rebar contract from the instrument list (close-today applies)
    ids: list[str] = page.eval_on_selector_all(
        "#instrument-options option", "opts => opts.map(o => o.value)"
    )
    rebar = sorted(i for i in ids if re.fullmatch(r"rb\d{4}", i))
    assert rebar, f"no rb contract in the instrument list: {ids[:20]}"
    inst = rebar[0]

    # the instrument search finds it
    page.get_by_test_id("tab-instruments").click()
    page.get_by_test_id("inst-search").fill(inst)
    expect(page.locator(f'[data-testid=instrument-row][data-instrument="{inst}"]')).to_be_visible()
    page.get_by_test_id("tab-positions").click()

    # --- subscribe and see ticks change
    page.get_by_test_id("sub-input").fill(inst)
    page.get_by_test_id("sub-button").click()
    row = page.locator(f'[data-testid=quote-row][data-instrument="{inst}"]')
    expect(row).to_have_attribute("data-subscribed", "true")
    expect(row).to_have_attribute("data-time", re.compile(r"\d\d:\d\d:\d\d\.\d{3}"))
    first_time = row.get_attribute("data-time")
    expect(row).not_to_have_attribute("data-time", first_time or "")
    expect(row.locator("[data-field=last]")).to_have_text(re.compile(r"^\d+(\.\d+)?$"))

    # the chart of the selected instrument draws the ticks
    page.wait_for_function(
        "id => { const c = document.getElementById('chart');"
        " return c.dataset.instrument === id && Number(c.dataset.points) >= 2; }",
        arg=inst,
        timeout=WAIT_MS,
    )

    # --- click the ask to fill the ticket: buy at the ask
    row.locator("[data-field=ask]").click()
    expect(page.get_by_test_id("ticket-instrument")).to_have_value(inst)
    expect(page.get_by_test_id("ticket-buy")).to_be_checked()
    expect(page.get_by_test_id("ticket-exchange")).to_contain_text("SHFE")
    expect(page.get_by_test_id("ticket-closetoday")).to_be_attached()
    expect(page.locator("#ticket-closetoday-item")).to_be_visible()
    limits = page.get_by_test_id("ticket-limits")
    expect(limits).to_have_attribute("data-upper", re.compile(r"^\d"))
    tick = float(limits.get_attribute("data-tick") or "0")
    upper = float(limits.get_attribute("data-upper") or "0")
    lower = float(limits.get_attribute("data-lower") or "0")
    assert tick > 0 and lower < upper

    # price steps by the tick and stays within the limits
    price = page.get_by_test_id("ticket-price")
    before = float(price.input_value())
    page.get_by_test_id("ticket-price-up").click()
    assert abs(float(price.input_value()) - (before + tick)) < tick / 10
    price.fill(f"{upper:g}")
    page.get_by_test_id("ticket-price-up").click()
    assert float(price.input_value()) == pytest.approx(upper)

    # --- a marketable limit order (buy 2 at the upper limit fills at the ask)
    page.get_by_test_id("ticket-volume").fill("2")
    expect(page.get_by_test_id("ticket-submit")).to_have_text("Buy open")
    page.get_by_test_id("ticket-submit").click()
    filled = page.locator(f'[data-testid=order-row][data-instrument="{inst}"][data-status="0"]')
    expect(filled).to_have_count(1)
    expect(filled.locator("[data-field=status]")).to_have_text("Filled")

    # the position: long 2, all of it today's, live P/L shown
    pos = page.locator(
        f'[data-testid=position-row][data-instrument="{inst}"][data-direction="long"]'
    )
    expect(pos).to_have_attribute("data-position", "2")
    expect(pos.locator("[data-field=today]")).to_have_text("2")
    expect(pos.locator("[data-field=yesterday]")).to_have_text("0")
    expect(pos.locator("[data-field=pnl]")).to_have_text(re.compile(r"^-?[\d,]+\.\d\d$"))
    expect(page.get_by_test_id("account-margin")).not_to_have_text(re.compile(r"^(—|0\.00)$"))
    expect(page.get_by_test_id("account-live-pnl")).to_have_text(re.compile(r"^-?[\d,]+\.\d\d$"))

    # the trade
    page.get_by_test_id("tab-trades").click()
    trade = page.locator(f'[data-testid=trade-row][data-instrument="{inst}"]')
    expect(trade.first).to_be_visible()
    expect(trade.first.locator("[data-field=volume]")).to_have_text(re.compile(r"^[12]$"))
    page.get_by_test_id("tab-orders").click()

    # --- a resting order far from the market, then cancel it
    price.fill(f"{lower:g}")
    page.get_by_test_id("ticket-volume").fill("1")
    page.get_by_test_id("ticket-submit").click()
    resting = page.locator(f'[data-testid=order-row][data-instrument="{inst}"][data-status="3"]')
    expect(resting).to_have_count(1)
    expect(resting.locator("[data-field=status]")).to_have_text("Queueing")
    resting.get_by_test_id("cancel-order").click()
    expect(resting).to_have_count(0)
    cancelled = page.locator(f'[data-testid=order-row][data-instrument="{inst}"][data-status="5"]')
    expect(cancelled).to_have_count(1)
    expect(cancelled.locator("[data-field=status]")).to_have_text("Cancelled")
    expect(cancelled.get_by_test_id("cancel-order")).to_have_count(0)

    # --- a bad action: close more than is held; the broker's rejection is shown in words
    page.locator("label.seg-item.sell").click()
    expect(page.get_by_test_id("ticket-sell")).to_be_checked()
    page.locator("#ticket-closetoday-item").click()
    expect(page.get_by_test_id("ticket-closetoday")).to_be_checked()
    expect(page.get_by_test_id("ticket-submit")).to_have_text("Sell close today")
    page.get_by_test_id("ticket-volume").fill("50")
    page.get_by_test_id("ticket-submit").click()
    rejection = page.locator("[data-testid=toast][data-kind=error]", has_text="Order rejected")
    expect(rejection.first).to_be_visible()
    expect(rejection.first).to_contain_text("ErrorID")

    # a local mistake is explained too, and nothing is sent
    price.fill(f"{upper + 100 * tick:g}")
    page.get_by_test_id("ticket-volume").fill("1")
    page.get_by_test_id("ticket-submit").click()
    expect(
        page.locator("[data-testid=toast][data-kind=error]", has_text="above the upper limit").first
    ).to_be_visible()

    # gateway error frames (-404 unknown MsgType, -400 bad JSON) are shown in words
    page.get_by_test_id("tab-console").click()
    page.get_by_test_id("console-input").fill('{"MsgType": "ReqNoSuchThing", "RequestID": 901}')
    page.get_by_test_id("console-send").click()
    expect(
        page.locator("[data-testid=toast][data-kind=error]", has_text="unknown message type").first
    ).to_be_visible()
    page.get_by_test_id("console-input").fill("{not json")
    page.get_by_test_id("console-send").click()
    expect(
        page.locator("[data-testid=toast][data-kind=error]", has_text="bad request").first
    ).to_be_visible()
    page.get_by_test_id("tab-positions").click()

    # --- close one of today's lots with CloseToday (SHFE), at the lower limit so it fills
    price.fill(f"{lower:g}")
    page.get_by_test_id("ticket-submit").click()
    expect(pos).to_have_attribute("data-position", "1")
    expect(pos.locator("[data-field=today]")).to_have_text("1")
    expect(page.get_by_test_id("trades-count")).to_have_text(re.compile(r"^([2-9]|\d{2,})$"))

    # --- screenshot of the page in use, once the re-queries after the last trade are answered
    expect(page.get_by_test_id("query-status")).to_have_attribute("data-pending", "0")
    close_buttons = page.locator("[data-testid=toast] .close")
    for _ in range(20):
        if close_buttons.count() == 0:
            break
        close_buttons.last.click()
    row.click()  # select the quote again so the chart shows it
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo.png"))

    # --- log out
    page.get_by_test_id("logout-button").click()
    expect(page.get_by_test_id("td-state")).to_have_attribute("data-state", "offline")
    expect(page.get_by_test_id("md-state")).to_have_attribute("data-state", "offline")
    expect(page.get_by_test_id("login-button")).to_be_visible()
    expect(page.locator("[data-testid=order-row]")).to_have_count(0)

    assert time.monotonic() - started < 100
