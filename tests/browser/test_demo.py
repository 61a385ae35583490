"""End-to-end tests of the web demo in a real headless Chromium (Debian's package).

Starts ``python -m webctp`` on the embedded simulator with a temporary database, opens the
page the service serves at desktop (1440x900) and phone (390x844) sizes, and drives it like a
trader: log in, subscribe, read the quote board, depth and candles, trade from the depth and the
ticket, modify, cancel all, close and reverse positions, and checks the order-safety rules
(one order per action, Enter never sends, confirm setting, ticket reset on instrument change,
rejected orders kept with their reason), stale marks and the retry countdown while a link is
down, the zh/en switch, and accessibility with axe-core (serious or critical violations fail).

Every wait is on a DOM condition with a timeout; there are no fixed sleeps.

Needs: ``pip install playwright`` (the Python package only; never ``playwright install``) and
``apt-get install chromium``. Screenshots go to ``artifacts/`` (or $WEBCTP_ARTIFACTS).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from tests.processes import listening, service_command

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Locator, Request

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
START_TIMEOUT_S = 30.0
WAIT_MS = 20_000
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")


# Keeps every frame the page's WebSockets receive, as received (window.__received).
RECORD_RECEIVED = """
window.__received = [];
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (ev) => window.__received.push(ev.data));
  }
};
"""


def _missing(what: str) -> NoReturn:
    """Never skip: the browser session exists to run this test (`nox -s browser` installs
    Debian's chromium when it runs as root; otherwise install it yourself)."""
    pytest.fail(f"browser test prerequisite missing: {what} (apt-get install chromium)")


class Service:
    """``python -m webctp`` on the simulator, on free ports read from its log lines."""

    def __init__(self, workdir: Path, http_port: int = 0, ws_port: int = 0) -> None:
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
            service_command(config, port=http_port, ws_port=ws_port),
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
            if found := listening(line):
                self.ports[found[0]] = found[1]
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
        with (ARTIFACTS / "demo-service.log").open("a", encoding="utf-8") as f:
            f.write("\n".join(self.log_lines) + "\n")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    service = Service(tmp_path_factory.mktemp("webctp-demo"))
    try:
        yield service.wait_ready()
    finally:
        service.stop()


def seconds_of(hms: str) -> int:
    """Seconds since midnight of ``HH:MM:SS``."""
    return int(hms[:2]) * 3600 + int(hms[3:5]) * 60 + int(hms[6:8])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        _missing(f"{CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright Python package (pip install playwright)")
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Demo:
    """One browser page on the demo; fails the test on JavaScript errors or outside requests."""

    def __init__(self, browser: Browser, base_url: str, viewport: dict[str, int], name: str):
        self.name = name
        self.base_url = base_url
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.context = browser.new_context(viewport=viewport)  # type: ignore[arg-type, unused-ignore]
        self.context.add_init_script(RECORD_RECEIVED)
        self.page = pg = self.context.new_page()
        pg.set_default_timeout(WAIT_MS)
        pg.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        pg.on("console", self._console)
        pg.on("request", self._request)
        pg.goto(base_url + "/")

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.errors.append(f"console.error: {msg.text}")

    def _request(self, req: Request) -> None:
        # Nothing outside the service may be fetched (no CDN, no fonts, no external network).
        if not req.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:")):
            self.outside.append(req.url)

    def tid(self, test_id: str) -> Locator:
        return self.page.get_by_test_id(test_id)

    def shot(self, what: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"demo-{self.name}-{what}.png"))

    def finish(self) -> None:
        self.shot("last")
        self.context.close()
        assert not self.outside, f"the page fetched from outside the service: {self.outside}"
        assert not self.errors, "JavaScript errors on the page:\n" + "\n".join(self.errors)

    # ------------------------------------------------------------------ steps
    def login(self, user: str, password: str) -> None:
        from playwright.sync_api import expect

        expect(self.tid("login-hint")).to_contain_text("Simulator")
        expect(self.tid("login-password")).to_have_value("")  # never prefilled
        self.tid("login-user").fill(user)
        self.tid("login-password").fill(password)
        self.tid("login-button").click()
        expect(self.tid("td-state")).to_have_attribute("data-state", "ready")
        expect(self.tid("md-state")).to_have_attribute("data-state", "ready")
        expect(self.tid("session-info")).to_contain_text(user)
        expect(self.tid("account-balance")).to_have_text(re.compile(r"^[\d,]+\.\d\d$"))
        expect(self.page.locator("#instrument-options option").first).to_be_attached()

    def nearest(self, product: str) -> str:
        ids: list[str] = self.page.eval_on_selector_all(
            "#instrument-options option", "opts => opts.map(o => o.value)"
        )
        found = sorted(i for i in ids if re.fullmatch(rf"{product}\d{{4}}", i))
        assert found, f"no {product} contract in the instrument list: {ids[:20]}"
        return found[0]

    def subscribe(self, inst: str) -> Locator:
        from playwright.sync_api import expect

        self.tid("sub-input").fill(inst)
        self.tid("sub-button").click()
        row = self.quote(inst)
        expect(row).to_have_attribute("data-subscribed", "true")
        expect(row).to_have_attribute("data-time", re.compile(r"\d\d:\d\d:\d\d\.\d{3}"))
        return row

    def next_ticks(self, row: Locator, n: int = 1) -> None:
        """Wait until the quote row has shown ``n`` more ticks (its update time changed)."""
        from playwright.sync_api import expect

        for _ in range(n):
            seen = row.get_attribute("data-time") or ""
            expect(row).not_to_have_attribute("data-time", seen)

    def quote(self, inst: str) -> Locator:
        return self.page.locator(f'[data-testid=quote-row][data-instrument="{inst}"]')

    def orders(self, inst: str, status: str | None = None) -> Locator:
        sel = f'[data-testid=order-row][data-instrument="{inst}"]'
        if status is not None:
            sel += f'[data-status="{status}"]'
        return self.page.locator(sel)

    def position(self, inst: str, direction: str) -> Locator:
        return self.page.locator(
            f'[data-testid=position-row][data-instrument="{inst}"][data-direction="{direction}"]'
        )

    def chart_ready(self, inst: str, period: str, min_bars: int) -> None:
        self.page.wait_for_function(
            "([id, p, n]) => { const c = document.getElementById('chart');"
            " return c.dataset.instrument === id && c.dataset.period === p"
            " && Number(c.dataset.bars) >= n; }",
            arg=[inst, period, min_bars],
            timeout=WAIT_MS,
        )

    def limits(self) -> tuple[float, float, float]:
        from playwright.sync_api import expect

        node = self.tid("ticket-limits")
        expect(node).to_have_attribute("data-upper", re.compile(r"^\d"))
        return (
            float(node.get_attribute("data-lower") or "0"),
            float(node.get_attribute("data-upper") or "0"),
            float(node.get_attribute("data-tick") or "0"),
        )

    def click_depth(self, side: str, level: int) -> float:
        """Click a depth price; the price it showed when clicked. The depth's prices change on
        every tick, so a price read first and clicked after may be another one by then: the
        click and the read are one step in the page."""
        price: float = self.page.locator(
            f"[data-testid=depth-price][data-side={side}][data-level='{level}']"
        ).evaluate("(b) => { const p = Number(b.dataset.price); b.click(); return p; }")
        return price

    def settle_queries(self) -> None:
        from playwright.sync_api import expect

        expect(self.tid("query-status")).to_have_attribute("data-pending", "0")

    def axe(self, where: str) -> None:
        """axe-core on the whole page: serious and critical violations fail the test."""
        if not self.page.evaluate("() => typeof window.axe === 'object'"):
            self.page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
        result: list[dict[str, Any]] = self.page.evaluate(
            """async () => {
              const r = await axe.run(document, { resultTypes: ["violations"] });
              return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
                .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                  nodes: v.nodes.slice(0, 5)
                    .map((n) => n.target.join(" ") + " :: " + n.failureSummary) }));
            }"""
        )
        assert not result, f"axe ({self.name}, {where}):\n" + "\n".join(
            f"{v['impact']} {v['id']}: {v['help']}\n  " + "\n  ".join(v["nodes"]) for v in result
        )

    def received(self, msg_type: str) -> list[dict[str, Any]]:
        """Frames of this MsgType the page received, parsed."""
        frames: list[dict[str, Any]] = self.page.evaluate(
            "(t) => window.__received.map((f) => JSON.parse(f)).filter((f) => f.MsgType === t)",
            msg_type,
        )
        return frames

    def dismiss_toasts(self) -> None:
        """Press every message's close button (messages also expire and get replaced, so a
        locator-by-locator click could chase a vanished one)."""
        self.page.evaluate(
            "() => document.querySelectorAll('[data-testid=toast] .close').forEach(b => b.click())"
        )


@pytest.fixture()
def desktop(browser: Browser, base_url: str) -> Iterator[Demo]:
    demo = Demo(browser, base_url, DESKTOP, "desktop")
    yield demo
    demo.finish()


@pytest.fixture()
def phone(browser: Browser, base_url: str) -> Iterator[Demo]:
    demo = Demo(browser, base_url, PHONE, "phone")
    yield demo
    demo.finish()


def test_desktop_terminal(desktop: Demo) -> None:
    from playwright.sync_api import expect

    d = desktop
    page = d.page
    started = time.monotonic()
    expect(d.tid("td-state")).to_have_attribute("data-state", "offline")
    d.axe("login form")
    d.login("webdemo", "secret1")

    rb = d.nearest("rb")  # SHFE: close-today rules, no market orders
    cu = d.nearest("cu")
    page.get_by_test_id("tab-instruments").click()
    d.tid("inst-search").fill(rb)
    expect(page.locator(f'[data-testid=instrument-row][data-instrument="{rb}"]')).to_be_visible()
    d.tid("tab-positions").click()

    # --- quote board: the columns traders expect
    row = d.subscribe(rb)
    d.subscribe(cu)
    for field in ("last", "open", "high", "low", "upper", "lower", "presettle", "volume", "oi"):
        expect(row.locator(f"[data-field={field}]")).to_have_text(NUMBER)
    d.next_ticks(row)

    # --- keyboard: a quote row is one tab stop; Enter selects it (chart, depth, ticket)
    row.focus()
    page.keyboard.press("Enter")
    expect(row).to_have_attribute("aria-current", "true")
    expect(d.tid("ticket-instrument")).to_have_value(rb)
    expect(d.tid("chart-instrument")).to_have_text(rb)

    # --- candles with history from GetBars, timeframes, text alternative
    d.chart_ready(rb, "1m", 20)  # the simulator's generated earlier minutes
    chart = d.tid("chart")
    expect(chart).to_have_attribute("aria-describedby", "chart-summary")  # text alternative
    expect(d.tid("chart-summary")).to_have_text(re.compile(rf"{rb} 1m candles: \d+ bars"))
    expect(d.tid("chart-legend")).to_contain_text(" O ")
    page.locator("#chart-periods [data-period='1d']").click()
    d.chart_ready(rb, "1d", 100)  # earlier trading days
    page.locator("#chart-periods [data-period='1d']").focus()
    page.keyboard.press("ArrowLeft")  # arrow keys move between timeframes
    d.chart_ready(rb, "1h", 1)
    expect(page.locator("#chart-periods [data-period='1h']")).to_be_focused()
    page.locator("#chart-periods [data-period='5m']").click()
    d.chart_ready(rb, "5m", 5)
    box = chart.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # crosshair
    expect(d.tid("chart-legend")).to_contain_text(re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d O "))
    page.locator("#chart-periods [data-period='1m']").click()
    d.chart_ready(rb, "1m", 20)

    # --- depth: five levels a side; a click loads the level into the ticket
    expect(page.locator("[data-testid=depth-row]")).to_have_count(10)
    ask2_price = d.click_depth("ask", 2)
    expect(d.tid("ticket-buy")).to_be_checked()
    assert float(d.tid("ticket-price").input_value()) == pytest.approx(ask2_price)
    bid1 = page.locator("[data-testid=depth-price][data-side=bid][data-level='1']")
    bid1.click()
    expect(d.tid("ticket-sell")).to_be_checked()
    # a depth price keeps the keyboard focus while ticks arrive: the rows change in place
    bid1.focus()
    held = bid1.element_handle()
    d.next_ticks(row, 2)
    assert held.evaluate("(b) => b.isConnected && document.activeElement === b")
    expect(bid1).to_be_focused()

    lower, upper, tick = d.limits()
    assert tick > 0 and lower < upper
    price = d.tid("ticket-price")
    submit = d.tid("ticket-submit")

    # --- the ticket resets to safe defaults when the instrument changes
    page.locator("#ticket-closetoday-item").click()
    d.tid("ticket-volume").fill("20")
    expect(submit).to_have_text("Sell close today")
    d.quote(cu).click()
    expect(d.tid("ticket-instrument")).to_have_value(cu)
    expect(d.tid("ticket-buy")).to_be_checked()
    expect(d.tid("ticket-open")).to_be_checked()
    expect(d.tid("ticket-volume")).to_have_value("1")
    expect(submit).to_have_text("Buy open")
    d.quote(rb).click()
    expect(d.tid("ticket-instrument")).to_have_value(rb)

    # --- Enter in the price field never sends; a double click sends one order
    price.fill(f"{upper:g}")
    d.tid("ticket-volume").fill("2")
    price.press("Enter")
    submit.dblclick()
    filled = d.orders(rb, "0")
    expect(filled).to_have_count(1)
    expect(filled.locator("[data-field=status]")).to_have_text("Filled")
    long_rb = d.position(rb, "long")
    expect(long_rb).to_have_attribute("data-position", "2")
    expect(long_rb.locator("[data-field=today]")).to_have_text("2")
    # a deliberate second action: exactly one more order (the Enter and the double click
    # would have gone out before it on the same socket)
    price.fill(f"{lower:g}")
    d.tid("ticket-volume").fill("1")
    expect(submit).to_be_enabled()
    submit.click()
    expect(d.orders(rb, "3")).to_have_count(1)
    expect(d.orders(rb)).to_have_count(2)

    # --- confirm setting: Cancel sends nothing, Send sends
    d.tid("confirm-orders").check()
    expect(submit).to_be_enabled()
    submit.click()
    dialog = d.tid("confirm-dialog")
    expect(dialog).to_be_visible()
    expect(d.tid("confirm-list")).to_contain_text(f"Buy open 1 {rb}")
    d.axe("confirm dialog")
    d.tid("confirm-no").click()
    expect(dialog).to_be_hidden()
    expect(submit).to_be_enabled()
    submit.click()
    d.tid("confirm-yes").click()
    expect(d.orders(rb, "3")).to_have_count(2)
    d.tid("confirm-orders").uncheck()

    # --- modify = cancel and replace
    d.orders(rb, "3").first.get_by_test_id("modify-order").click()
    expect(d.tid("ticket-modify")).to_be_visible()
    expect(submit).to_contain_text("Replace")
    new_price = lower + tick
    price.fill(f"{new_price:g}")
    submit.click()
    expect(d.tid("ticket-modify")).to_be_hidden()
    expect(d.orders(rb, "5")).to_have_count(1)  # the old one cancelled
    expect(d.orders(rb, "3")).to_have_count(2)  # the other one and its replacement
    prices = page.eval_on_selector_all(
        f'[data-testid=order-row][data-instrument="{rb}"][data-status="3"] td:nth-child(5)',
        "cells => cells.map(c => Number(c.textContent))",
    )
    assert sorted(prices) == pytest.approx(sorted([lower, new_price]))

    # --- depth shows my resting orders at their price: a buy at the best bid
    mine_price = d.click_depth("bid", 1)  # a sell at that price; make it a buy resting there
    expect(d.tid("ticket-sell")).to_be_checked()
    page.locator("label.seg-item.buy").click()
    expect(submit).to_have_text("Buy open")
    expect(submit).to_be_enabled()
    submit.click()
    expect(page.locator(f'[data-testid=order-row][data-instrument="{rb}"]')).to_have_count(5)
    # one snapshot: every bid level at the price of a working buy shows its lots, and the
    # other levels show nothing
    page.wait_for_function(
        """([id, price]) => {
          const s = window.webctpDemo.state;
          const working = [...s.orders.values()].some((o) => o.InstrumentID === id
            && o.Direction === "0" && o.LimitPrice === price
            && ["1", "3", "a"].includes(o.OrderStatus));
          const rows = [...document.querySelectorAll("[data-testid=depth-row]")];
          return rows.every((r) => {
            const btn = r.querySelector("[data-testid=depth-price]");
            const mine = r.querySelector("[data-testid=depth-mine]").textContent;
            const here = working && btn && r.dataset.side === "bid"
              && Number(btn.dataset.price) === price;
            return here ? mine === "1" : mine === "";
          });
        }""",
        arg=[rb, mine_price],
    )

    # --- cancel all
    d.tid("cancel-all").click()
    expect(d.orders(rb, "3")).to_have_count(0)
    expect(d.orders(rb, "5")).not_to_have_count(0)
    expect(d.tid("cancel-all")).to_be_disabled()

    # --- a broker rejection stays visible as a row with CTP's reason
    page.locator("label.seg-item.sell").click()
    page.locator("#ticket-closetoday-item").click()
    d.tid("ticket-volume").fill("50")
    price.fill(f"{lower:g}")
    submit.click()
    rejection = page.locator("[data-testid=toast][data-kind=error]", has_text="Order rejected")
    expect(rejection.first).to_be_visible()
    rejected = page.locator(f'[data-testid=order-row][data-instrument="{rb}"][data-local=true]')
    expect(rejected).to_have_count(1)
    expect(rejected.locator("[data-field=status]")).to_have_text("Rejected")
    expect(rejected.locator("[data-field=message]")).to_contain_text("ErrorID")

    # a local mistake is explained and nothing is sent
    price.fill(f"{upper + 100 * tick:g}")
    d.tid("ticket-volume").fill("1")
    submit.click()
    expect(
        page.locator("[data-testid=toast][data-kind=error]", has_text="above the upper limit").first
    ).to_be_visible()
    # gateway error frames are shown in words; at most three messages show at once, in a
    # strip that covers neither the ticket nor the account
    d.tid("tab-console").click()
    for n in range(4):
        d.tid("console-input").fill(f'{{"MsgType": "ReqNoSuchThing{n}"}}')
        d.tid("console-send").click()
    expect(
        page.locator("[data-testid=toast][data-kind=error]", has_text="unknown message type").first
    ).to_be_visible()
    assert page.locator("[data-testid=toast]").count() <= 3
    toasts = d.tid("toasts").bounding_box()
    assert toasts is not None
    for panel in (".ticket", ".account", ".tabs-panel.right-tabs .tabs"):
        other = page.locator(panel).bounding_box()
        assert other is not None
        overlap = not (
            toasts["x"] + toasts["width"] <= other["x"]
            or other["x"] + other["width"] <= toasts["x"]
            or toasts["y"] + toasts["height"] <= other["y"]
            or other["y"] + other["height"] <= toasts["y"]
        )
        assert not overlap, f"messages cover {panel}: {toasts} vs {other}"
    d.tid("tab-positions").click()
    d.dismiss_toasts()

    # --- live account: equity = queried balance - queried position profit + live P/L
    d.settle_queries()
    expect(d.tid("account-risk")).to_have_text(re.compile(r"^\d+\.\d\d%$"))
    page.wait_for_function(
        """() => { const s = window.webctpDemo.state; const a = s.account;
          const num = (id) => Number(document.getElementById(id).textContent.replace(/,/g, ''));
          if (!a || !isFinite(num('account-equity'))) return false;
          const expected = a.Balance - a.PositionProfit + num('account-live-pnl');
          return Math.abs(num('account-equity') - expected) < 0.02; }"""
    )

    # --- stale marks and the retry countdown while the md link is down
    page.evaluate("() => { const md = window.webctpDemo.md; md.retryDelay = 3000; md.ws.close(); }")
    quotes_panel = page.locator("section.quotes")
    expect(quotes_panel).to_have_attribute("data-stale", "true")
    expect(d.tid("quotes-stale")).to_be_visible()
    expect(d.tid("md-state")).to_contain_text("retrying in 3 s")
    expect(d.tid("md-state")).to_contain_text("retrying in 2 s")
    d.shot("stale")
    expect(d.tid("md-state")).to_have_attribute("data-state", "ready")
    expect(quotes_panel).to_have_attribute("data-stale", "false")
    expect(row).to_have_attribute("data-subscribed", "true")

    # --- position actions: close (SHFE: today's lots with Close today), reverse, close all
    # the positions table is drawn again on every tick of a held instrument; a focused button
    # in it keeps the keyboard focus, and Enter closes the position
    close_rb = long_rb.get_by_test_id("position-close")
    expect(close_rb).to_be_enabled()
    close_rb.focus()
    d.next_ticks(row, 2)
    expect(close_rb).to_be_focused()
    page.keyboard.press("Enter")
    expect(long_rb).to_have_count(0)
    page.get_by_test_id("tab-trades").click()
    expect(
        page.locator(f'[data-testid=trade-row][data-instrument="{rb}"]', has_text="close today")
    ).not_to_have_count(0)
    page.get_by_test_id("tab-orders").click()
    d.quote(cu).click()
    d.tid("ticket-volume").fill("1")
    _, cu_upper, _ = d.limits()
    # Marketable whatever the market did since the last quote the page saw (a price read from
    # the depth can be behind the market by the time the order arrives, and rest).
    price.fill(f"{cu_upper:g}")
    submit.click()
    expect(d.orders(cu, "0")).to_have_count(1)
    long_cu = d.position(cu, "long")
    expect(long_cu).to_have_attribute("data-position", "1")
    long_cu.get_by_test_id("position-reverse").click()
    # Both legs are FAK orders at the limit price: filled at once at book prices (or cancelled,
    # never left resting), so the new rows are final states, not a race with the market.
    reverse_legs = page.locator(
        f'[data-testid=order-row][data-instrument="{cu}"][data-direction="1"]'
    )
    expect(reverse_legs).to_have_count(2)
    expect(reverse_legs.locator("[data-field=status]")).to_have_text(["Filled", "Filled"])
    expect(reverse_legs.locator("[data-field=type]")).to_have_text(["FAK", "FAK"])
    short_cu = d.position(cu, "short")
    expect(short_cu).to_have_attribute("data-position", "1")
    expect(long_cu).to_have_count(0)
    d.settle_queries()
    d.shot("positions")
    d.tid("close-all").click()
    expect(page.locator("[data-testid=position-row]")).to_have_count(0)
    d.settle_queries()
    d.dismiss_toasts()
    d.quote(rb).click()
    d.chart_ready(rb, "1m", 20)
    d.axe("trading")
    d.shot("en")

    # --- times: the log and the exchange's order times are both exchange time
    log_time = page.locator("#log li .t").first.text_content() or ""
    quote_time = (row.get_attribute("data-time") or "")[:8]
    apart = abs(seconds_of(log_time) - seconds_of(quote_time))
    assert min(apart, 86400 - apart) < 120, (log_time, quote_time)

    # --- Chinese: the page's words switch, CTP's own messages stay as sent
    ctp_message = rejected.locator("[data-field=message]").text_content()
    d.tid("lang-button").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(d.tid("tab-orders")).to_contain_text("委托")
    expect(d.tid("md-state")).to_contain_text("接收行情中")
    expect(submit).to_have_text(re.compile("^(买|卖)"))
    expect(rejected.locator("[data-field=status]")).to_have_text("已拒绝")
    expect(rejected.locator("[data-field=message]")).to_have_text(ctp_message or "")
    d.axe("Chinese")
    d.shot("zh")
    d.tid("lang-button").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")

    # --- after a reload the password is not refilled (the user name is)
    page.reload()
    expect(d.tid("login-user")).to_have_value("webdemo")
    expect(d.tid("login-password")).to_have_value("")
    assert time.monotonic() - started < 150


def test_chinese_messages(desktop: Demo) -> None:
    """Under 中文 the page's own messages (toasts, the Log, the link badges, the query line) are
    Chinese; CTP's ErrorMsg and the gateway's own message pass through exactly as sent."""
    from playwright.sync_api import expect

    d = desktop
    page = d.page
    d.tid("lang-button").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(d.tid("td-state")).to_have_text("td: 离线")
    d.login("zhdemo", "secret3")
    expect(d.tid("td-state")).to_have_text("td: 已登录：zhdemo")
    log = page.locator("#log li")
    logged_in = re.compile(r"^\d\d:\d\d:\d\dtd 已登录：zhdemo，交易日 \d{8}$")
    expect(log.filter(has_text=logged_in)).to_have_count(1)
    expect(log.filter(has_text=re.compile(r"合约列表：\d+ 个合约$"))).to_have_count(1)
    expect(d.tid("session-info")).to_contain_text("交易日")
    # the page's own English words are gone (a gateway's SessionState Detail stays as sent)
    english = re.compile("td logged in|instrument list|socket open")
    expect(log.filter(has_text=english)).to_have_count(0)
    rb = d.nearest("rb")
    d.subscribe(rb)
    expect(log.filter(has_text=f"已订阅 {rb}")).to_have_count(1)
    d.quote(rb).click()
    lower, upper, tick = d.limits()
    expect(d.tid("ticket-limits")).to_contain_text("涨跌停")
    price = d.tid("ticket-price")
    submit = d.tid("ticket-submit")

    # a mistake the page catches itself: in Chinese, nothing sent
    price.fill(f"{upper + 10 * tick:g}")
    submit.click()
    local = page.locator("[data-testid=toast][data-kind=error]", has_text="委托未发送")
    expect(local).to_have_count(1)
    expect(local).to_contain_text("高于涨停价")

    # a broker rejection: the page's words in Chinese, CTP's ErrorMsg exactly as CTP sent it
    page.locator("label.seg-item.sell").click()
    page.locator("#ticket-closetoday-item").click()
    d.tid("ticket-volume").fill("3")
    price.fill(f"{lower:g}")
    expect(submit).to_have_text("卖平今")
    submit.click()
    rejection = page.locator("[data-testid=toast][data-kind=error]", has_text="委托被拒绝：")
    expect(rejection).to_have_count(1)
    expect(rejection.locator(".title")).to_contain_text(f"卖平今 3 {rb} @ ")
    page.wait_for_function("() => window.__received.some((f) => f.includes('RspOrderInsert'))")
    [answer] = d.received("RspOrderInsert")
    ctp_msg = answer["RspInfo"]["ErrorMsg"]
    assert answer["RspInfo"]["ErrorID"] != 0 and re.search(r"[\u4e00-\u9fff]", ctp_msg)
    error_id = answer["RspInfo"]["ErrorID"]
    expect(rejection.locator(".detail")).to_have_text(f"{ctp_msg} (ErrorID {error_id})")
    expect(log.filter(has_text=f"委托被拒绝：卖平今 3 {rb}")).to_have_count(1)
    expect(log.filter(has_text=re.compile("委托已发送（下单面板）：卖平今 3"))).to_have_count(1)
    expect(page.locator("[data-testid=toast]", has_text="Order")).to_have_count(0)

    # the gateway's own error: its meaning in Chinese, its ErrorMsg as the gateway sent it
    d.tid("tab-console").click()
    d.tid("console-input").fill('{"MsgType": "ReqNoSuchThing"}')
    d.tid("console-send").click()
    gateway = page.locator("[data-testid=toast][data-kind=error]", has_text="未知的消息类型")
    expect(gateway).to_have_count(1)
    page.wait_for_function(
        "() => window.__received.some((f) => f.includes('ReqNoSuchThing') && f.includes('-404'))"
    )
    refused = [f for f in d.received("RspError") if f["RspInfo"]["ErrorID"] == -404]
    assert refused, d.received("RspError")
    expect(gateway.locator(".detail")).to_contain_text(refused[-1]["RspInfo"]["ErrorMsg"])
    d.tid("tab-positions").click()
    d.dismiss_toasts()

    # the link to the gateway drops: Chinese warning, countdown and log; back to normal
    page.evaluate("() => { const md = window.webctpDemo.md; md.retryDelay = 3000; md.ws.close(); }")
    lost = page.locator("[data-testid=toast][data-kind=warn]", has_text="md：与网关的连接断开")
    expect(lost).to_have_count(1)
    expect(lost.locator(".detail")).to_contain_text("正在重连")
    expect(d.tid("md-state")).to_contain_text(re.compile(r"网关不可达，\d 秒后重试"))
    expect(d.tid("md-state")).to_have_text("md: 接收行情中")
    expect(log.filter(has_text="md：连接已打开")).not_to_have_count(0)
    d.settle_queries()
    d.axe("Chinese messages")
    d.shot("zh-messages")

    # unsubscribing; the console's frame with its own RequestID goes as typed, its answer logged
    d.quote(rb).get_by_test_id("unsubscribe").click()
    expect(d.quote(rb)).to_have_count(0)
    expect(log.filter(has_text=f"已退订 {rb}")).to_have_count(1)
    d.tid("tab-console").click()
    d.tid("console-input").fill(
        '{"MsgType": "ReqQryTradingAccount", "RequestID": 777, "QryTradingAccount": {}}'
    )
    d.tid("console-send").click()
    expect(
        log.filter(has_text=re.compile(r'td ⇠ \{"MsgType":"RspQryTradingAccount".*"RequestID":777'))
    ).to_have_count(1)
    d.tid("tab-positions").click()

    # a failed login: the page's words in Chinese, CTP's message as sent; then the right password
    d.tid("logout-button").click()
    expect(d.tid("td-state")).to_have_text("td: 离线")
    expect(log.filter(has_text="已退出")).to_have_count(1)
    d.tid("login-password").fill("wrong")
    d.tid("login-button").click()
    expect(d.tid("td-state")).to_have_attribute("data-state", "login_failed")
    failed = page.locator("[data-testid=toast][data-kind=error]", has_text="td 登录失败")
    expect(failed).to_have_count(1)
    [refusal] = [f for f in d.received("RspUserLogin") if (f["RspInfo"] or {}).get("ErrorID")]
    info = refusal["RspInfo"]
    expect(failed.locator(".detail")).to_contain_text(
        f"{info['ErrorMsg']} (ErrorID {info['ErrorID']})"
    )
    expect(d.tid("td-state")).to_contain_text(f"登录失败: {info['ErrorMsg']}")
    expect(d.tid("md-state")).to_have_text("md: 离线")
    d.tid("login-password").fill("secret3")
    d.tid("login-button").click()
    expect(d.tid("td-state")).to_have_text("td: 已登录：zhdemo")
    expect(d.tid("md-state")).to_have_text("md: 接收行情中")
    d.settle_queries()

    # switching back: the badges follow, messages already shown keep their language
    d.tid("lang-button").click()
    expect(d.tid("md-state")).to_have_text("md: receiving quotes")
    expect(d.tid("td-state")).to_have_text("td: logged in as zhdemo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_service_restart(browser: Browser, tmp_path: Path) -> None:
    """The service stops and starts again on the same ports: the page (webctp.js clients kept
    open by its Reconnector) marks its data stale, counts down, reconnects, logs in again with
    the credentials it kept in memory, subscribes again and shows the same account."""
    from playwright.sync_api import expect

    ports = free_port(), free_port()
    service = Service(tmp_path, *ports)
    try:
        base = service.wait_ready()
        d = Demo(browser, base, DESKTOP, "restart")
        try:
            page = d.page
            d.login("restart", "secret4")
            rb = d.nearest("rb")
            row = d.subscribe(rb)
            d.quote(rb).click()
            _, upper, _ = d.limits()
            d.tid("ticket-price").fill(f"{upper:g}")
            d.tid("ticket-submit").click()
            expect(d.position(rb, "long")).to_have_attribute("data-position", "1")
            d.settle_queries()
            service.stop()
            for api in ("td", "md"):
                expect(d.tid(f"{api}-state")).to_have_attribute("data-state", "disconnected")
            expect(d.tid("md-state")).to_contain_text(re.compile(r"retrying in \d+ s"))
            expect(page.locator("section.quotes")).to_have_attribute("data-stale", "true")
            d.shot("down")
            service = Service(tmp_path, *ports)
            assert service.wait_ready() == base
            for api in ("td", "md"):
                expect(d.tid(f"{api}-state")).to_have_attribute("data-state", "ready")
            expect(page.locator("section.quotes")).to_have_attribute("data-stale", "false")
            expect(row).to_have_attribute("data-subscribed", "true")
            d.next_ticks(row)
            expect(d.position(rb, "long")).to_have_attribute("data-position", "1")
            expect(d.orders(rb, "0")).to_have_count(1)
            d.settle_queries()
            d.dismiss_toasts()
            d.shot("back")
        finally:
            # Chromium itself logs each refused attempt while the service is down (not the page's)
            refused = re.compile(
                rf"WebSocket connection to 'ws://127\.0\.0\.1:{ports[1]}/(td|md)/' failed: "
                r".*ERR_CONNECTION_REFUSED$"
            )
            d.errors = [e for e in d.errors if not refused.search(e)]
            d.finish()
    finally:
        service.stop()  # the one running now (stop() is a no-op once stopped)


def test_phone_layout(phone: Demo) -> None:
    from playwright.sync_api import expect

    d = phone
    page = d.page
    width = PHONE["width"]

    def fits(loc: Locator) -> None:
        box = loc.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, box

    def no_sideways_scroll() -> None:
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width

    fits(d.tid("login-button"))
    no_sideways_scroll()
    d.shot("login")
    d.axe("login form")
    d.login("phonedemo", "secret2")
    fits(d.tid("logout-button"))
    rb = d.nearest("rb")
    row = d.subscribe(rb)
    expect(row.get_by_test_id("quote-ask")).to_be_visible()
    no_sideways_scroll()
    # one column, large touch targets
    for loc in (row, d.tid("mtab-trade"), page.locator("[data-testid=depth-price]").first):
        expect(loc).to_be_visible()
        box = loc.bounding_box()
        assert box is not None and box["height"] >= 40, box
    d.shot("market")
    d.axe("market")

    d.tid("mtab-chart").click()
    expect(d.tid("mtab-chart")).to_have_attribute("aria-selected", "true")
    expect(d.tid("chart")).to_be_visible()
    expect(page.locator("section.quotes")).to_be_hidden()
    d.chart_ready(rb, "1m", 20)
    d.shot("chart")

    d.tid("mtab-market").click()
    page.locator("[data-testid=depth-price][data-side=ask][data-level='1']").click()
    d.tid("mtab-trade").click()
    expect(d.tid("ticket-instrument")).to_have_value(rb)
    submit = d.tid("ticket-submit")
    box = submit.bounding_box()
    assert box is not None and box["height"] >= 44
    fits(submit)
    _, upper, _ = d.limits()
    d.tid("ticket-price").fill(f"{upper:g}")
    d.shot("trade")
    d.axe("trade")
    submit.click()

    d.tid("mtab-orders").click()
    expect(d.orders(rb, "0")).to_have_count(1)
    no_sideways_scroll()
    d.shot("orders")

    d.tid("mtab-account").click()
    pos = d.position(rb, "long")
    expect(pos).to_have_attribute("data-position", "1")
    expect(d.tid("account-equity")).to_have_text(re.compile(r"^[\d,]+\.\d\d$"))
    d.settle_queries()
    d.dismiss_toasts()
    d.shot("account")
    d.axe("account")
    pos.get_by_test_id("position-close").click()
    expect(pos).to_have_count(0)
    d.settle_queries()
    d.tid("logout-button").click()
    expect(d.tid("td-state")).to_have_attribute("data-state", "offline")
    expect(d.tid("login-button")).to_be_visible()
