/* webctp web demo: one page that talks to the webctp gateway over its two WebSockets (td, md).
 *
 * Plain JavaScript (an ES module, no build step, no framework), no network access beyond the
 * gateway. How it works:
 * - GET /api/endpoints tells the page the td/md WebSocket URLs (and whether a token is needed).
 * - The sockets are webctp.js clients (the browser client the service serves at /web/webctp.js):
 *   RequestIDs, answers collected up to IsLast, typed errors, subscriptions and reconnecting are
 *   the module's; this file is the terminal on top.
 * - Everything on screen is driven by pushes: RtnOrder/RtnTrade update orders and trades and
 *   schedule ONE debounced re-query of account and positions; ticks update quotes, the chart and
 *   position P/L. Nothing is polled on a timer.
 * - Queries go through a queue with one request in flight at a time (CTP allows one query in
 *   flight per session; the gateway paces them too, but a client should not flood it).
 * - Every frame whose RspInfo.ErrorID != 0 is shown to the user in words (toast + log),
 *   including the gateway's own -400/-401/-404/-429/-503/-408 frames.
 */
import * as ctp from "/web/webctp.js";

{ // (a block only to keep the page's code indented as one unit; the module scope is private)
  // ------------------------------------------------------------------ words for CTP codes
  const ORDER_STATUS = {
    "0": "Filled",
    "1": "Part filled, queueing",
    "2": "Part filled, not queueing",
    "3": "Queueing",
    "4": "Not queueing",
    "5": "Cancelled",
    "a": "Submitted",
    "b": "Not touched",
    "c": "Touched",
  };
  /** Statuses of an order that can still be cancelled. */
  const WORKING = new Set(["1", "3", "a"]);
  const FINAL = new Set(["0", "2", "4", "5"]);
  const SUBMIT_STATUS = {
    "0": "insert submitted", "1": "cancel submitted", "2": "modify submitted", "3": "accepted",
    "4": "insert rejected", "5": "cancel rejected", "6": "modify rejected",
  };
  const DIRECTION = { "0": "Buy", "1": "Sell" };
  const OFFSET = {
    "0": "Open", "1": "Close", "2": "Force close", "3": "Close today", "4": "Close yesterday",
    "5": "Force off", "6": "Local force close",
  };
  const POSI_DIRECTION = { "1": "Net", "2": "Long", "3": "Short" };
  const PRODUCT_CLASS = {
    "1": "Futures", "2": "Options", "3": "Combination", "4": "Spot", "5": "EFP", "6": "Spot option",
    "7": "TAS", "I": "Metal index",
  };
  const INSTRUMENT_STATUS = {
    "0": "before trading", "1": "no trading", "2": "continuous trading", "3": "auction ordering",
    "4": "auction balance", "5": "auction match", "6": "closed", "7": "transaction processing",
  };
  /** Exchanges where a plain Close means "close yesterday" and today's lots need CloseToday. */
  const CLOSE_TODAY_EXCHANGES = new Set(["SHFE", "INE"]);
  /** Exchanges that reject market (AnyPrice) orders. */
  const NO_MARKET_EXCHANGES = new Set(["SHFE", "INE"]);

  /** Error codes the gateway produces itself (see docs/protocol); their meanings are in i18n.js
   * (g_<code>). */
  const GATEWAY_ERRORS = new Set([-1, -2, -3, -400, -401, -404, -408, -429, -503]);
  /** English meaning of CTP ErrorIDs (the ErrorMsg itself is CTP's Chinese text). */
  const CTP_ERRORS = {
    1: "not synchronised", 2: "inconsistent session", 3: "invalid login (user or password)",
    4: "user not active", 5: "duplicate login", 6: "not logged in", 7: "not initialised",
    8: "front not active", 9: "no privilege", 10: "changing another user's password",
    11: "user not found", 12: "broker not found", 13: "investor not found",
    14: "old password does not match", 15: "bad order field", 16: "instrument not found",
    17: "instrument not trading", 21: "seat not connected to the exchange",
    22: "duplicate order", 23: "bad cancel field", 24: "cancel already sent",
    25: "order to cancel not found", 26: "order already filled or cancelled",
    28: "no trading right", 29: "close only", 30: "close volume exceeds position",
    31: "insufficient funds", 40: "exchange: too many pending requests",
    41: "exchange: too many requests per second", 42: "settlement not confirmed",
    44: "exchange already in continuous trading", 48: "invalid investor or password",
    50: "insufficient today position to close", 51: "insufficient yesterday position to close",
    60: "too many sessions for this user", 63: "client authentication failed",
    64: "client not authenticated", 75: "login forbidden after repeated failures",
    77: "function not supported", 90: "query not ready, retry later (query rate limit)",
    91: "exchange returned an error", 106: "position limit reached", 116: "order rate limit",
    131: "weak password", 140: "first login: password must be changed", 141: "password expired",
    143: "IP banned", 144: "IP blacklisted", 154: "query core busy",
    157: "cancel of an order in unknown status not supported", 5002: "system busy",
    4040: "front handshake failed", 4043: "AppID not authorised", 4060: "IP banned",
    6000: "too many subscribed instruments",
  };
  /** Errors after which a query is simply tried again a little later. */
  const THROTTLED = new Set([90, -2, -3]);
  const QUERY_TIMEOUT_MS = 20000;
  const QUERY_RETRY_MS = 1000;
  const CONSOLE_TIMEOUT_MS = 60000;
  const REFRESH_DEBOUNCE_MS = 300;
  const LOG_MAX = 600;

  // ------------------------------------------------------------------ helpers
  const $ = (id) => document.getElementById(id);
  const I18N = window.webctpI18n;
  const T = (key, vars) => I18N.t(key, vars);
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === "class") node.className = v;
        else if (k === "text") node.textContent = v;
        else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, v === true ? "" : String(v));
      }
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  /** Write only what changed: a node rewritten on every tick with the same text is announced
   *  again by screen readers and costs a layout. */
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }
  function setAttr(node, name, value) {
    if (node.getAttribute(name) !== value) node.setAttribute(name, value);
  }
  /** CTP sends DBL_MAX for unset prices (md ticks are mapped to 0 by the gateway already). */
  function validPrice(x) {
    return typeof x === "number" && isFinite(x) && x !== 0 && Math.abs(x) < 1e300;
  }
  function decimalsOf(tick) {
    if (!tick || !isFinite(tick)) return 2;
    const s = String(Number(tick.toPrecision(10)));
    const i = s.indexOf(".");
    return i < 0 ? 0 : Math.min(6, s.length - i - 1);
  }
  function instrumentInfo(id) {
    return state.instruments.get(id) || null;
  }
  function priceDecimals(id) {
    const info = instrumentInfo(id);
    return info ? decimalsOf(info.PriceTick) : 2;
  }
  function fmtPrice(x, id) {
    return validPrice(x) ? x.toFixed(priceDecimals(id)) : "—";
  }
  const moneyFmt = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const intFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  function fmtMoney(x) {
    return typeof x === "number" && isFinite(x) && Math.abs(x) < 1e300 ? moneyFmt.format(x) : "—";
  }
  function fmtInt(x) {
    return typeof x === "number" && isFinite(x) ? intFmt.format(x) : "—";
  }
  function signClass(x) {
    return x > 0 ? "up" : x < 0 ? "down" : "";
  }
  function roundToTick(p, tick) {
    if (!tick) return p;
    return Number((Math.round(p / tick) * tick).toFixed(decimalsOf(tick)));
  }
  function onTick(p, tick) {
    if (!tick) return true;
    const n = p / tick;
    return Math.abs(n - Math.round(n)) < 1e-6;
  }
  /** Every time on the page is exchange time (Beijing, UTC+8), like CTP's InsertTime/TradeTime. */
  const EXCHANGE_OFFSET_S = 8 * 3600;
  function exchangeNowSec() {
    return Math.floor(Date.now() / 1000) + EXCHANGE_OFFSET_S;
  }
  function nowText() {
    const s = exchangeNowSec() % 86400;
    const p = (n) => String(n).padStart(2, "0");
    return `${p(Math.floor(s / 3600))}:${p(Math.floor((s % 3600) / 60))}:${p(s % 60)}`;
  }
  function storageGet(key) {
    try { return window.localStorage.getItem(key); } catch (e) { return null; }
  }
  function storageSet(key, value) {
    try { window.localStorage.setItem(key, value); } catch (e) { /* private mode: not kept */ }
  }
  /** The frame's error (a webctp.js CtpError: errorId, errorMsg, detail), or null. */
  const errorOf = ctp.errorOf;
  function describeOrderFields(o) {
    if (!o) return "";
    const words = sideWords(o.Direction, (o.CombOffsetFlag || "")[0]);
    const price = o.OrderPriceType === "1" ? T("market_word") : "@ " + fmtPrice(o.LimitPrice, o.InstrumentID);
    const type = o.TimeCondition === "1" && o.OrderPriceType !== "1" ? orderTypeOf(o) : "";
    return `${words} ${o.VolumeTotalOriginal} ${o.InstrumentID} ${price} ${type}`.replace(/\s+/g, " ").trim();
  }
  /** "Buy close today" (English, as the tests and logs use) or "买平今" (Chinese). */
  function sideWords(dir, off) {
    if (I18N.lang === "zh") {
      const o = { "0": "open_off", "1": "close_off", "3": "close_today", "4": "close_yd" }[off];
      return `${T(dir === "0" ? "buy" : "sell")}${o ? T(o) : OFFSET[off] || off}`;
    }
    return `${DIRECTION[dir] || dir} ${String(OFFSET[off] || off).toLowerCase()}`;
  }
  function orderTypeOf(o) {
    if (o.OrderPriceType === "1") return "Market";
    if (o.TimeCondition === "1") return o.VolumeCondition === "3" ? "FOK" : "FAK";
    if (o.TimeCondition === "3") return "Limit";
    return "Other";
  }
  function statusWords(o) {
    if (o.OrderStatus === "5" && o.OrderSubmitStatus === "4") return T("st_rejected");
    return ORDER_STATUS[o.OrderStatus] ? T(`st_${o.OrderStatus}`) : `status ${o.OrderStatus}`;
  }
  function statusClass(o) {
    if (o.OrderStatus === "5" && o.OrderSubmitStatus === "4") return "rejected";
    if (o.OrderStatus === "0") return "filled";
    if (WORKING.has(o.OrderStatus)) return "working";
    return "cancelled";
  }

  // ------------------------------------------------------------------ state
  const state = {
    endpoints: null,
    creds: null, // {UserID, Password} kept in memory only, for automatic re-login after a socket drop
    login: null, // the RspUserLogin payload of td
    loggingOut: false,
    instruments: new Map(), // InstrumentID -> Instrument
    instrumentsLoaded: false,
    ticks: new Map(), // InstrumentID -> latest DepthMarketData
    quoteRows: new Map(), // InstrumentID -> {tr, cells}
    subs: new Map(), // InstrumentID -> the webctp.js Subscription whose ticks the page reads
    autoSubscribed: new Set(), // position instruments subscribed once automatically
    selected: null,
    orders: new Map(), // FrontID:SessionID:OrderRef -> Order (+ _seq)
    trades: new Map(),
    positionRows: [], // raw InvestorPosition rows of the last complete query
    account: null,
    accountAt: "",
    seq: 0,
    cancelPending: new Set(),
    modifying: null, // key of the order the ticket modifies
    replacing: new Map(), // key of an order being cancelled -> the order that replaces it
  };

  // ------------------------------------------------------------------ log and toasts
  const logList = $("log");
  let logCount = 0;
  function log(kind, text) {
    const li = el("li", { class: kind }, el("span", { class: "t", text: nowText() }), text);
    logList.prepend(li);
    logCount += 1;
    while (logList.childElementCount > LOG_MAX) logList.lastElementChild.remove();
    $("log-count").textContent = String(logCount);
  }

  const toastBox = $("toasts");
  const TOAST_MAX = 3; // older messages stay in the Log
  /** Show a message to the user; identical messages within a few seconds are merged. */
  function toast(kind, title, detail) {
    const key = `${kind}|${title}|${detail || ""}`;
    for (const t of toastBox.children) {
      if (t.dataset.key === key) {
        const n = Number(t.dataset.repeat || "1") + 1;
        t.dataset.repeat = String(n);
        t.querySelector(".repeat").textContent = `×${n}`;
        armToast(t, kind);
        return t;
      }
    }
    const t = el("div", { class: `toast ${kind}`, "data-testid": "toast", "data-kind": kind, role: kind === "error" ? "alert" : "status" },
      el("div", { class: "title" }, title, el("span", { class: "repeat" })),
      detail ? el("div", { class: "detail", text: detail }) : null,
      el("button", { class: "close", type: "button", "aria-label": T("dismiss"), text: "×", onclick: () => t.remove() }));
    t.dataset.key = key;
    toastBox.append(t); // newest at the bottom
    while (toastBox.childElementCount > TOAST_MAX) toastBox.firstElementChild.remove();
    armToast(t, kind);
    log(kind === "info" ? "" : kind, detail ? `${title}: ${detail}` : title);
    return t;
  }
  function dismissToasts(titlePrefix) {
    for (const t of [...toastBox.children]) {
      if (t.querySelector(".title").firstChild.textContent.startsWith(titlePrefix)) t.remove();
    }
  }
  function armToast(t, kind) {
    clearTimeout(Number(t.dataset.timer || 0));
    const ms = kind === "error" ? 20000 : kind === "warn" ? 12000 : 4000;
    t.dataset.timer = String(setTimeout(() => t.remove(), ms));
  }

  /** The page's words for an ErrorID: the gateway's own codes in the page's language; CTP's
   * codes in English only (under 中文 CTP's own ErrorMsg already says it in Chinese). */
  function errorMeaning(id) {
    if (GATEWAY_ERRORS.has(id)) return T(`g_${id}`);
    return I18N.lang === "en" ? CTP_ERRORS[id] || "" : "";
  }
  /** What the failed frame was about, in words. */
  function actionOf(api, msg, pending) {
    const t = msg.MsgType || "";
    const payload = ctp.payloadOf(msg);
    if (t === "RspOrderInsert" || t === "ErrRtnOrderInsert") {
      return T("err_order", { what: payload ? describeOrderFields(payload) : pending ? pending.label : "" });
    }
    if (t === "RspOrderAction" || t === "ErrRtnOrderAction") {
      const what = payload ? `${payload.InstrumentID || ""} ${(payload.OrderSysID || payload.OrderRef || "").trim()}` : pending ? pending.label : "";
      return T("err_cancel", { what: what.trim() });
    }
    if (t === "RspUserLogin" || t === "RspAuthenticate") return T("err_login", { api });
    if (t === "RspUserLogout") return T("err_logout", { api });
    if (t === "RspSubMarketData" || t === "RspUnSubMarketData") {
      const inst = payload && payload.InstrumentID ? payload.InstrumentID : pending ? pending.label : "";
      return T(t === "RspSubMarketData" ? "err_sub" : "err_unsub", { id: inst }).replace("  ", " ");
    }
    if (pending && pending.label) return T("err_failed", { what: pending.label });
    if (msg.Request) return T("err_failed", { what: msg.Request });
    if (t.startsWith("RspQry")) return T("err_query", { what: t.slice(6) });
    if (t === "RspError") return T("err_refused", { api });
    return T("err_failed", { what: t });
  }
  function reportError(api, msg, pending, retrying) {
    const info = msg.RspInfo;
    const id = info.ErrorID;
    const meaning = errorMeaning(id);
    const text = String(info.ErrorMsg || "").trim();
    const parts = [];
    if (meaning) parts.push(meaning);
    if (text && text.toLowerCase() !== meaning.toLowerCase()) parts.push(text);
    let detail = `${parts.join(" — ")} (ErrorID ${id})`;
    if (msg.Detail) detail += ` · ${msg.Detail}`;
    if (retrying) detail += ` · ${T("trying_again")}`;
    toast(retrying ? "warn" : "error", actionOf(api, msg, pending), detail);
  }

  // ------------------------------------------------------------------ link state badges
  const linkBadge = { td: $("td-state"), md: $("md-state") };
  function linkText(b) {
    return `${b.dataset.api}: ${T(b.dataset.key || "ls_offline", JSON.parse(b.dataset.vars || "{}"))}`;
  }
  /** The badge of a link: its state name (data-state) and words (a dictionary key and its
   * variables; a reason or detail from the gateway is inserted as sent). */
  function setLinkState(api, stateName, key, vars) {
    const b = linkBadge[api];
    const changed = b.dataset.state !== stateName;
    b.dataset.state = stateName;
    b.dataset.api = api;
    b.dataset.key = key;
    b.dataset.vars = JSON.stringify(vars || {});
    b.textContent = linkText(b);
    b.title = b.textContent;
    if (changed) {
      if (stateName === "ready") staleSince[api] = null;
      else if (staleSince[api] === null) staleSince[api] = nowText();
    }
    updateStale();
    if (api === "td") {
      updateTicketEnabled();
      scheduleRender();
    }
  }
  /** While a link is down after login, what it feeds is marked stale (and says since when). */
  const staleSince = { td: null, md: null };
  function updateStale() {
    // Only data shown from an earlier connection can go stale (nothing is shown before login).
    const down = {
      td: !!state.creds && !!state.login && linkBadge.td.dataset.state !== "ready",
      md: !!state.creds && md.everReady && linkBadge.md.dataset.state !== "ready",
    };
    for (const node of document.querySelectorAll("[data-stale-on]")) {
      const apis = node.dataset.staleOn.split(" ");
      const stale = apis.some((a) => down[a]);
      node.classList.toggle("stale", stale);
      node.dataset.stale = stale ? "true" : "false";
      const since = apis.map((a) => (down[a] ? staleSince[a] : null)).filter(Boolean)[0];
      for (const badge of node.querySelectorAll(".stale-badge")) {
        badge.title = since ? T("stale_since", { t: since }) : "";
      }
    }
  }

  // ------------------------------------------------------------------ the links (webctp.js)
  /* Each link is one webctp.js client (TdClient/MdClient) kept open by a webctp.js Reconnector:
     RequestIDs, answers collected up to IsLast, typed errors, the socket and its reconnection
     are the module's; the page adds the words on screen, the login after each new socket, and
     (td) a query queue. */
  class Link {
    constructor(api, connect) {
      this.api = api;
      this.connect = connect; // ctp.connectTd or ctp.connectMd
      this.keeper = null; // the Reconnector while the user wants this link
      this.client = null; // the client of the open socket
      this.ready = false; // logged in
      this.everReady = false;
      this.countdownTimer = 0;
    }
    /** The open WebSocket (the browser console and the tests close it to simulate a drop). */
    get ws() { return this.client ? this.client.ws : null; }
    /** The wait before the next reconnection attempt, in ms. */
    get retryDelay() { return this.keeper ? this.keeper.retryDelay : 1000; }
    set retryDelay(ms) { if (this.keeper) this.keeper.retryDelay = ms; }
    get open() { return !!this.client && !this.client.closed; }
    start(url, token) {
      if (this.keeper) return;
      const keeper = new ctp.Reconnector(this.connect, url, { token });
      this.keeper = keeper;
      keeper.on("connecting", () => {
        clearInterval(this.countdownTimer);
        setLinkState(this.api, "connecting", "ls_connecting");
      });
      keeper.on("open", (client) => {
        this.client = client;
        client.onPush(null, (frame) => onPush(this, frame));
        setLinkState(this.api, "connected", "ls_connected_login");
        log("", T("m_socket_open", { api: this.api, url }));
        if (state.creds) sendLogin(this);
      });
      keeper.on("close", (error) => {
        this.client = null;
        this.ready = false;
        if (this.api === "td") queries.failAll();
        const lost = error instanceof ctp.ConnectionLost ? error : new ctp.ConnectionLost(null, String(error));
        toast("warn", T("m_conn_lost", { api: this.api }),
          T("m_conn_lost_d", { code: lost.code ?? "-", reason: lost.reason ? ", " + lost.reason : "" }));
      });
      keeper.on("retry", (at) => {
        const show = () => {
          const left = Math.max(0, Math.ceil((at - Date.now()) / 1000));
          setLinkState(this.api, "disconnected", "retrying", { s: left });
          linkBadge[this.api].dataset.retry = String(left);
        };
        show();
        clearInterval(this.countdownTimer);
        this.countdownTimer = setInterval(show, 1000); // "retrying in 3 s, 2 s, 1 s"
      });
      keeper.start();
    }
    stop() {
      clearInterval(this.countdownTimer);
      const keeper = this.keeper;
      this.keeper = null;
      this.client = null;
      this.ready = false;
      if (keeper) keeper.stop(1000, "logout");
      if (this.api === "td") queries.failAll();
      setLinkState(this.api, "offline", "ls_offline");
    }
    /** The client, or null with a message saying why ``what`` is not sent. */
    usable(what) {
      if (this.open) return this.client;
      toast("error", T("m_not_sent", { what }), T("m_not_connected", { api: this.api }));
      return null;
    }
  }

  const td = new Link("td", ctp.connectTd);
  const md = new Link("md", ctp.connectMd);

  /** Report a failed request: CtpError in words; a lost socket is reported by its link. */
  function reportFailure(api, error, label, retrying) {
    if (error instanceof ctp.CtpError) reportError(api, error.frame, { label }, retrying);
    else if (error instanceof ctp.RequestTimeout) {
      toast("error", T("err_failed", { what: label }), T("m_no_answer", { s: Math.round(error.timeoutMs / 1000) }));
    } else if (!(error instanceof ctp.ConnectionLost)) {
      toast("error", T("err_failed", { what: label }), String(error));
    }
  }

  /** td queries, one in flight at a time (CTP answers one query at a time per session; the
   * gateway paces them too, but a page should not flood it); the same query already waiting is
   * not queued twice; throttled ones (ErrorID 90, -2, -3) are tried again a little later. Each
   * resolves to {ok, rows, error}. */
  const queries = {
    queue: [],
    inFlight: null,
    run(name, payload, label) {
      const body = JSON.stringify(payload);
      for (const item of this.queue) if (item.name === name && item.body === body) return item.promise;
      let resolve;
      const promise = new Promise((r) => { resolve = r; });
      this.queue.push({ name, payload, body, label, resolve, promise, tries: 0 });
      this.pump();
      return promise;
    },
    async pump() {
      showQueryStatus();
      if (!td.ready || this.inFlight || this.queue.length === 0) return;
      const item = this.queue.shift();
      this.inFlight = item;
      item.tries += 1;
      let result;
      try {
        result = { ok: true, rows: await td.client.query(item.name, item.payload, { timeoutMs: QUERY_TIMEOUT_MS }), error: null };
      } catch (e) {
        result = { ok: false, rows: [], error: e };
      }
      if (this.inFlight !== item) return; // failAll() finished it meanwhile
      const throttled = result.error instanceof ctp.CtpError && THROTTLED.has(result.error.errorId);
      if (!result.ok) reportFailure("td", result.error, item.label, throttled && item.tries < 4);
      if (throttled && item.tries < 4) {
        await new Promise((r) => setTimeout(r, QUERY_RETRY_MS * item.tries));
        if (this.inFlight !== item) return;
        this.queue.unshift(item);
      } else {
        item.resolve(result);
      }
      this.inFlight = null;
      this.pump();
    },
    /** The socket is gone: every waiting query is finished without rows. */
    failAll() {
      const failed = { ok: false, rows: [], error: new ctp.ConnectionLost(null, "closed") };
      const items = this.queue.splice(0);
      if (this.inFlight) items.push(this.inFlight);
      this.inFlight = null;
      for (const item of items) item.resolve(failed);
      showQueryStatus();
    },
  };

  /** "querying: Position query (+2 queued)"; data-pending counts queued + in flight. */
  function showQueryStatus() {
    const node = $("query-status");
    const pending = (queries.inFlight ? 1 : 0) + queries.queue.length;
    node.dataset.pending = String(pending);
    if (!pending) {
      node.textContent = "";
      return;
    }
    const current = queries.inFlight ? queries.inFlight.label : queries.queue[0].label;
    const more = pending - 1;
    node.textContent = T(td.ready ? "querying" : "waiting_login", { what: current }) + (more ? T("queued_more", { n: more }) : "");
  }

  // ------------------------------------------------------------------ login / logout
  async function sendLogin(link) {
    const c = state.creds;
    const client = link.client;
    if (!c || !client) return;
    setLinkState(link.api, "connected", "ls_logging_in");
    let info;
    try {
      info = await client.login(c.UserID, c.Password);
    } catch (e) {
      if (client !== link.client) return;
      if (e instanceof ctp.CtpError) reportError(link.api, e.frame, null, false);
      if (link.api === "td") onTdLoginFailed(e);
      else if (e instanceof ctp.CtpError) setLinkState("md", "login_failed", "ls_login_failed", { detail: `: ${e.errorMsg}` });
      return;
    }
    if (client !== link.client) return;
    if (link.api === "td") onTdLogin(info, true);
    else onMdLogin(true);
  }

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const UserID = $("login-user").value.trim();
    const Password = $("login-password").value;
    if (!UserID) {
      toast("error", T("m_login_not_sent"), T("m_enter_user"));
      return;
    }
    if (!state.endpoints) {
      toast("error", T("m_login_not_sent"), T("m_no_endpoints"));
      return;
    }
    state.creds = { UserID, Password };
    storageSet("webctp.user", UserID);
    $("login-button").disabled = true;
    const token = $("login-token").value.trim() || null;
    for (const [link, url] of [[td, state.endpoints.td], [md, state.endpoints.md]]) {
      if (!url) continue;
      if (link.open) sendLogin(link);
      else link.start(url, token);
    }
  });

  $("logout-button").addEventListener("click", () => logout());

  function logout() {
    if (state.loggingOut) return;
    state.loggingOut = true;
    $("logout-button").disabled = true;
    const finish = () => {
      if (!state.loggingOut) return;
      state.loggingOut = false;
      td.stop();
      md.stop();
      state.creds = null;
      resetSession();
      log("", T("m_logged_out"));
    };
    if (td.ready && state.login && td.open) {
      td.client.call({ MsgType: "ReqUserLogout", UserLogout: { BrokerID: state.login.BrokerID, UserID: state.login.UserID } },
        { timeoutMs: 3000 }).catch((e) => reportFailure("td", e, T("q_logout"), false)).finally(finish);
    } else {
      finish();
    }
  }

  function resetSession() {
    state.login = null;
    state.orders.clear();
    state.trades.clear();
    state.positionRows = [];
    state.account = null;
    state.subs.clear();
    state.autoSubscribed.clear();
    state.cancelPending.clear();
    state.replacing.clear();
    if (state.modifying) stopModify();
    md.everReady = false;
    for (const id of [...state.quoteRows.keys()]) removeQuoteRow(id);
    state.ticks.clear();
    selectInstrument(null);
    $("login-form").hidden = false;
    $("session-bar").hidden = true;
    $("login-button").disabled = false;
    $("logout-button").disabled = false;
    renderAccount();
    scheduleRender();
    updateStale();
  }

  function onTdLoginFailed(error) {
    const detail = error instanceof ctp.CtpError ? error.errorMsg : error ? String(error.message || error) : T("m_no_login_data");
    setLinkState("td", "login_failed", "ls_login_failed", { detail: `: ${detail}` });
    $("login-button").disabled = false;
    if (!state.login) {
      // A first login that failed: drop the sockets' credentials, the user retries.
      state.creds = null;
      md.stop();
    }
  }
  /** td logged in: ``solicited`` by this page, or by the gateway itself after a reconnect. */
  function onTdLogin(info, solicited) {
    const first = !state.login;
    state.login = info;
    dismissToasts(T("err_login", { api: "td" }));
    td.ready = true;
    setLinkState("td", "ready", "ls_logged_in", { user: info.UserID });
    $("login-form").hidden = true;
    $("session-bar").hidden = false;
    $("login-button").disabled = false;
    renderSessionInfo();

    if (!solicited) toast("info", T("m_td_again"), T("m_td_again_d", { front: info.FrontID, session: info.SessionID }));
    else if (first) log("", T("m_td_logged_in", { user: info.UserID, day: info.TradingDay }));
    queries.pump();
    refreshAll();
    updateTicketEnabled();
  }

  function renderSessionInfo() {
    const info = state.login;
    const node = $("session-info");
    if (!info) return;
    node.textContent = T("session_line", { user: info.UserID, broker: info.BrokerID, day: info.TradingDay,
      front: info.FrontID, session: info.SessionID });
    node.title = node.textContent + (info.SystemName ? T("session_system", { name: info.SystemName }) : "")
      + T("session_login", { time: info.LoginTime || "" });
  }

  /** md logged in: ``solicited`` by this page, or by the gateway itself after a reconnect. */
  function onMdLogin(solicited) {
    md.ready = true;
    md.everReady = true;
    setLinkState("md", "ready", "ls_quotes");
    if (!solicited) {
      // The gateway re-logged in by itself and re-subscribed what we had.
      toast("info", T("m_md_again"), T("m_md_again_d"));
      return;
    }
    // A new socket: (re)subscribe what the table shows, or what this user had last time.
    const wanted = new Set([...state.quoteRows.keys()]);
    if (wanted.size === 0 && state.creds) {
      const saved = storageGet(`webctp.subs.${state.creds.UserID}`);
      if (saved) for (const id of saved.split(",")) if (id) wanted.add(id);
    }
    state.subs.clear(); // the old socket's subscriptions ended with it
    chart.loaded = null; // bars again from the gateway on the next tick
    if (wanted.size) subscribe([...wanted]);
  }

  // ------------------------------------------------------------------ frame handling
  /** Every frame of a link that is not the answer to one of the page's requests (those are
   * handled where they were sent): pushes, order rejections, refused cancels, the gateway's
   * frames about its links, answers to the console's raw frames. Errors are shown in words. */
  function onPush(link, msg) {
    const api = link.api;
    if (link.client === null) return;
    if (errorOf(msg) && msg.MsgType !== "FrontDisconnected") reportError(api, msg, null, false);
    switch (msg.MsgType) {
      case "FrontConnected":
        if (link.ready || (api === "td" && state.login)) {
          setLinkState(api, "relogging", "ls_relogging_back");
        } else {
          setLinkState(api, "connected", "ls_broker_up");
        }
        log("", T("m_front_connected", { api }));
        return;
      case "FrontDisconnected": {
        const d = msg.FrontDisconnected || {};
        const reason = `${d.Description || (msg.RspInfo && msg.RspInfo.ErrorMsg) || T("m_reason_unknown")}${d.Hex ? ` (${d.Hex})` : ""}`;
        link.ready = false;
        setLinkState(api, "disconnected", "ls_broker_down", { reason });
        toast("warn", T("m_broker_lost", { api }), T("m_broker_lost_d", { reason }));
        return;
      }
      case "SessionState": {
        const s = msg.SessionState || {};
        const detail = s.Detail ? `: ${s.Detail}` : "";
        if (s.State === "ready") {
          // The login frame that follows carries the session details.
          if (api === "md") setLinkState(api, "ready", "ls_quotes");
          else if (state.login) setLinkState(api, "ready", "ls_logged_in", { user: state.login.UserID });
          else setLinkState(api, "ready", "ls_ready");
        } else if (s.State === "disconnected") {
          link.ready = false;
          setLinkState(api, "disconnected", "ls_disconnected", { detail });
        } else if (s.State === "relogging") {
          link.ready = false;
          setLinkState(api, "relogging", "ls_relogging", { detail });
        } else if (s.State === "login_failed") {
          link.ready = false;
          setLinkState(api, "login_failed", "ls_login_failed", { detail });
          // A failed first login is reported by its RspUserLogin; this is the gateway's own retry.
          if (api === "td" ? state.login : link.everReady) {
            toast("error", T("m_relogin_failed", { api }), s.Detail || T("m_log_in_again"));
          }
        } else if (s.State === "logging_in") {
          setLinkState(api, "connected", "ls_logging_in_d", { detail });
        } else if (s.State === "connecting" || s.State === "new") {
          setLinkState(api, "connecting", "ls_connecting_broker", { detail });
        } else if (s.State === "connected") {
          link.ready = false;
          setLinkState(api, "connected", "ls_up_not_logged", { detail });
        } else {
          setLinkState(api, String(s.State || "unknown"), "ls_other", { state: s.State, detail });
        }
        log("", T("m_session", { api, state: s.State, detail }));
        return;
      }
      case "RspUserLogin": // the gateway logged in again by itself after a reconnect
        if (errorOf(msg)) {
          if (api === "td") onTdLoginFailed(new ctp.CtpError(msg));
          else setLinkState("md", "login_failed", "ls_login_failed", { detail: `: ${errorOf(msg).errorMsg}` });
        } else if (msg.RspUserLogin) {
          if (api === "td") onTdLogin(msg.RspUserLogin, false);
          else onMdLogin(false);
        }
        return;
      case "RspAuthenticate":
        if (errorOf(msg) && api === "td") onTdLoginFailed(new ctp.CtpError(msg));
        return;
      case "RspUserLogout":
        return;
      case "RtnOrder":
        if (msg.Order) upsertOrder(msg.Order, true);
        return;
      case "RtnTrade":
        if (msg.Trade) upsertTrade(msg.Trade, true);
        return;
      case "RspOrderInsert":
      case "ErrRtnOrderInsert":
        // Shown by reportError; a broker rejection has no RtnOrder, so it gets a row here.
        if (errorOf(msg)) addRejectedOrder(msg, msg.InputOrder);
        return;
      case "RspOrderAction":
      case "ErrRtnOrderAction":
        state.cancelPending.clear();
        if (errorOf(msg) && state.replacing.size) {
          state.replacing.clear();
          toast("warn", T("m_modify_abandoned"), T("m_modify_abandoned_d"));
        }
        scheduleRender();
        return;
      case "RtnDepthMarketData": // of an instrument no subscription of the page reads (any more)
        return;
      case "RtnInstrumentStatus": {
        const s = msg.InstrumentStatus || {};
        log("", `${s.ExchangeID || ""} ${s.InstrumentID || ""}: ${INSTRUMENT_STATUS[s.InstrumentStatus] ? T(`is_${s.InstrumentStatus}`) : s.InstrumentStatus}`);
        return;
      }
      case "RtnTradingNotice": {
        const n = msg.TradingNoticeInfo || {};
        toast("info", T("m_notice"), n.FieldContent || JSON.stringify(n));
        return;
      }
      case "HeartBeatWarning":
        log("warn", T("m_heartbeat", { api, what: JSON.stringify(msg.HeartBeatWarning || {}) }));
        return;
      default:
        log(errorOf(msg) ? "error" : "", `${api} ⇠ ${JSON.stringify(msg).slice(0, 600)}`);
    }
  }

  // ------------------------------------------------------------------ queries
  function investorFilter() {
    const l = state.login;
    return l ? { BrokerID: l.BrokerID, InvestorID: l.UserID } : {};
  }

  async function refreshAll() {
    const jobs = [];
    if (!state.instrumentsLoaded) jobs.push(loadInstruments());
    jobs.push(refreshAccount(), refreshPositions(), refreshOrders(), refreshTrades());
    await Promise.all(jobs);
  }
  async function loadInstruments() {
    const res = await queries.run("QryInstrument", {}, T("q_instruments"));
    if (!res.ok) return;
    for (const i of res.rows) state.instruments.set(i.InstrumentID, i);
    state.instrumentsLoaded = true;
    log("", T("m_instruments", { n: res.rows.length }));
    renderInstrumentOptions();
    renderInstruments();
    refreshQuoteNames();
    onTicketInstrumentChange(false);
  }
  async function refreshAccount() {
    const res = await queries.run("QryTradingAccount", investorFilter(), T("q_account"));
    if (!res.ok) return;
    if (res.rows.length) {
      state.account = res.rows[0];
      state.accountAt = nowText();
    }
    renderAccount();
  }
  async function refreshPositions() {
    const res = await queries.run("QryInvestorPosition", investorFilter(), T("q_positions"));
    if (!res.ok) return;
    state.positionRows = res.rows;
    const wanted = [];
    for (const r of res.rows) {
      const id = r.InstrumentID;
      if (r.Position > 0 && !state.quoteRows.has(id) && !state.autoSubscribed.has(id)) {
        state.autoSubscribed.add(id);
        wanted.push(id);
      }
    }
    if (wanted.length) subscribe([...new Set(wanted)]);
    scheduleRender();
  }
  async function refreshOrders() {
    const res = await queries.run("QryOrder", investorFilter(), T("q_orders"));
    if (!res.ok) return;
    for (const o of res.rows) upsertOrder(o, false);
  }
  async function refreshTrades() {
    const res = await queries.run("QryTrade", investorFilter(), T("q_trades"));
    if (!res.ok) return;
    for (const t of res.rows) upsertTrade(t, false);
  }
  async function queryDepth(id) {
    if (!td.ready) return;
    const res = await queries.run("QryDepthMarketData", { InstrumentID: id }, T("q_depth", { id }));
    if (!res.ok) return;
    for (const d of res.rows) {
      if (d.InstrumentID === id && !state.ticks.has(id)) state.ticks.set(id, d);
    }
    if (ticketInstrument() === id) onTicketInstrumentChange(true);
  }

  /** RtnOrder/RtnTrade: re-query account and positions once the burst of pushes is over. */
  let refreshTimer = 0;
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      if (!td.ready) return;
      refreshAccount();
      refreshPositions();
    }, REFRESH_DEBOUNCE_MS);
  }

  // ------------------------------------------------------------------ orders and trades
  /** An order the broker refused (RspOrderInsert/ErrRtnOrderInsert, no RtnOrder): a row with
   * status Rejected and CTP's message, so it stays visible with its reason. */
  function addRejectedOrder(msg, input) {
    const err = errorOf(msg);
    if (!err || !input || !input.InstrumentID) return;
    const ref = (input.OrderRef || "").trim();
    const key = `rejected:${ref || msg.RequestID || ++state.seq}`;
    if (state.orders.has(key)) return; // RspOrderInsert and ErrRtnOrderInsert of the same order
    const l = state.login || {};
    const o = Object.assign({}, input, {
      FrontID: l.FrontID, SessionID: l.SessionID, OrderRef: ref, OrderSysID: "",
      OrderStatus: "5", OrderSubmitStatus: "4", VolumeTraded: 0, VolumeTotal: 0,
      InsertTime: nowText(), StatusMsg: `${err.errorMsg.trim()} (ErrorID ${err.errorId})`,
      _seq: ++state.seq, _local: true,
    });
    state.orders.set(key, o);
    scheduleRender();
  }
  function orderKey(o) {
    return `${o.FrontID}:${o.SessionID}:${o.OrderRef}`;
  }
  function upsertOrder(o, push) {
    const key = orderKey(o);
    const old = state.orders.get(key);
    if (old) {
      // Pushes can arrive out of order around reconnects; a finished order never goes back.
      if (FINAL.has(old.OrderStatus) && !FINAL.has(o.OrderStatus)) return;
      if ((o.VolumeTraded || 0) < (old.VolumeTraded || 0)) return;
      o._seq = old._seq;
    } else {
      o._seq = ++state.seq;
    }
    state.orders.set(key, o);
    if (o.OrderStatus !== (old && old.OrderStatus)) state.cancelPending.delete(key);
    if (state.replacing.has(key) && FINAL.has(o.OrderStatus)) {
      const next = state.replacing.get(key);
      state.replacing.delete(key);
      if (o.OrderStatus === "5") sendOrder(next, "modify");
      else toast("warn", T("m_not_modified"), T("m_finished_first", { what: describeOrderFields(o), status: statusWords(o) }));
    }
    if (push) {
      const rejected = o.OrderStatus === "5" && o.OrderSubmitStatus === "4";
      const wasRejected = old && old.OrderStatus === "5" && old.OrderSubmitStatus === "4";
      if (rejected && !wasRejected) {
        toast("error", T("err_order", { what: describeOrderFields(o) }), o.StatusMsg || T("m_rejected_by_exchange"));
      }
      scheduleRefresh();
    }
    scheduleRender();
  }
  function upsertTrade(t, push) {
    const key = `${t.ExchangeID}:${t.TradeID}:${t.Direction}`;
    const old = state.trades.get(key);
    t._seq = old ? old._seq : ++state.seq;
    state.trades.set(key, t);
    if (push && !old) {
      toast("info", T("m_filled", { what: `${sideWords(t.Direction, t.OffsetFlag)} ${t.Volume} ${t.InstrumentID} @ ${fmtPrice(t.Price, t.InstrumentID)}` }));
      scheduleRefresh();
    }
    scheduleRender();
  }
  function cancelOrder(key) {
    const o = state.orders.get(key);
    if (!o || !state.login) return;
    const l = state.login;
    const action = {
      BrokerID: l.BrokerID, InvestorID: o.InvestorID || l.UserID, UserID: l.UserID,
      ActionFlag: "0", InstrumentID: o.InstrumentID, ExchangeID: o.ExchangeID,
    };
    if (o.OrderSysID && o.OrderSysID.trim()) {
      action.OrderSysID = o.OrderSysID;
    } else {
      action.FrontID = o.FrontID;
      action.SessionID = o.SessionID;
      action.OrderRef = o.OrderRef;
    }
    const label = T("q_cancel", { what: `${o.InstrumentID} ${(o.OrderSysID || o.OrderRef || "").trim()}` });
    const client = td.usable(label);
    if (!client) return;
    // CTP answers a cancel that works only with RtnOrder; a refusal comes to onPush.
    client.post({ MsgType: "ReqOrderAction", InputOrderAction: action });
    state.cancelPending.add(key);
    scheduleRender();
  }

  // ------------------------------------------------------------------ market data
  /** One webctp.js subscription per instrument; its ticks are read as they come (a row says
   * data-subscribed once webctp acknowledged it). */
  function subscribe(ids) {
    ids = ids.filter((id) => id && !state.subs.has(id));
    if (!ids.length) return;
    for (const id of ids) ensureQuoteRow(id);
    if (!md.ready || !md.open) return; // sent when md logs in (onMdLogin subscribes what the table shows)
    for (const id of ids) {
      const sub = md.client.subscribe([id]);
      state.subs.set(id, sub);
      sub.start().then(() => {
        if (state.subs.get(id) !== sub) return;
        const row = state.quoteRows.get(id);
        if (row) row.tr.dataset.subscribed = "true";
        log("", T("m_subscribed", { id }));
      }, (e) => {
        if (state.subs.get(id) !== sub) return;
        state.subs.delete(id);
        reportFailure("md", e, id, false);
        if (e instanceof ctp.CtpError) removeQuoteRow(id); // else subscribed again on the next login
        saveSubs();
      });
      readTicks(sub);
    }
    saveSubs();
  }
  async function readTicks(sub) {
    try {
      for await (const tick of sub) onDepth(tick);
    } catch (e) {
      // its subscription failed or the md socket closed: reported there
    }
  }
  function unsubscribe(id) {
    const sub = state.subs.get(id);
    removeQuoteRow(id);
    saveSubs();
    if (sub && md.open) sub.close().then(() => log("", T("m_unsubscribed", { id })), (e) => reportFailure("md", e, id, false));
  }
  function saveSubs() {
    if (state.creds) storageSet(`webctp.subs.${state.creds.UserID}`, [...state.quoteRows.keys()].join(","));
  }

  const QUOTE_FIELDS = ["last", "change", "pct", "bid", "bidvol", "ask", "askvol", "open", "high", "low",
    "volume", "oi", "upper", "lower", "presettle", "time"];
  const WIDE_ONLY = new Set(["bidvol", "askvol", "open", "high", "low", "volume", "oi", "upper", "lower", "presettle", "time"]);
  function ensureQuoteRow(id) {
    if (state.quoteRows.has(id)) return state.quoteRows.get(id);
    const cells = {};
    const nameSpan = el("span", { class: "inst-name" });
    // A row is one keyboard stop: Enter or Space selects it (chart, depth, ticket).
    const tr = el("tr", { "data-testid": "quote-row", "data-instrument": id, "data-subscribed": "false", tabindex: "0" },
      el("th", { scope: "row", "data-field": "instrument", class: "row-head" }, el("strong", { text: id }), nameSpan));
    const pxButtons = {};
    for (const f of QUOTE_FIELDS) {
      const cls = [f === "time" ? "" : "num", WIDE_ONLY.has(f) ? "wide-only" : "", f === "change" ? "phone-hide" : ""].join(" ").trim();
      const td_ = el("td", { class: cls, "data-field": f });
      if (f === "bid" || f === "ask") {
        const b = el("button", { type: "button", class: "px-btn", "data-testid": `quote-${f}`, text: "—", tabindex: "-1" });
        pxButtons[f] = b;
        td_.append(b);
      } else {
        td_.textContent = "—";
      }
      cells[f] = td_;
      tr.append(td_);
    }
    const unsub = el("button", { type: "button", class: "btn link", "data-testid": "unsubscribe",
      "aria-label": T("btn_unsub", { id }), title: T("btn_unsub", { id }), text: "✕", tabindex: "-1" });
    tr.append(el("td", null, unsub));
    unsub.addEventListener("click", (ev) => { ev.stopPropagation(); unsubscribe(id); });
    pxButtons.bid.addEventListener("click", (ev) => { ev.stopPropagation(); selectInstrument(id); fillTicketFromQuote(id, "1"); });
    pxButtons.ask.addEventListener("click", (ev) => { ev.stopPropagation(); selectInstrument(id); fillTicketFromQuote(id, "0"); });
    tr.addEventListener("click", () => { selectInstrument(id); fillTicketFromQuote(id, null); });
    tr.addEventListener("keydown", (ev) => {
      if (ev.target !== tr) return;
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        selectInstrument(id);
        fillTicketFromQuote(id, null);
      } else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        const next = ev.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling;
        if (next) next.focus();
      } else if (ev.key === "b" || ev.key === "s") {
        selectInstrument(id);
        fillTicketFromQuote(id, ev.key === "b" ? "0" : "1");
      } else if (ev.key === "Delete") {
        unsubscribe(id);
      }
    });
    const row = { tr, cells, nameSpan, pxButtons };
    state.quoteRows.set(id, row);
    insertSorted($("quotes-body"), tr, id);
    setQuoteName(row, id);
    $("quotes-empty").hidden = true;
    if (!state.selected) selectInstrument(id);
    const d = state.ticks.get(id);
    if (d) updateQuoteRow(row, d, null);
    updatePxTitles(row);
    return row;
  }
  function updatePxTitles(row) {
    row.pxButtons.bid.title = T("sell_at_bid");
    row.pxButtons.ask.title = T("buy_at_ask");
    row.pxButtons.bid.setAttribute("aria-label", `${T("sell_at_bid")} ${row.pxButtons.bid.textContent}`);
    row.pxButtons.ask.setAttribute("aria-label", `${T("buy_at_ask")} ${row.pxButtons.ask.textContent}`);
  }
  function insertSorted(tbody, tr, id) {
    for (const other of tbody.children) {
      if (other.dataset.instrument.localeCompare(id, "en", { numeric: true }) > 0) {
        tbody.insertBefore(tr, other);
        return;
      }
    }
    tbody.append(tr);
  }
  function setQuoteName(row, id) {
    const info = instrumentInfo(id);
    row.nameSpan.textContent = info ? `${info.InstrumentName || ""} ${info.ExchangeID}`.trim() : "";
  }
  function refreshQuoteNames() {
    for (const [id, row] of state.quoteRows) setQuoteName(row, id);
  }
  function removeQuoteRow(id) {
    const row = state.quoteRows.get(id);
    if (row) row.tr.remove();
    state.quoteRows.delete(id);
    state.subs.delete(id);
    $("quotes-empty").hidden = state.quoteRows.size > 0;
    if (state.selected === id) {
      const next = state.quoteRows.keys().next();
      selectInstrument(next.done ? null : next.value);
    }
  }
  function updateQuoteRow(row, d, prev) {
    const id = d.InstrumentID;
    const c = row.cells;
    const set = (f, text, cls) => {
      const cell = f === "bid" || f === "ask" ? row.pxButtons[f] : c[f];
      setText(cell, text);
      if (cls !== undefined) {
        cell.classList.toggle("up", cls === "up");
        cell.classList.toggle("down", cls === "down");
      }
    };
    const base = validPrice(d.PreSettlementPrice) ? d.PreSettlementPrice : d.PreClosePrice;
    const hasLast = validPrice(d.LastPrice);
    const change = hasLast && validPrice(base) ? d.LastPrice - base : null;
    const dir = change === null ? "" : signClass(change);
    set("last", fmtPrice(d.LastPrice, id), dir);
    set("change", change === null ? "—" : (change > 0 ? "+" : "") + change.toFixed(priceDecimals(id)), dir);
    set("pct", change === null ? "—" : (change > 0 ? "+" : "") + ((change / base) * 100).toFixed(2) + "%", dir);
    set("bid", fmtPrice(d.BidPrice1, id));
    set("bidvol", validPrice(d.BidPrice1) ? fmtInt(d.BidVolume1) : "—");
    set("ask", fmtPrice(d.AskPrice1, id));
    set("askvol", validPrice(d.AskPrice1) ? fmtInt(d.AskVolume1) : "—");
    set("volume", fmtInt(d.Volume));
    set("oi", fmtInt(d.OpenInterest));
    const vs = (x) => (validPrice(x) && validPrice(base) ? signClass(x - base) : "");
    set("open", fmtPrice(d.OpenPrice, id), vs(d.OpenPrice));
    set("high", fmtPrice(d.HighestPrice, id), vs(d.HighestPrice));
    set("low", fmtPrice(d.LowestPrice, id), vs(d.LowestPrice));
    set("upper", fmtPrice(d.UpperLimitPrice, id));
    set("lower", fmtPrice(d.LowerLimitPrice, id));
    set("presettle", fmtPrice(d.PreSettlementPrice, id));
    set("time", d.UpdateTime ? `${d.UpdateTime}.${String(d.UpdateMillisec || 0).padStart(3, "0")}` : "—");
    row.tr.dataset.last = hasLast ? String(d.LastPrice) : "";
    row.tr.dataset.bid = validPrice(d.BidPrice1) ? String(d.BidPrice1) : "";
    row.tr.dataset.ask = validPrice(d.AskPrice1) ? String(d.AskPrice1) : "";
    row.tr.dataset.time = c.time.textContent;
    updatePxTitles(row);
    if (prev && hasLast && validPrice(prev.LastPrice) && prev.LastPrice !== d.LastPrice) {
      const cls = d.LastPrice > prev.LastPrice ? "flash-up" : "flash-down";
      c.last.classList.remove("flash-up", "flash-down");
      void c.last.offsetWidth; // restart the animation
      c.last.classList.add(cls);
    }
  }
  function onDepth(d) {
    const id = d.InstrumentID;
    const prev = state.ticks.get(id) || null;
    state.ticks.set(id, d);
    const row = state.quoteRows.get(id);
    if (!row) return; // a tick in flight after an unsubscribe
    updateQuoteRow(row, d, prev);
    if (id === state.selected) {
      if (!chart.loaded && chart.instrument === id) loadBars(); // the first tick: the gateway has bars now
      else chartTick(d);
      renderDepth();
    }
    if (hasPosition(id)) scheduleRender();
    if (ticketInstrument() === id && (!prev || prev.UpperLimitPrice !== d.UpperLimitPrice || prev.LowerLimitPrice !== d.LowerLimitPrice)) {
      updateTicketLimits();
    }
  }

  $("sub-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = $("sub-input").value.trim();
    if (!id) return;
    if (!md.ready) {
      toast("error", T("m_sub_not_sent", { id }), T("m_md_not_logged_in"));
      return;
    }
    if (state.instrumentsLoaded && !state.instruments.has(id)) {
      toast("warn", T("m_subscribing", { id }), T("m_not_listed"));
    }
    subscribe([id]);
    selectInstrument(id);
    $("sub-input").value = "";
  });

  // ------------------------------------------------------------------ instruments list
  function renderInstrumentOptions() {
    const dl = $("instrument-options");
    dl.textContent = "";
    const frag = document.createDocumentFragment();
    const ids = [...state.instruments.keys()].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
    for (const id of ids) {
      const i = state.instruments.get(id);
      frag.append(el("option", { value: id, label: `${i.InstrumentName || ""} ${i.ExchangeID}`.trim() }));
    }
    dl.append(frag);
    $("instruments-count").textContent = String(ids.length);
  }
  const INST_SHOWN = 200;
  function renderInstruments() {
    const q = $("inst-search").value.trim().toLowerCase();
    const body = $("instruments-body");
    body.textContent = "";
    const all = [...state.instruments.values()];
    const hits = all.filter((i) => !q || [i.InstrumentID, i.InstrumentName, i.ProductID, i.ExchangeID]
      .some((s) => String(s || "").toLowerCase().includes(q)));
    hits.sort((a, b) => a.InstrumentID.localeCompare(b.InstrumentID, "en", { numeric: true }));
    const frag = document.createDocumentFragment();
    for (const i of hits.slice(0, INST_SHOWN)) {
      const subscribed = state.quoteRows.has(i.InstrumentID);
      const btn = el("button", { type: "button", class: "btn small", "data-testid": "instrument-subscribe", text: T(subscribed ? "btn_subscribed" : "btn_subscribe"), disabled: subscribed });
      btn.addEventListener("click", (ev) => {
        ev.stopPropagation();
        if (!md.ready) {
          toast("error", T("m_sub_not_sent", { id: i.InstrumentID }), T("m_md_not_logged_in"));
          return;
        }
        subscribe([i.InstrumentID]);
        selectInstrument(i.InstrumentID);
        btn.textContent = T("btn_subscribed");
        btn.disabled = true;
      });
      const tr = el("tr", { "data-testid": "instrument-row", "data-instrument": i.InstrumentID },
        el("td", null, el("strong", { text: i.InstrumentID })),
        el("td", { text: i.InstrumentName || "" }),
        el("td", { text: i.ExchangeID }),
        el("td", { text: PRODUCT_CLASS[i.ProductClass] || i.ProductClass }),
        el("td", { class: "num", text: String(i.VolumeMultiple) }),
        el("td", { class: "num", text: String(Number(i.PriceTick.toPrecision(10))) }),
        el("td", { text: i.ExpireDate || "" }),
        el("td", null, btn));
      tr.addEventListener("click", () => setTicketInstrument(i.InstrumentID));
      frag.append(tr);
    }
    body.append(frag);
    $("inst-search-info").textContent = state.instrumentsLoaded
      ? T("i_hits", { n: hits.length, all: all.length }) + (hits.length > INST_SHOWN ? T("i_first", { n: INST_SHOWN }) : "")
      : T("i_after_login");
  }
  let searchTimer = 0;
  $("inst-search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(renderInstruments, 120);
  });

  // ------------------------------------------------------------------ positions and account
  function hasPosition(id) {
    return state.positionRows.some((r) => r.InstrumentID === id && r.Position > 0);
  }
  /** One line per instrument and side; SHFE/INE send separate today and history rows. */
  function aggregatePositions() {
    const map = new Map();
    for (const r of state.positionRows) {
      const key = `${r.InstrumentID}|${r.PosiDirection}|${r.HedgeFlag}`;
      let a = map.get(key);
      if (!a) {
        a = { key, InstrumentID: r.InstrumentID, ExchangeID: r.ExchangeID, PosiDirection: r.PosiDirection, Position: 0, Today: 0,
          PositionCost: 0, OpenCost: 0, UseMargin: 0, PositionProfit: 0, LongFrozen: 0, ShortFrozen: 0,
          TodayClosable: 0, YdClosable: 0 };
        map.set(key, a);
      }
      a.Position += r.Position || 0;
      a.Today += r.TodayPosition || 0;
      a.PositionCost += r.PositionCost || 0;
      a.OpenCost += r.OpenCost || 0;
      a.UseMargin += r.UseMargin || 0;
      a.PositionProfit += r.PositionProfit || 0;
      a.LongFrozen += r.LongFrozen || 0;
      a.ShortFrozen += r.ShortFrozen || 0;
      // SHFE/INE send a today row (PositionDate 1) and a history row (2), each with its frozen lots.
      const free = (r.Position || 0) - ((r.PosiDirection === "3" ? r.LongFrozen : r.ShortFrozen) || 0);
      if (r.PositionDate === "2") a.YdClosable += Math.max(0, free);
      else a.TodayClosable += Math.max(0, free);
    }
    return [...map.values()].filter((a) => a.Position > 0)
      .sort((x, y) => x.InstrumentID.localeCompare(y.InstrumentID, "en", { numeric: true }) || x.PosiDirection.localeCompare(y.PosiDirection));
  }
  /** Put new rows in a table body drawn again on each change (positions move with every
   *  tick of a held instrument), keeping the keyboard focus: a focused control is found again
   *  in the new rows by its row's data-key and its own data-testid. */
  function refill(body, rows) {
    const a = document.activeElement;
    const tr = a && body.contains(a) ? a.closest("tr[data-key]") : null;
    const key = tr ? tr.dataset.key : null;
    const tid = tr ? a.dataset.testid : null;
    body.replaceChildren(...rows);
    if (key === null || !tid) return;
    const again = rows.find((r) => r.dataset.key === key);
    const node = again ? again.querySelector(`[data-testid="${tid}"]`) : null;
    if (node && !node.disabled) node.focus({ preventScroll: true });
  }
  function renderPositions() {
    const body = $("positions-body");
    const rows = aggregatePositions();
    const trs = [];
    let livePnl = 0;
    for (const a of rows) {
      const info = instrumentInfo(a.InstrumentID);
      const mult = info && info.VolumeMultiple ? info.VolumeMultiple : 1;
      const long = a.PosiDirection !== "3";
      const tick = state.ticks.get(a.InstrumentID);
      const last = tick && validPrice(tick.LastPrice) ? tick.LastPrice : null;
      // Position profit as CTP computes it: marked against PositionCost (yesterday lots at the
      // pre-settlement price), so the live figure matches the queried one at the same price.
      const pnl = last === null ? a.PositionProfit
        : long ? last * a.Position * mult - a.PositionCost : a.PositionCost - last * a.Position * mult;
      livePnl += pnl;
      const avg = a.OpenCost / (a.Position * mult);
      // Pending close orders freeze volume on the opposite side: sells close a long position.
      const closable = a.Position - (long ? a.ShortFrozen : a.LongFrozen);
      const side = POSI_DIRECTION[a.PosiDirection] || a.PosiDirection;
      const sideKey = a.PosiDirection === "3" ? "short" : a.PosiDirection === "2" ? "long" : "net";
      const closeBtn = el("button", { type: "button", class: "btn small", "data-testid": "position-close", text: T("btn_close"),
        disabled: !td.ready || closable <= 0, "aria-label": `${T("btn_close")} ${a.InstrumentID} ${T(sideKey)}` });
      const revBtn = el("button", { type: "button", class: "btn small", "data-testid": "position-reverse", text: T("btn_reverse"),
        disabled: !td.ready || closable < a.Position, "aria-label": `${T("btn_reverse")} ${a.InstrumentID} ${T(sideKey)}` });
      closeBtn.addEventListener("click", (ev) => { ev.stopPropagation(); closePositions([a], false); });
      revBtn.addEventListener("click", (ev) => { ev.stopPropagation(); closePositions([a], true); });
      const tr = el("tr", { "data-testid": "position-row", "data-key": a.key, "data-instrument": a.InstrumentID,
          "data-direction": side.toLowerCase(), "data-position": String(a.Position) },
        el("th", { scope: "row" }, el("strong", { text: a.InstrumentID })),
        el("td", { class: long ? "side-buy" : "side-sell", "data-field": "side", text: T(sideKey) }),
        el("td", { class: "num", "data-field": "position", text: fmtInt(a.Position) }),
        el("td", { class: "num", "data-field": "today", text: fmtInt(a.Today) }),
        el("td", { class: "num", "data-field": "yesterday", text: fmtInt(a.Position - a.Today) }),
        el("td", { class: "num", "data-field": "closable", text: fmtInt(closable) }),
        el("td", { class: "num", "data-field": "avg", text: isFinite(avg) ? avg.toFixed(priceDecimals(a.InstrumentID) + 1) : "—" }),
        el("td", { class: `num ${signClass(pnl)}`, "data-field": "pnl", text: fmtMoney(pnl),
          title: last === null ? T("pnl_queried") : T("pnl_at_last", { p: fmtPrice(last, a.InstrumentID) }) }),
        el("td", { class: "num", "data-field": "margin", text: fmtMoney(a.UseMargin) }),
        el("td", null, el("div", { class: "actions-cell" }, closeBtn, revBtn)));
      tr.addEventListener("click", () => {
        setTicketInstrument(a.InstrumentID);
        setTicketSide(long ? "1" : "0");
        const ex = info ? info.ExchangeID : a.ExchangeID;
        setTicketOffset(CLOSE_TODAY_EXCHANGES.has(ex) && a.Today > 0 ? "3" : "1");
        $("ticket-volume").value = String(Math.max(1, closable));
        updateTicketSummary();
      });
      trs.push(tr);
    }
    refill(body, trs);
    $("positions-count").textContent = rows.length ? String(rows.length) : "";
    $("close-all").disabled = !td.ready || !rows.length;
    state.livePnl = livePnl;
    renderAccount();
    updatePositionHint();
  }

  /** Orders that close aggregated position lines now: FAK limit orders at the day's limit price
   * on the far side (sell at the lower limit, buy at the upper; the exchange's price band where it
   * publishes one), the way terminals send a "market" close on SHFE/INE, which have no market
   * orders. Such an order trades at once at the book's own prices, best first, whatever the book
   * did since the last quote the page saw (a price taken from that quote can be behind the market
   * by the time the order arrives and would rest instead of closing); what the book cannot take
   * is cancelled by the exchange, never left resting. SHFE/INE: today's lots with Close today,
   * yesterday's with Close. With ``reverse`` the same volume is opened on the other side too. */
  function closeOrdersFor(a, reverse) {
    const id = a.InstrumentID;
    const info = instrumentInfo(id);
    const ex = info ? info.ExchangeID : a.ExchangeID;
    const long = a.PosiDirection !== "3";
    const dir = long ? "1" : "0";
    const price = sweepPrice(state.ticks.get(id), long ? "sell" : "buy");
    if (price === null) {
      toast("error", T("m_not_closed", { id }), T("m_no_quote"));
      return [];
    }
    const orders = [];
    const make = (offset, vol) => { if (vol > 0) orders.push(buildOrder({ id, dir, offset, type: "fak", price, vol })); };
    if (CLOSE_TODAY_EXCHANGES.has(ex)) {
      make("3", a.TodayClosable);
      make("1", a.YdClosable);
    } else {
      make("1", a.TodayClosable + a.YdClosable);
    }
    if (reverse && orders.length) make("0", a.Position);
    return orders;
  }
  /** The farthest price an order may carry today: the limit price on its side, or the price band
   * when the exchange publishes a narrower one. null without a quote of the instrument. */
  function sweepPrice(d, side) {
    if (!d) return null;
    const sell = side === "sell";
    const limit = sell ? d.LowerLimitPrice : d.UpperLimitPrice;
    const band = sell ? d.BandingLowerPrice : d.BandingUpperPrice;
    if (!validPrice(limit)) return null;
    if (!validPrice(band)) return limit;
    return sell ? Math.max(limit, band) : Math.min(limit, band);
  }
  function closePositions(list, reverse) {
    if (!td.ready) return;
    const orders = list.flatMap((a) => closeOrdersFor(a, reverse));
    placeOrders(orders, reverse ? "reverse" : "close");
  }
  $("close-all").addEventListener("click", () => closePositions(aggregatePositions(), false));
  /** Queried figures, with equity, available, position P/L and risk moved by live prices between
   * queries: equity = queried Balance - queried PositionProfit + live position P/L. */
  function renderAccount() {
    const a = state.account;
    const set = (id, v, signed) => {
      const node = $(id);
      node.textContent = a ? fmtMoney(v) : "—";
      if (signed) {
        node.classList.toggle("up", !!a && v > 0);
        node.classList.toggle("down", !!a && v < 0);
      }
    };
    const live = a && state.login ? state.livePnl || 0 : 0;
    const shift = a ? live - (a.PositionProfit || 0) : 0;
    const equity = a ? a.Balance + shift : 0;
    set("account-equity", equity);
    set("account-available", a && a.Available + shift);
    set("account-live-pnl", live, true);
    set("account-balance", a && a.Balance);
    set("account-margin", a && a.CurrMargin);
    set("account-frozen", a && (a.FrozenMargin || 0) + (a.FrozenCash || 0) + (a.FrozenCommission || 0));
    set("account-close-profit", a && a.CloseProfit, true);
    set("account-commission", a && a.Commission);
    set("account-prebalance", a && a.PreBalance);
    const risk = $("account-risk");
    const ratio = a && equity > 0 ? (a.CurrMargin / equity) * 100 : null;
    risk.textContent = ratio === null ? "—" : `${ratio.toFixed(2)}%`;
    risk.classList.toggle("high", ratio !== null && ratio >= 80);
    $("account-asof").textContent = a && state.accountAt ? `${T("live")} · ${T("asof", { t: state.accountAt })}` : "";
  }

  function renderOrders() {
    const body = $("orders-body");
    const workingOnly = $("orders-working-only").checked;
    const list = [...state.orders.entries()].sort((x, y) => y[1]._seq - x[1]._seq);
    const trs = [];
    let working = 0;
    for (const [key, o] of list) {
      const isWorking = WORKING.has(o.OrderStatus);
      if (isWorking) working += 1;
      if (workingOnly && !isWorking) continue;
      const words = statusWords(o);
      const cls = statusClass(o);
      let cancel = null;
      if (isWorking) {
        const pendingCancel = state.cancelPending.has(key);
        const c = el("button", { type: "button", class: "btn small danger", "data-testid": "cancel-order", disabled: pendingCancel || !td.ready,
          text: pendingCancel ? T("btn_cancelling") : T("btn_cancel"), "aria-label": `${T("btn_cancel")} ${describeOrderFields(o)}` });
        c.addEventListener("click", () => cancelOrder(key));
        const m = el("button", { type: "button", class: "btn small", "data-testid": "modify-order", disabled: pendingCancel || !td.ready || o.OrderPriceType === "1",
          text: T("btn_modify"), "aria-label": `${T("btn_modify")} ${describeOrderFields(o)}` });
        m.addEventListener("click", () => startModify(key));
        cancel = el("div", { class: "actions-cell" }, c, m);
      }
      const off = OFFSET[(o.CombOffsetFlag || "")[0]] || o.CombOffsetFlag;
      const msgText = o.StatusMsg || "";
      const sysId = (o.OrderSysID || "").trim();
      const tr = el("tr", { "data-testid": "order-row", "data-key": key, "data-status": o.OrderStatus, "data-instrument": o.InstrumentID,
          "data-direction": o.Direction, "data-ordersysid": sysId,
          title: `OrderSysID ${sysId || "-"} · OrderRef ${o.OrderRef} · ${SUBMIT_STATUS[o.OrderSubmitStatus] || ""}` },
        el("td", null, cancel),
        el("td", { text: o.InsertTime || "" }),
        el("td", null, el("strong", { text: o.InstrumentID })),
        el("td", { class: o.Direction === "0" ? "side-buy" : "side-sell", "data-field": "side", text: sideWords(o.Direction, (o.CombOffsetFlag || "")[0]) }),
        el("td", { class: "num", text: o.OrderPriceType === "1" ? "market" : fmtPrice(o.LimitPrice, o.InstrumentID) }),
        el("td", { class: "num", "data-field": "filled", text: `${o.VolumeTraded}/${o.VolumeTotalOriginal}` }),
        el("td", { "data-field": "type", text: T(`ot_${orderTypeOf(o)}`) }),
        el("td", { "data-field": "status" }, el("span", { class: `status ${cls}`, text: words })),
        el("td", { class: `msg${cls === "rejected" ? " bad" : ""}`, "data-field": "message", text: msgText, title: msgText }));
      if (o._local) tr.dataset.local = "true";
      tr.addEventListener("click", (ev) => {
        if (ev.target.closest("button")) return;
        setTicketInstrument(o.InstrumentID);
      });
      trs.push(tr);
    }
    refill(body, trs);
    $("orders-count").textContent = state.orders.size ? `${working}/${state.orders.size}` : "";
    updateTicketEnabled();
    renderDepth();
  }
  function renderTrades() {
    const body = $("trades-body");
    const list = [...state.trades.values()].sort((x, y) => y._seq - x._seq);
    body.textContent = "";
    for (const t of list) {
      body.append(el("tr", { "data-testid": "trade-row", "data-instrument": t.InstrumentID, "data-direction": t.Direction },
        el("td", { text: t.TradeTime || "" }),
        el("td", null, el("strong", { text: t.InstrumentID })),
        el("td", { class: t.Direction === "0" ? "side-buy" : "side-sell", "data-field": "side",
          text: sideWords(t.Direction, t.OffsetFlag) }),
        el("td", { class: "num", "data-field": "price", text: fmtPrice(t.Price, t.InstrumentID) }),
        el("td", { class: "num", "data-field": "volume", text: String(t.Volume) }),
        el("td", { text: (t.TradeID || "").trim() }),
        el("td", { text: (t.OrderSysID || "").trim() })));
    }
    $("trades-count").textContent = list.length ? String(list.length) : "";
  }
  $("orders-working-only").addEventListener("change", () => scheduleRender());
  $("cancel-all").addEventListener("click", async () => {
    const keys = [...state.orders.entries()].filter(([k, o]) => WORKING.has(o.OrderStatus) && !state.cancelPending.has(k)).map(([k]) => k);
    if (!keys.length) return;
    if (!(await confirmOrders(keys.map((k) => T("c_cancel", { what: describeOrderFields(state.orders.get(k)) }))))) return;
    for (const k of keys) cancelOrder(k);
  });

  let renderQueued = false;
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      renderOrders();
      renderTrades();
      renderPositions();
    });
  }

  // ------------------------------------------------------------------ tabs
  /* WAI-ARIA tabs: one tab stop per tab list (roving tabindex), arrows/Home/End move and select. */
  function selectTab(btn, focus) {
    const list = btn.closest("[role=tablist]");
    for (const b of list.querySelectorAll("[role=tab]")) {
      const on = b === btn;
      b.classList.toggle("active", on);
      b.setAttribute("aria-selected", on ? "true" : "false");
      b.tabIndex = on ? 0 : -1;
    }
    if (focus) btn.focus();
    if (btn.dataset.mtab) {
      showMobilePage(btn.dataset.mtab);
      return;
    }
    const panel = btn.closest(".tabs-panel");
    for (const pane of panel.querySelectorAll(".tab-body")) pane.hidden = pane.dataset.pane !== btn.dataset.tab;
    if (btn.dataset.tab === "instruments") renderInstruments();
  }
  for (const list of document.querySelectorAll("[role=tablist]")) {
    list.addEventListener("click", (ev) => {
      const btn = ev.target.closest("[role=tab]");
      if (btn) selectTab(btn, false);
    });
    list.addEventListener("keydown", (ev) => {
      const tabs = [...list.querySelectorAll("[role=tab]")];
      const i = tabs.indexOf(document.activeElement);
      if (i < 0) return;
      let j = null;
      if (ev.key === "ArrowRight") j = (i + 1) % tabs.length;
      else if (ev.key === "ArrowLeft") j = (i - 1 + tabs.length) % tabs.length;
      else if (ev.key === "Home") j = 0;
      else if (ev.key === "End") j = tabs.length - 1;
      if (j === null) return;
      ev.preventDefault();
      selectTab(tabs[j], true);
    });
  }
  function tabById(id) {
    const b = $(id);
    if (b) selectTab(b, false);
  }
  /** Phone: one section at a time (bottom tab bar); desktop shows them all. */
  function showMobilePage(page) {
    document.body.dataset.mpage = page;
    for (const b of document.querySelectorAll(".mtab")) {
      const on = b.dataset.mtab === page;
      b.setAttribute("aria-selected", on ? "true" : "false");
      b.tabIndex = on ? 0 : -1;
    }
  }

  // ------------------------------------------------------------------ language and settings
  function setLanguage(lang) {
    I18N.apply(lang);
    storageSet("webctp.lang", lang);
    const b = $("lang-button");
    b.textContent = T("lang_switch");
    b.setAttribute("aria-label", T("lang_switch_label"));
    b.lang = lang === "zh" ? "en" : "zh";
    updateTicketSummary();
    ticketInstrumentWords();
    renderSessionInfo();
    renderBackendInfo();
    updateTicketLimits();
    updatePositionHint();
    if (state.instrumentsLoaded) renderInstruments();
    describeChart();
    for (const [api, b] of Object.entries(linkBadge)) {
      b.dataset.api = api;
      b.textContent = b.title = linkText(b);
    }
    for (const row of state.quoteRows.values()) updatePxTitles(row);
    renderDepth();
    scheduleRender();
  }
  $("lang-button").addEventListener("click", () => setLanguage(I18N.lang === "zh" ? "en" : "zh"));
  $("confirm-orders").checked = storageGet("webctp.confirm") === "1";
  $("confirm-orders").addEventListener("change", (ev) => storageSet("webctp.confirm", ev.target.checked ? "1" : "0"));

  // ------------------------------------------------------------------ chart
  /* Candles from the gateway's GetBars extension (history), continued live from the ticks with the
     gateway's rule: the minute of the tick's UpdateTime, volume from the growth of the cumulative
     Volume. Times are exchange-local wall time as naive epoch seconds, so the chart (which shows
     UTC) shows exchange time. */
  const PERIOD_S = { "1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "1d": 86400 };
  const chartBox = $("chart");
  const chart = {
    api: null, candles: null, volume: null, period: "1m", instrument: null,
    bars: [], // [{time, open, high, low, close, volume}] of the shown instrument and period
    loading: null, // instrument|period of the GetBars in flight
    lastVolume: null, lastStamp: 0,
  };
  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }
  function initChart() {
    const LW = window.LightweightCharts;
    if (!LW || chart.api) return;
    chart.api = LW.createChart(chartBox, {
      autoSize: true,
      layout: { background: { color: cssVar("--panel") }, textColor: cssVar("--muted"), fontSize: 11,
        attributionLogo: true },
      grid: { vertLines: { color: "#222b35" }, horzLines: { color: "#222b35" } },
      rightPriceScale: { borderColor: cssVar("--line") },
      timeScale: { borderColor: cssVar("--line"), timeVisible: true, secondsVisible: false },
      crosshair: { mode: LW.CrosshairMode.Normal },
      localization: { locale: "en-GB" },
    });
    // Chinese convention: red candles rise, green fall.
    chart.candles = chart.api.addSeries(LW.CandlestickSeries, {
      upColor: cssVar("--up"), downColor: cssVar("--down"), borderVisible: false,
      wickUpColor: cssVar("--up"), wickDownColor: cssVar("--down"),
    });
    chart.volume = chart.api.addSeries(LW.HistogramSeries, { priceFormat: { type: "volume" }, priceScaleId: "vol" });
    chart.api.priceScale("vol").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    chart.candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.25 } });
    chart.api.subscribeCrosshairMove((param) => {
      const bar = param && param.time !== undefined ? param.seriesData.get(chart.candles) : null;
      showLegend(bar ? Object.assign({ time: param.time }, bar, { volume: (param.seriesData.get(chart.volume) || {}).value }) : null);
    });
  }
  function fmtBarTime(t) {
    const d = new Date(t * 1000);
    const p = (n) => String(n).padStart(2, "0");
    const day = `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}`;
    return chart.period === "1d" ? day : `${day} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`;
  }
  function showLegend(bar) {
    const id = chart.instrument;
    const b = bar || chart.bars[chart.bars.length - 1];
    $("chart-legend").textContent = b && id
      ? `${fmtBarTime(b.time)} O ${fmtPrice(b.open, id)} H ${fmtPrice(b.high, id)} L ${fmtPrice(b.low, id)} C ${fmtPrice(b.close, id)} V ${fmtInt(b.volume || 0)}`
      : "";
  }
  function describeChart() {
    const id = chart.instrument;
    const n = chart.bars.length;
    chartBox.dataset.bars = String(n);
    chartBox.dataset.instrument = id || "";
    chartBox.dataset.period = chart.period;
    $("chart-empty").hidden = n > 0;
    if (!id || !n) {
      $("chart-summary").textContent = T("chart_alt_none");
      return;
    }
    const last = chart.bars[n - 1];
    let hi = -Infinity, lo = Infinity;
    for (const b of chart.bars) { hi = Math.max(hi, b.high); lo = Math.min(lo, b.low); }
    const text = T("chart_alt", { id, period: chart.period, n, close: fmtPrice(last.close, id), high: fmtPrice(hi, id), low: fmtPrice(lo, id) });
    $("chart-summary").textContent = text;
  }
  function setChartData() {
    if (!chart.api) return;
    const up = cssVar("--up"), down = cssVar("--down");
    chart.candles.setData(chart.bars.map((b) => ({ time: b.time, open: b.open, high: b.high, low: b.low, close: b.close })));
    chart.volume.setData(chart.bars.map((b) => ({ time: b.time, value: b.volume,
      color: b.close >= b.open ? up + "99" : down + "99" })));
    const info = instrumentInfo(chart.instrument);
    const tick = info ? info.PriceTick : 0.01;
    chart.candles.applyOptions({ priceFormat: { type: "price", precision: decimalsOf(tick), minMove: tick } });
    describeChart();
    showLegend(null);
  }
  function loadBars() {
    const id = chart.instrument;
    if (!id || !md.ready || !md.open) return;
    const key = `${id}|${chart.period}`;
    if (chart.loading === key) return;
    chart.loading = key;
    md.client.bars(id, chart.period, 1000).then((rows) => {
      if (chart.loading === key) chart.loading = null;
      if (`${chart.instrument}|${chart.period}` !== key) return;
      chart.bars = rows.map((r) => ({ time: r[0], open: r[1], high: r[2], low: r[3], close: r[4], volume: r[5] }));
      chart.loaded = key;
      chart.lastVolume = null;
      setChartData();
      chart.api && chart.api.timeScale().scrollToRealTime();
    }, (e) => {
      if (chart.loading === key) chart.loading = null;
      reportFailure("md", e, T("q_bars", { id }), false);
    });
  }
  /** A tick stamp in naive exchange epoch seconds (the gateway's tick_stamp rule). */
  function tickStamp(updateTime) {
    const m = /^(\d\d):(\d\d):(\d\d)$/.exec(updateTime || "");
    if (!m) return null;
    const now = exchangeNowSec();
    let stamp = now - (now % 86400) + Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
    if (stamp - now > 43200) stamp -= 86400;
    else if (now - stamp > 43200) stamp += 86400;
    return stamp;
  }
  function tradingDayStamp(day) {
    const m = /^(\d{4})(\d\d)(\d\d)$/.exec(day || "");
    return m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) / 1000 : null;
  }
  /** Continue the shown bars with a tick of the shown instrument. */
  function chartTick(d) {
    if (!chart.api || d.InstrumentID !== chart.instrument || chart.loaded !== `${chart.instrument}|${chart.period}`) return;
    if (!validPrice(d.LastPrice)) return;
    const stamp = tickStamp(d.UpdateTime);
    if (stamp === null || stamp < chart.lastStamp) return;
    chart.lastStamp = stamp;
    const delta = chart.lastVolume === null ? 0 : Math.max(0, (d.Volume || 0) - chart.lastVolume);
    chart.lastVolume = d.Volume || 0;
    const p = d.LastPrice;
    let start;
    if (chart.period === "1d") start = tradingDayStamp(d.TradingDay);
    else start = stamp - (stamp % PERIOD_S[chart.period]);
    if (start === null) return;
    const bars = chart.bars;
    let last = bars[bars.length - 1];
    if (last && last.time === start) {
      last.high = Math.max(last.high, p); last.low = Math.min(last.low, p); last.close = p; last.volume += delta;
    } else if (!last || last.time < start) {
      last = { time: start, open: p, high: p, low: p, close: p, volume: delta };
      bars.push(last);
      if (bars.length > 3000) bars.splice(0, bars.length - 3000);
    } else {
      return;
    }
    chart.candles.update({ time: last.time, open: last.open, high: last.high, low: last.low, close: last.close });
    chart.volume.update({ time: last.time, value: last.volume, color: (last.close >= last.open ? cssVar("--up") : cssVar("--down")) + "99" });
    describeChart();
    showLegend(null);
  }
  function showChart(id) {
    initChart();
    if (chart.instrument === id && chart.loaded === `${id}|${chart.period}`) return;
    chart.instrument = id;
    chart.bars = [];
    chart.loaded = null;
    chart.lastStamp = 0;
    chart.lastVolume = null;
    setChartData();
    if (id && state.ticks.has(id)) loadBars(); // else on the first tick (the gateway keeps bars from ticks it saw)
  }
  function setPeriod(period) {
    if (!PERIOD_S[period]) return;
    chart.period = period;
    for (const b of document.querySelectorAll("#chart-periods .period")) {
      const on = b.dataset.period === period;
      b.setAttribute("aria-checked", on ? "true" : "false");
      b.tabIndex = on ? 0 : -1;
    }
    storageSet("webctp.period", period);
    const id = chart.instrument;
    chart.instrument = null;
    showChart(id);
  }
  $("chart-periods").addEventListener("click", (ev) => {
    const b = ev.target.closest(".period");
    if (b) setPeriod(b.dataset.period);
  });
  $("chart-periods").addEventListener("keydown", (ev) => {
    const keys = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    if (!(ev.key in keys)) return;
    ev.preventDefault();
    const list = Object.keys(PERIOD_S);
    const next = list[(list.indexOf(chart.period) + keys[ev.key] + list.length) % list.length];
    setPeriod(next);
    document.querySelector(`#chart-periods [data-period="${next}"]`).focus();
  });

  function selectInstrument(id) {
    state.selected = id;
    for (const [rid, row] of state.quoteRows) {
      row.tr.classList.toggle("selected", rid === id);
      if (rid === id) row.tr.setAttribute("aria-current", "true");
      else row.tr.removeAttribute("aria-current");
    }
    $("chart-instrument").textContent = id || "";
    $("depth-instrument").textContent = id || "";
    showChart(id);
    renderDepth();
  }

  // ------------------------------------------------------------------ depth
  /** Five levels a side of the selected instrument; the user's working orders at each price.
   *  The ten rows are made once and updated in place on each tick, so a depth price that has
   *  the keyboard focus (or the pointer) keeps it while the market moves. */
  const depthRows = []; // asks 5..1, then bids 1..5; emptied when no instrument has a tick
  function depthRow(side, n) {
    const r = { side, n, id: null, price: null };
    const dir = side === "Ask" ? "0" : "1"; // an ask price buys, a bid price sells
    r.btn = el("button", { type: "button", class: "px-btn", "data-testid": "depth-price", "data-side": side.toLowerCase(), "data-level": String(n) });
    r.btn.addEventListener("click", () => { if (r.id && validPrice(r.price)) fillTicketAt(r.id, dir, r.price); });
    r.label = el("th", { scope: "row", class: side === "Ask" ? "side-sell" : "side-buy" });
    r.px = el("td", { class: "num" });
    r.vol = el("span");
    r.bar = el("td", { class: "num bar" }, r.vol);
    r.mine = el("td", { class: "num mine", "data-testid": "depth-mine" });
    r.tr = el("tr", { class: side === "Ask" ? "ask-row" : "bid-row", "data-testid": "depth-row", "data-side": side.toLowerCase(), "data-level": String(n) },
      r.label, r.px, r.bar, r.mine);
    return r;
  }
  function renderDepth() {
    const body = $("depth-body");
    const id = state.selected;
    const d = id ? state.ticks.get(id) : null;
    if (!d) {
      body.textContent = "";
      depthRows.length = 0;
      return;
    }
    if (!depthRows.length) {
      for (let n = 5; n >= 1; n--) depthRows.push(depthRow("Ask", n));
      for (let n = 1; n <= 5; n++) depthRows.push(depthRow("Bid", n));
      depthRows[4].tr.classList.add("mid");
      body.textContent = "";
      for (const r of depthRows) body.append(r.tr);
    }
    const mine = new Map(); // "0|price" buy orders, "1|price" sell orders -> lots left
    for (const o of state.orders.values()) {
      if (o.InstrumentID !== id || !WORKING.has(o.OrderStatus) || o.OrderPriceType === "1") continue;
      const k = `${o.Direction}|${o.LimitPrice}`;
      mine.set(k, (mine.get(k) || 0) + (o.VolumeTotal || o.VolumeTotalOriginal - (o.VolumeTraded || 0)));
    }
    let maxVol = 1;
    for (let n = 1; n <= 5; n++) maxVol = Math.max(maxVol, d[`AskVolume${n}`] || 0, d[`BidVolume${n}`] || 0);
    for (const r of depthRows) {
      const { side, n } = r;
      const price = d[`${side}Price${n}`];
      const vol = d[`${side}Volume${n}`] || 0;
      const has = validPrice(price);
      const own = has ? mine.get(`${side === "Ask" ? "1" : "0"}|${price}`) || 0 : 0;
      const label = T(side === "Ask" ? "ask_level" : "bid_level", { n });
      r.id = id;
      r.price = has ? price : null;
      setText(r.label, label);
      if (has) {
        const text = fmtPrice(price, id);
        setText(r.btn, text);
        setAttr(r.btn, "data-price", String(price));
        setAttr(r.btn, "aria-label", `${label} ${text}: ${side === "Ask" ? T("buy_at_ask") : T("sell_at_bid")}`);
        if (r.btn.parentNode !== r.px) r.px.replaceChildren(r.btn);
      } else if (r.btn.parentNode === r.px || !r.px.textContent) {
        r.px.replaceChildren("—"); // an empty level: nothing to click
      }
      r.bar.style.setProperty("--w", `${has ? Math.round((vol / maxVol) * 100) : 0}%`);
      setText(r.vol, has ? fmtInt(vol) : "");
      setText(r.mine, own ? String(own) : "");
    }
  }

  // ------------------------------------------------------------------ order ticket
  const ticket = {
    instrument: $("ticket-instrument"),
    price: $("ticket-price"),
    volume: $("ticket-volume"),
    type: $("ticket-type"),
    submit: $("ticket-submit"),
  };
  function ticketInstrument() {
    return ticket.instrument.value.trim();
  }
  function ticketSide() {
    return document.querySelector('input[name="direction"]:checked').value;
  }
  function ticketOffset() {
    return document.querySelector('input[name="offset"]:checked').value;
  }
  function setTicketSide(v) {
    document.querySelector(`input[name="direction"][value="${v}"]`).checked = true;
    updateTicketSummary();
  }
  function setTicketOffset(v) {
    const input = document.querySelector(`input[name="offset"][value="${v}"]`);
    if (input && !input.closest("[hidden]")) input.checked = true;
    updateTicketSummary();
  }
  function setTicketInstrument(id) {
    if (ticketInstrument() !== id) {
      ticket.instrument.value = id;
      onTicketInstrumentChange(true);
    }
  }
  /** Another instrument in the ticket: back to the safe defaults (Buy, Open, Limit, 1 lot), so a
   * side, offset or size chosen for one instrument never goes out for another. */
  let ticketShown = "";
  function resetTicketIfNew() {
    const id = ticketInstrument();
    if (id === ticketShown) return false;
    ticketShown = id;
    document.querySelector('input[name="direction"][value="0"]').checked = true;
    document.querySelector('input[name="offset"][value="0"]').checked = true;
    ticket.type.value = "limit";
    ticket.volume.value = "1";
    if (state.modifying) stopModify();
    return true;
  }
  /** Depth click: the level's price, buying at an ask or selling at a bid. */
  function fillTicketAt(id, side, price) {
    setTicketInstrument(id);
    setTicketSide(side);
    ticket.price.value = fmtPrice(price, id);
    validateTicketPrice();
    updateTicketSummary();
  }
  function fillTicketFromQuote(id, side) {
    setTicketInstrument(id);
    const d = state.ticks.get(id);
    let price = null;
    if (d) {
      if (side === "0") price = d.AskPrice1;
      else if (side === "1") price = d.BidPrice1;
      else price = d.LastPrice;
    }
    if (side !== null) setTicketSide(side);
    if (validPrice(price)) ticket.price.value = fmtPrice(price, id);
    validateTicketPrice();
    updateTicketSummary();
  }
  function ticketBounds() {
    const id = ticketInstrument();
    const info = instrumentInfo(id);
    const d = state.ticks.get(id);
    return {
      id,
      info,
      tick: info ? info.PriceTick : 0,
      lower: d && validPrice(d.LowerLimitPrice) ? d.LowerLimitPrice : null,
      upper: d && validPrice(d.UpperLimitPrice) ? d.UpperLimitPrice : null,
    };
  }
  function onTicketInstrumentChange(fillPrice) {
    resetTicketIfNew();
    const id = ticketInstrument();
    const info = instrumentInfo(id);
    const ex = info ? info.ExchangeID : "";
    const closeToday = CLOSE_TODAY_EXCHANGES.has(ex);
    $("ticket-closetoday-item").hidden = !closeToday;
    if (!closeToday && ticketOffset() === "3") setTicketOffset("1");
    const market = $("ticket-type-market");
    market.disabled = NO_MARKET_EXCHANGES.has(ex);
    if (market.disabled && ticket.type.value === "market") ticket.type.value = "limit";
    ticketInstrumentWords();
    const d = state.ticks.get(id);
    if (fillPrice && d) {
      const p = validPrice(d.LastPrice) ? d.LastPrice : d.PreSettlementPrice;
      if (validPrice(p)) ticket.price.value = fmtPrice(p, id);
    }
    if (info && !d) queryDepth(id);
    updateTicketLimits();
    updatePositionHint();
    updateTicketType();
  }
  /** The ticket's words that depend on the instrument (again after a language switch). */
  function ticketInstrumentWords() {
    const id = ticketInstrument();
    const info = instrumentInfo(id);
    const ex = info ? info.ExchangeID : "";
    $("ticket-exchange").textContent = info ? `${ex}${info.InstrumentName ? " · " + info.InstrumentName : ""} · ×${info.VolumeMultiple}` : id ? T("t_unknown") : "";
    const closeToday = CLOSE_TODAY_EXCHANGES.has(ex);
    const closeText = $("ticket-close-text");
    closeText.dataset.i18n = closeToday ? "close_yd" : "close_off";
    closeText.textContent = T(closeText.dataset.i18n);
    $("ticket-close").parentElement.title = closeToday ? T("t_close_yd_hint", { ex }) : "";
    const market = $("ticket-type-market");
    market.textContent = market.disabled ? T("t_market_not_on", { ex }) : T("type_market");
  }
  function updateTicketLimits() {
    const b = ticketBounds();
    const node = $("ticket-limits");
    node.dataset.tick = b.tick ? String(b.tick) : "";
    node.dataset.lower = b.lower === null ? "" : String(b.lower);
    node.dataset.upper = b.upper === null ? "" : String(b.upper);
    ticket.price.step = b.tick ? String(b.tick) : "any";
    if (!b.info) {
      node.textContent = b.id ? T("t_not_listed") : "";
    } else {
      const dec = decimalsOf(b.tick);
      const limits = b.lower !== null && b.upper !== null ? `${T("t_limits", { lo: b.lower.toFixed(dec), hi: b.upper.toFixed(dec) })} · ` : "";
      node.textContent = `${limits}${T("t_tick", { tick: Number(b.tick.toPrecision(10)) })}`;
    }
    validateTicketPrice();
  }
  function updatePositionHint() {
    const id = ticketInstrument();
    const node = $("ticket-position-hint");
    if (!id || !state.login) { node.textContent = ""; return; }
    const rows = aggregatePositions().filter((a) => a.InstrumentID === id);
    const parts = rows.map((a) => T("t_holding_line", { side: T(a.PosiDirection === "3" ? "short" : a.PosiDirection === "2" ? "long" : "net"),
      n: a.Position, today: a.Today, yd: a.Position - a.Today }));
    node.textContent = parts.length ? `${T("holding")}: ${parts.join(" · ")}` : T("no_position");
  }
  function updateTicketType() {
    const isMarket = ticket.type.value === "market";
    ticket.price.disabled = isMarket;
    $("ticket-price-up").disabled = isMarket;
    $("ticket-price-down").disabled = isMarket;
    validateTicketPrice();
    updateTicketSummary();
  }
  function stepPrice(dir) {
    const b = ticketBounds();
    const tick = b.tick || 1;
    let p = parseFloat(ticket.price.value);
    if (!isFinite(p)) {
      const d = state.ticks.get(b.id);
      p = d && validPrice(d.LastPrice) ? d.LastPrice : 0;
    }
    p = roundToTick(p + dir * tick, tick);
    if (b.upper !== null) p = Math.min(p, b.upper);
    if (b.lower !== null) p = Math.max(p, b.lower);
    ticket.price.value = p.toFixed(decimalsOf(tick));
    validateTicketPrice();
    updateTicketSummary();
  }
  /** Returns an error text, or "" when the price is acceptable. */
  function priceProblem() {
    if (ticket.type.value === "market") return "";
    const b = ticketBounds();
    const p = parseFloat(ticket.price.value);
    if (!isFinite(p) || p <= 0) return T("p_enter_price");
    if (b.tick && !onTick(p, b.tick)) return T("p_not_on_tick", { p, tick: Number(b.tick.toPrecision(10)) });
    if (b.upper !== null && p > b.upper + 1e-9) return T("p_above", { p, limit: b.upper });
    if (b.lower !== null && p < b.lower - 1e-9) return T("p_below", { p, limit: b.lower });
    return "";
  }
  function validateTicketPrice() {
    const problem = priceProblem();
    ticket.price.classList.toggle("invalid", !!problem && ticket.price.value !== "");
    ticket.price.title = problem;
    return problem;
  }
  function ticketVolume() {
    const v = Number(ticket.volume.value);
    return Number.isInteger(v) ? v : NaN;
  }
  function offsetWords(off, ex) {
    if (off === "0") return T("open_off");
    if (off === "3") return T("close_today");
    return CLOSE_TODAY_EXCHANGES.has(ex) && off === "1" ? T("close_yd") : T("close_off");
  }
  function updateTicketSummary() {
    const side = ticketSide();
    const off = ticketOffset();
    const englishWords = `${DIRECTION[side]} ${OFFSET[off].toLowerCase()}`;
    const info = instrumentInfo(ticketInstrument());
    const words = I18N.lang === "en" ? englishWords : `${T(side === "0" ? "buy" : "sell")}${offsetWords(off, info ? info.ExchangeID : "")}`;
    ticket.submit.textContent = state.modifying ? `${T("replace")}: ${words}` : words;
    ticket.submit.dataset.words = englishWords;
    ticket.submit.classList.toggle("buy", side === "0");
    ticket.submit.classList.toggle("sell", side === "1");
    const id = ticketInstrument();
    const type = ticket.type.value;
    const price = type === "market" ? T("t_at_market") : `@ ${ticket.price.value || "?"}`;
    const typeText = T(`t_kind_${type}`);
    $("ticket-summary").textContent = id ? `${words} ${ticket.volume.value || "?"} ${id} ${price} (${typeText})` : "";
  }
  function updateTicketEnabled() {
    ticket.submit.disabled = !td.ready || sending.busy;
    ticket.submit.title = td.ready ? "" : "log in first";
    const working = [...state.orders.values()].some((o) => WORKING.has(o.OrderStatus));
    $("cancel-all").disabled = !td.ready || !working;
  }

  $("ticket-price-up").addEventListener("click", () => stepPrice(1));
  $("ticket-price-down").addEventListener("click", () => stepPrice(-1));
  $("ticket-volume-up").addEventListener("click", () => { ticket.volume.value = String(Math.max(1, (ticketVolume() || 0) + 1)); updateTicketSummary(); });
  $("ticket-volume-down").addEventListener("click", () => { ticket.volume.value = String(Math.max(1, (ticketVolume() || 2) - 1)); updateTicketSummary(); });
  ticket.price.addEventListener("input", () => { validateTicketPrice(); updateTicketSummary(); });
  ticket.price.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowUp" || ev.key === "ArrowDown") {
      ev.preventDefault();
      stepPrice(ev.key === "ArrowUp" ? 1 : -1);
    }
  });
  ticket.price.addEventListener("blur", () => {
    const b = ticketBounds();
    const p = parseFloat(ticket.price.value);
    if (isFinite(p) && b.tick && !onTick(p, b.tick)) {
      ticket.price.value = roundToTick(p, b.tick).toFixed(decimalsOf(b.tick));
      validateTicketPrice();
      updateTicketSummary();
    }
  });
  ticket.volume.addEventListener("input", updateTicketSummary);
  ticket.type.addEventListener("change", updateTicketType);
  ticket.instrument.addEventListener("change", () => onTicketInstrumentChange(true));
  let instTimer = 0;
  ticket.instrument.addEventListener("input", () => {
    // Picking from the datalist or typing a full code updates the ticket without leaving the field.
    clearTimeout(instTimer);
    instTimer = setTimeout(() => {
      if (state.instruments.has(ticketInstrument())) onTicketInstrumentChange(true);
    }, 150);
  });
  for (const r of document.querySelectorAll('input[name="direction"], input[name="offset"]')) {
    r.addEventListener("change", updateTicketSummary);
  }

  // Enter in a field never sends an order: sending takes the button (click, or Enter/Space on it).
  $("ticket-form").addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter" || ev.target === ticket.submit || ev.target.tagName === "BUTTON") return;
    ev.preventDefault();
    if (ev.target === ticket.price) ticket.price.dispatchEvent(new Event("blur"));
  });

  /** The CTP fields of one order. */
  function buildOrder({ id, dir, offset, type, price, vol }) {
    const l = state.login;
    const info = instrumentInfo(id);
    const order = {
      BrokerID: l.BrokerID, InvestorID: l.UserID, UserID: l.UserID,
      ExchangeID: info ? info.ExchangeID : "", InstrumentID: id, Direction: dir, CombOffsetFlag: offset,
      CombHedgeFlag: "1", VolumeTotalOriginal: vol, MinVolume: 1, ContingentCondition: "1",
      ForceCloseReason: "0", IsAutoSuspend: 0, UserForceClose: 0, IsSwapOrder: 0,
    };
    // Order types are CTP field combinations (CTP supports only the GFD and IOC time conditions).
    if (type === "market") Object.assign(order, { OrderPriceType: "1", LimitPrice: 0, TimeCondition: "1", VolumeCondition: "1" });
    else if (type === "fak") Object.assign(order, { OrderPriceType: "2", TimeCondition: "1", VolumeCondition: "1" });
    else if (type === "fok") Object.assign(order, { OrderPriceType: "2", TimeCondition: "1", VolumeCondition: "3" });
    else Object.assign(order, { OrderPriceType: "2", TimeCondition: "3", VolumeCondition: "1" });
    if (type !== "market") order.LimitPrice = roundToTick(price, info ? info.PriceTick : 0);
    return order;
  }

  /** One deliberate action sends its orders once: repeats while the first is on its way (a
   * double click, a key held down) are dropped; with "Confirm orders" the user confirms first. */
  const sending = { busy: false, timer: 0 };
  const SEND_GUARD_MS = 1000;
  function guard(on) {
    sending.busy = on;
    clearTimeout(sending.timer);
    ticket.submit.classList.toggle("busy", on);
    if (on) sending.timer = setTimeout(() => guard(false), SEND_GUARD_MS);
    updateTicketEnabled();
  }
  function confirmOrders(labels) {
    if (!$("confirm-orders").checked) return Promise.resolve(true);
    const dlg = $("confirm-dialog");
    const list = $("confirm-list");
    list.textContent = "";
    for (const l of labels) list.append(el("li", { text: l }));
    return new Promise((resolve) => {
      dlg.returnValue = "";
      dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
      dlg.showModal();
      $("confirm-yes").focus();
    });
  }
  const OFFSET_NAMES = { "0": "open", "1": "close", "3": "close_today", "4": "close_yesterday" };
  const KIND_NAMES = { Limit: "limit", FAK: "fak", FOK: "fok", Market: "market" };
  /** Send one order (CTP fields from buildOrder) through webctp.js; its RequestID, or null. */
  async function sendOrder(order, why) {
    const label = describeOrderFields(order);
    const client = td.usable(label);
    if (!client) return null;
    let sent;
    try {
      sent = await client.insertOrder({
        instrumentId: order.InstrumentID, exchangeId: order.ExchangeID, volume: order.VolumeTotalOriginal,
        direction: order.Direction === "0" ? "buy" : "sell", offset: OFFSET_NAMES[order.CombOffsetFlag] || "open",
        kind: KIND_NAMES[orderTypeOf(order)] || "limit", price: order.LimitPrice, fields: order,
      });
    } catch (e) {
      reportFailure("td", e, label, false);
      return null;
    }
    // A refusal without the order's fields in the answer still gets its row (see onPush).
    sent.onChange((o) => {
      if (o.error && o.error.msgType !== "RtnOrder" && !o.error.frame.InputOrder) addRejectedOrder(o.error.frame, o.input);
    });
    log("", T("m_order_sent", { why: T(`why_${why}`), what: label, rid: sent.requestId }));
    return sent.requestId;
  }
  /** Send a list of orders (one user action), after the optional confirmation. */
  async function placeOrders(orders, why) {
    if (sending.busy || !orders.length) return false;
    guard(true);
    const ok = await confirmOrders(orders.map(describeOrderFields));
    if (!ok) { guard(false); return false; }
    for (const o of orders) await sendOrder(o, why); // in this order (a reverse closes first)
    guard(true); // the repeat guard runs from the moment of sending
    return true;
  }

  function ticketProblems() {
    const id = ticketInstrument();
    const b = ticketBounds();
    const problems = [];
    if (!td.ready || !state.login) problems.push(T("p_td_not_logged_in"));
    if (!id) problems.push(T("p_enter_instrument"));
    else if (!b.info && state.instrumentsLoaded) problems.push(T("p_not_listed", { id }));
    const priceErr = priceProblem();
    if (priceErr) problems.push(priceErr);
    const vol = ticketVolume();
    if (!(vol >= 1)) problems.push(T("p_volume"));
    const maxVol = b.info ? (ticket.type.value === "market" ? b.info.MaxMarketOrderVolume : b.info.MaxLimitOrderVolume) : 0;
    if (maxVol && vol > maxVol) problems.push(T("p_max_volume", { v: vol, max: maxVol }));
    return problems;
  }
  $("ticket-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (sending.busy) return;
    const problems = ticketProblems();
    if (problems.length) {
      toast("error", T("m_order_not_sent"), problems.join("; "));
      return;
    }
    const order = buildOrder({ id: ticketInstrument(), dir: ticketSide(), offset: ticketOffset(), type: ticket.type.value,
      price: parseFloat(ticket.price.value), vol: ticketVolume() });
    if (state.modifying) {
      const key = state.modifying;
      const old = state.orders.get(key);
      if (!old || !WORKING.has(old.OrderStatus)) {
        toast("error", T("m_not_modified"), T("m_no_longer_working"));
        stopModify();
        return;
      }
      if (sending.busy) return;
      guard(true);
      const ok = await confirmOrders([T("c_cancel", { what: describeOrderFields(old) }), describeOrderFields(order)]);
      if (!ok) { guard(false); return; }
      // Cancel and replace: the new order goes out only once the old one is cancelled.
      state.replacing.set(key, order);
      cancelOrder(key);
      log("", T("m_modify_log", { old: describeOrderFields(old), new: describeOrderFields(order) }));
      stopModify();
      guard(true);
      return;
    }
    if (await placeOrders([order], "ticket")) $("ticket-summary").textContent = T("m_sent", { what: describeOrderFields(order) });
  });

  // ---- modify (cancel and replace)
  function startModify(key) {
    const o = state.orders.get(key);
    if (!o || !WORKING.has(o.OrderStatus)) return;
    setTicketInstrument(o.InstrumentID);
    state.modifying = key;
    setTicketSide(o.Direction);
    setTicketOffset((o.CombOffsetFlag || "0")[0]);
    ticket.type.value = { Limit: "limit", Market: "market", FAK: "fak", FOK: "fok" }[orderTypeOf(o)] || "limit";
    ticket.price.value = fmtPrice(o.LimitPrice, o.InstrumentID);
    ticket.volume.value = String(o.VolumeTotal || o.VolumeTotalOriginal - (o.VolumeTraded || 0));
    $("ticket-modify").hidden = false;
    $("ticket-modify-text").textContent = T("modifying", { what: describeOrderFields(o) });
    updateTicketType();
    showMobilePage("trade");
    ticket.price.focus();
  }
  function stopModify() {
    state.modifying = null;
    $("ticket-modify").hidden = true;
    updateTicketSummary();
  }
  $("ticket-modify-cancel").addEventListener("click", stopModify);

  // ------------------------------------------------------------------ console
  /** A JSON object without a RequestID is sent with one and its answers are logged; anything
   * else (own RequestID, not JSON) goes as typed, and what comes back is logged by onPush. */
  $("console-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const link = $("console-api").value === "md" ? md : td;
    const text = $("console-input").value.trim();
    if (!text) return;
    if (!link.open) {
      toast("error", T("m_console_not_sent"), T("m_not_connected", { api: link.api }));
      return;
    }
    const client = link.client;
    let obj = null;
    try { obj = JSON.parse(text); } catch (e) { obj = null; }
    log("", `${link.api} ⇢ ${text.slice(0, 400)}`);
    if (!obj || typeof obj !== "object" || Array.isArray(obj) || obj.RequestID !== undefined) {
      client.sendText(text);
      return;
    }
    const show = (frame, kind) => log(kind, `${link.api} ⇠ ${JSON.stringify(frame).slice(0, 600)}`);
    try {
      for (const frame of await client.call(obj, { timeoutMs: CONSOLE_TIMEOUT_MS })) show(frame, "");
    } catch (e) {
      if (e instanceof ctp.CtpError) show(e.frame, "error");
      // no answer: many requests have none when they work (a cancel shows as RtnOrder)
      if (!(e instanceof ctp.RequestTimeout)) reportFailure(link.api, e, T("q_console", { what: obj.MsgType || "request" }), false);
    }
  });

  // ------------------------------------------------------------------ start-up
  async function loadEndpoints() {
    const params = new URLSearchParams(window.location.search);
    let ep = null;
    try {
      const r = await fetch("/api/endpoints", { cache: "no-store" });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      ep = await r.json();
    } catch (e) {
      ep = null;
      if (!params.get("td") && !params.get("md")) {
        toast("error", T("m_no_gateway"), T("m_no_gateway_d", { e: e.message || e }));
      }
    }
    ep = Object.assign({ td: null, md: null }, ep || {});
    if (params.get("td")) ep.td = params.get("td");
    if (params.get("md")) ep.md = params.get("md");
    if (!ep.td && !ep.md) return;
    state.endpoints = ep;
    renderBackendInfo();
    $("login-token-label").hidden = !ep.token_required;
    if (ep.login_hint) $("login-hint").textContent = ep.login_hint;
    if (!ep.td) {
      setLinkState("td", "offline", "ls_md_only");
    }
    if (!ep.md) setLinkState("md", "offline", "ls_td_only");
    const user = $("login-user");
    if (!user.value) user.value = storageGet("webctp.user") || (ep.backend === "sim" ? "demo" : "");
    // The password is never filled in by the page (a stored or guessed one fails as ErrorID 3).
    log("", T("m_gateway", { td: ep.td || "-", md: ep.md || "-" }));
  }

  function renderBackendInfo() {
    const ep = state.endpoints;
    if (!ep) return;
    $("backend-info").textContent = [ep.backend ? T("backend_info", { b: ep.backend }) : "",
      ep.broker_id ? T("broker_info", { b: ep.broker_id }) : ""].filter(Boolean).join(" · ");
  }

  renderAccount();
  renderInstruments();
  updateTicketEnabled();
  updateTicketSummary();
  initChart();
  if (storageGet("webctp.period")) setPeriod(storageGet("webctp.period"));
  setLanguage(storageGet("webctp.lang") || "en");
  loadEndpoints();

  // For debugging from the browser console only; the page does not depend on it.
  window.webctpDemo = { state, td, md };
}
