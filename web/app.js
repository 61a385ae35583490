/* webctp web demo: one page that talks to the webctp gateway over its two WebSockets (td, md).
 *
 * Plain JavaScript, no framework, no network access beyond the gateway. How it works:
 * - GET /api/endpoints tells the page the td/md WebSocket URLs (and whether a token is needed).
 * - Everything on screen is driven by pushes: RtnOrder/RtnTrade update orders and trades and
 *   schedule ONE debounced re-query of account and positions; ticks update quotes, the chart and
 *   position P/L. Nothing is polled on a timer.
 * - Queries go through a queue with one request in flight at a time (CTP allows one query in
 *   flight per session; the gateway paces them too, but a client should not flood it).
 * - Every frame whose RspInfo.ErrorID != 0 is shown to the user in words (toast + log),
 *   including the gateway's own -400/-401/-404/-429/-503/-408 frames.
 */
"use strict";

(function () {
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

  /** Error codes the gateway produces itself (see docs/protocol). */
  const GATEWAY_ERRORS = {
    "-1": "the request could not be sent to the broker (network)",
    "-2": "too many requests waiting for an answer",
    "-3": "too many requests per second",
    "-400": "bad request",
    "-401": "not logged in",
    "-404": "unknown message type",
    "-408": "no answer from the broker in time",
    "-429": "too many requests queued in this session",
    "-503": "broker link down",
  };
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
  const REFRESH_DEBOUNCE_MS = 300;
  const SERIES_MAX = 1200;
  const LOG_MAX = 600;
  const ENVELOPE_KEYS = new Set(["MsgType", "RspInfo", "RequestID", "IsLast", "Request", "Detail"]);

  // ------------------------------------------------------------------ helpers
  const $ = (id) => document.getElementById(id);
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
  function nowText() {
    const d = new Date();
    return d.toTimeString().slice(0, 8);
  }
  function storageGet(key) {
    try { return window.localStorage.getItem(key); } catch (e) { return null; }
  }
  function storageSet(key, value) {
    try { window.localStorage.setItem(key, value); } catch (e) { /* private mode: not kept */ }
  }
  function payloadKey(msg) {
    for (const k of Object.keys(msg)) if (!ENVELOPE_KEYS.has(k)) return k;
    return null;
  }
  function errorOf(msg) {
    const info = msg.RspInfo;
    if (info && typeof info === "object" && info.ErrorID !== 0 && info.ErrorID !== undefined) return info;
    return null;
  }
  function describeOrderFields(o) {
    if (!o) return "";
    const off = OFFSET[(o.CombOffsetFlag || "")[0]] || "";
    const dir = DIRECTION[o.Direction] || "";
    const price = o.OrderPriceType === "1" ? "market" : "@ " + fmtPrice(o.LimitPrice, o.InstrumentID);
    return `${dir} ${off.toLowerCase()} ${o.VolumeTotalOriginal} ${o.InstrumentID} ${price}`.replace(/\s+/g, " ").trim();
  }
  function orderTypeOf(o) {
    if (o.OrderPriceType === "1") return "Market";
    if (o.TimeCondition === "1") return o.VolumeCondition === "3" ? "FOK" : "FAK";
    if (o.TimeCondition === "3") return "Limit";
    return "Other";
  }
  function statusWords(o) {
    if (o.OrderStatus === "5" && o.OrderSubmitStatus === "4") return "Rejected";
    return ORDER_STATUS[o.OrderStatus] || `status ${o.OrderStatus}`;
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
    series: new Map(), // InstrumentID -> [{p, time}]
    quoteRows: new Map(), // InstrumentID -> {tr, cells}
    subscribed: new Set(), // confirmed by RspSubMarketData
    subPending: new Set(),
    autoSubscribed: new Set(), // position instruments subscribed once automatically
    selected: null,
    orders: new Map(), // FrontID:SessionID:OrderRef -> Order (+ _seq)
    trades: new Map(),
    positionRows: [], // raw InvestorPosition rows of the last complete query
    account: null,
    accountAt: "",
    seq: 0,
    cancelPending: new Set(),
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
  const TOAST_MAX = 5;
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
      el("button", { class: "close", type: "button", "aria-label": "Dismiss", text: "×", onclick: () => t.remove() }));
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

  function errorMeaning(id) {
    if (id in GATEWAY_ERRORS) return GATEWAY_ERRORS[id];
    return CTP_ERRORS[id] || "";
  }
  /** What the failed frame was about, in words. */
  function actionOf(api, msg, pending) {
    const t = msg.MsgType || "";
    const key = payloadKey(msg);
    const payload = key ? msg[key] : null;
    if (t === "RspOrderInsert" || t === "ErrRtnOrderInsert") {
      return "Order rejected: " + (payload ? describeOrderFields(payload) : pending ? pending.label : "");
    }
    if (t === "RspOrderAction" || t === "ErrRtnOrderAction") {
      const what = payload ? `${payload.InstrumentID || ""} ${(payload.OrderSysID || payload.OrderRef || "").trim()}` : pending ? pending.label : "";
      return "Cancel rejected: " + what.trim();
    }
    if (t === "RspUserLogin" || t === "RspAuthenticate") return `${api} login failed`;
    if (t === "RspUserLogout") return `${api} logout failed`;
    if (t === "RspSubMarketData" || t === "RspUnSubMarketData") {
      const inst = payload && payload.InstrumentID ? payload.InstrumentID : pending ? pending.label : "";
      return `${t === "RspSubMarketData" ? "Subscribe" : "Unsubscribe"} ${inst} failed`.replace("  ", " ");
    }
    if (pending && pending.label) return `${pending.label} failed`;
    if (msg.Request) return `${msg.Request} failed`;
    if (t.startsWith("RspQry")) return `Query ${t.slice(6)} failed`;
    if (t === "RspError") return `${api}: the gateway refused a request`;
    return `${t} failed`;
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
    if (retrying) detail += " · trying again";
    toast(retrying ? "warn" : "error", actionOf(api, msg, pending), detail);
  }

  // ------------------------------------------------------------------ link state badges
  const linkBadge = { td: $("td-state"), md: $("md-state") };
  function setLinkState(api, stateName, text) {
    const b = linkBadge[api];
    b.dataset.state = stateName;
    b.textContent = `${api}: ${text}`;
    b.title = `${api}: ${text}`;
    if (api === "td") {
      updateTicketEnabled();
      scheduleRender();
    }
  }

  // ------------------------------------------------------------------ the WebSocket link
  class Link {
    constructor(api) {
      this.api = api;
      this.url = null;
      this.ws = null;
      this.nextId = 1;
      this.pending = new Map(); // RequestID -> {label, rows, done?, timer?, console?}
      this.queue = [];
      this.inFlight = null;
      this.wanted = false;
      this.ready = false; // logged in
      this.everReady = false;
      this.retryDelay = 1000;
      this.retryTimer = 0;
      this.loginId = null;
    }
    connect(url) {
      this.url = url;
      this.wanted = true;
      if (this.ws) return;
      this.open();
    }
    open() {
      clearTimeout(this.retryTimer);
      setLinkState(this.api, "connecting", "connecting…");
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (e) {
        toast("error", `${this.api}: cannot open ${this.url}`, String(e));
        this.scheduleReconnect();
        return;
      }
      this.ws = ws;
      ws.onopen = () => {
        if (ws !== this.ws) return;
        this.retryDelay = 1000;
        setLinkState(this.api, "connected", "connected, logging in…");
        log("", `${this.api}: socket open ${this.url}`);
        onLinkOpen(this);
      };
      ws.onmessage = (ev) => {
        if (ws !== this.ws) return;
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch (e) {
          toast("error", `${this.api}: unreadable frame from the gateway`, String(ev.data).slice(0, 200));
          return;
        }
        if (!msg || typeof msg !== "object" || Array.isArray(msg)) {
          toast("error", `${this.api}: unexpected frame from the gateway`, String(ev.data).slice(0, 200));
          return;
        }
        this.dispatch(msg);
      };
      ws.onclose = (ev) => {
        if (ws !== this.ws) return;
        this.ws = null;
        const why = `socket closed (code ${ev.code}${ev.reason ? ", " + ev.reason : ""})`;
        this.down(why);
        if (this.wanted) {
          toast("warn", `${this.api}: connection to the gateway lost`, `${why}; reconnecting`);
          this.scheduleReconnect();
        } else {
          setLinkState(this.api, "offline", "offline");
        }
      };
      ws.onerror = () => { /* a close event with the code follows */ };
    }
    scheduleReconnect() {
      const delay = this.retryDelay;
      this.retryDelay = Math.min(this.retryDelay * 2, 30000);
      setLinkState(this.api, "disconnected", `gateway unreachable, retrying in ${Math.round(delay / 1000)} s`);
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => { if (this.wanted && !this.ws) this.open(); }, delay);
    }
    close() {
      this.wanted = false;
      clearTimeout(this.retryTimer);
      const ws = this.ws;
      this.ws = null;
      if (ws) ws.close(1000, "logout");
      this.down("closed");
      setLinkState(this.api, "offline", "offline");
    }
    /** The socket is gone: every outstanding request is finished with an error. */
    down(reason) {
      this.ready = false;
      const failure = { ok: false, rows: [], error: { ErrorID: -503, ErrorMsg: reason } };
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        if (p.done) p.done(failure);
        this.pending.delete(id);
      }
      const queued = this.queue.splice(0);
      for (const item of queued) item.resolve(failure);
      if (this.inFlight) {
        clearTimeout(this.inFlight.retryTimer);
        const item = this.inFlight;
        this.inFlight = null;
        item.resolve(failure);
      }
      showQueryStatus();
    }
    /** Send one frame; returns its RequestID (null when the socket is not open). */
    send(frame, label, extra) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        toast("error", `${label || frame.MsgType} not sent`, `${this.api} is not connected to the gateway`);
        return null;
      }
      const id = this.nextId++;
      const out = Object.assign({ MsgType: frame.MsgType, RequestID: id }, frame);
      out.RequestID = id;
      this.ws.send(JSON.stringify(out));
      const p = Object.assign({ label: label || frame.MsgType, rows: [] }, extra || {});
      if (!p.done) {
        // Requests that may never get a response on success (an order answers with RtnOrder):
        // forget them after a while.
        p.timer = setTimeout(() => this.pending.delete(id), 60000);
      }
      this.pending.set(id, p);
      return id;
    }
    /** Send a raw text frame from the console (RequestID added when missing). */
    sendRaw(text) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        toast("error", "Console: not sent", `${this.api} is not connected to the gateway`);
        return;
      }
      let obj = null;
      try { obj = JSON.parse(text); } catch (e) { obj = null; }
      let id = null;
      if (obj && typeof obj === "object" && !Array.isArray(obj)) {
        if (obj.RequestID === undefined) obj.RequestID = this.nextId++;
        id = obj.RequestID;
        text = JSON.stringify(obj);
      }
      this.ws.send(text);
      log("", `${this.api} ⇢ ${text.slice(0, 400)}`);
      if (typeof id === "number") {
        const p = { label: `Console ${obj.MsgType || "request"}`, rows: [], console: true };
        p.timer = setTimeout(() => this.pending.delete(id), 60000);
        this.pending.set(id, p);
      }
    }
    /** Queue a query: one in flight at a time, answered with {ok, rows, error}. */
    query(msgType, key, payload, label) {
      const body = JSON.stringify(payload);
      for (const item of this.queue) {
        if (item.msgType === msgType && item.body === body) return item.promise;
      }
      let resolve;
      const promise = new Promise((r) => { resolve = r; });
      this.queue.push({ msgType, key, payload, body, label, resolve, promise, tries: 0 });
      this.pump();
      return promise;
    }
    pump() {
      showQueryStatus();
      if (!this.ready || this.inFlight || this.queue.length === 0) return;
      const item = this.queue.shift();
      this.inFlight = item;
      item.tries += 1;
      const frame = { MsgType: item.msgType };
      frame[item.key] = item.payload;
      const finish = (res) => {
        if (this.inFlight !== item) return;
        if (!res.ok && res.error && THROTTLED.has(res.error.ErrorID) && item.tries < 4) {
          item.retryTimer = setTimeout(() => {
            if (this.inFlight !== item) return;
            this.inFlight = null;
            this.queue.unshift(item);
            this.pump();
          }, QUERY_RETRY_MS * item.tries);
          return;
        }
        this.inFlight = null;
        item.resolve(res);
        this.pump();
        showQueryStatus();
      };
      const id = this.send(frame, item.label, { done: finish, query: item });
      if (id === null) {
        finish({ ok: false, rows: [], error: { ErrorID: -503, ErrorMsg: "not connected" } });
        return;
      }
      const p = this.pending.get(id);
      p.timer = setTimeout(() => {
        if (!this.pending.has(id)) return;
        this.pending.delete(id);
        toast("error", `${item.label} failed`, `no answer within ${QUERY_TIMEOUT_MS / 1000} s`);
        finish({ ok: false, rows: [], error: { ErrorID: -408, ErrorMsg: "timeout" } });
      }, QUERY_TIMEOUT_MS);
    }
    dispatch(msg) {
      const id = msg.RequestID;
      const p = typeof id === "number" ? this.pending.get(id) : undefined;
      const err = errorOf(msg);
      if (p && p.console) log(err ? "error" : "", `${this.api} ⇠ ${JSON.stringify(msg).slice(0, 600)}`);
      if (err && msg.MsgType !== "FrontDisconnected") {
        const retrying = !!(p && p.query && THROTTLED.has(err.ErrorID) && p.query.tries < 4);
        reportError(this.api, msg, p, retrying);
      }
      if (p) {
        const key = payloadKey(msg);
        if (!err && key && msg[key]) p.rows.push(msg[key]);
        if (msg.IsLast === true || (err && msg.IsLast !== false)) {
          this.pending.delete(id);
          clearTimeout(p.timer);
          if (p.done) p.done({ ok: !err, rows: p.rows, error: err, msg });
        }
        if (p.query) return; // query rows are handled when the query completes
      }
      handleFrame(this, msg, p);
    }
  }

  const td = new Link("td");
  const md = new Link("md");

  /** "querying: Position query (+2 queued)"; data-pending counts queued + in flight. */
  function showQueryStatus() {
    const node = $("query-status");
    const pending = (td.inFlight ? 1 : 0) + td.queue.length;
    node.dataset.pending = String(pending);
    if (!pending) {
      node.textContent = "";
      return;
    }
    const current = td.inFlight ? td.inFlight.label : td.queue[0].label;
    const more = pending - 1;
    node.textContent = `${td.ready ? "querying" : "waiting for login"}: ${current}${more ? ` (+${more} queued)` : ""}`;
  }

  // ------------------------------------------------------------------ login / logout
  function sendLogin(link) {
    const c = state.creds;
    if (!c) return;
    const payload = { UserID: c.UserID, Password: c.Password };
    link.loginId = link.send({ MsgType: "ReqUserLogin", ReqUserLogin: payload }, `${link.api} login`);
    setLinkState(link.api, "connected", "logging in…");
  }
  function onLinkOpen(link) {
    if (state.creds) sendLogin(link);
  }

  function endpointUrl(url) {
    const token = $("login-token").value.trim();
    if (!token) return url;
    return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
  }

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const UserID = $("login-user").value.trim();
    const Password = $("login-password").value;
    if (!UserID) {
      toast("error", "Login not sent", "enter a UserID");
      return;
    }
    if (!state.endpoints) {
      toast("error", "Login not sent", "the gateway's endpoints are not known yet (GET /api/endpoints failed)");
      return;
    }
    state.creds = { UserID, Password };
    storageSet("webctp.user", UserID);
    $("login-button").disabled = true;
    for (const [link, url] of [[td, state.endpoints.td], [md, state.endpoints.md]]) {
      if (!url) continue;
      if (link.ws && link.ws.readyState === WebSocket.OPEN) sendLogin(link);
      else link.connect(endpointUrl(url));
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
      td.close();
      md.close();
      state.creds = null;
      resetSession();
      log("", "logged out");
    };
    if (td.ready && state.login) {
      const id = td.send({ MsgType: "ReqUserLogout", UserLogout: { BrokerID: state.login.BrokerID, UserID: state.login.UserID } },
        "Logout", { done: finish });
      if (id === null) finish();
      else setTimeout(finish, 3000);
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
    state.subscribed.clear();
    state.subPending.clear();
    state.autoSubscribed.clear();
    state.cancelPending.clear();
    for (const id of [...state.quoteRows.keys()]) removeQuoteRow(id);
    state.ticks.clear();
    state.series.clear();
    selectInstrument(null);
    $("login-form").hidden = false;
    $("session-bar").hidden = true;
    $("login-button").disabled = false;
    $("logout-button").disabled = false;
    renderAccount();
    scheduleRender();
  }

  function onTdLogin(msg) {
    const info = msg.RspUserLogin;
    const err = errorOf(msg);
    const solicited = msg.RequestID !== null && msg.RequestID !== undefined;
    if (err || !info) {
      setLinkState("td", "login_failed", `login failed: ${err ? err.ErrorMsg : "no login data"}`);
      $("login-button").disabled = false;
      if (!state.login) {
        // A first login that failed: drop the sockets' credentials, the user retries.
        state.creds = null;
        md.close();
      }
      return;
    }
    const first = !state.login;
    state.login = info;
    dismissToasts("td login failed");
    td.ready = true;
    setLinkState("td", "ready", `logged in as ${info.UserID}`);
    $("login-form").hidden = true;
    $("session-bar").hidden = false;
    $("login-button").disabled = false;
    $("session-info").textContent =
      `${info.UserID} · broker ${info.BrokerID} · trading day ${info.TradingDay} · front ${info.FrontID} · session ${info.SessionID}`;
    $("session-info").title = `${$("session-info").textContent}${info.SystemName ? ` · system ${info.SystemName}` : ""} · login ${info.LoginTime || ""}`;

    if (!solicited) toast("info", "td logged in again", `new session: front ${info.FrontID}, session ${info.SessionID}`);
    else if (first) log("", `td logged in: ${info.UserID}, trading day ${info.TradingDay}`);
    td.pump();
    refreshAll();
    updateTicketEnabled();
  }

  function onMdLogin(msg) {
    const err = errorOf(msg);
    if (err) {
      setLinkState("md", "login_failed", `login failed: ${err.ErrorMsg}`);
      return;
    }
    const solicited = msg.RequestID !== null && msg.RequestID !== undefined;
    md.ready = true;
    md.everReady = true;
    setLinkState("md", "ready", "receiving quotes");
    if (!solicited) {
      // The gateway re-logged in by itself and re-subscribed what we had.
      toast("info", "md logged in again", "the gateway re-subscribed the instruments");
      return;
    }
    // A new socket: (re)subscribe what the table shows, or what this user had last time.
    const wanted = new Set([...state.quoteRows.keys()]);
    if (wanted.size === 0 && state.creds) {
      const saved = storageGet(`webctp.subs.${state.creds.UserID}`);
      if (saved) for (const id of saved.split(",")) if (id) wanted.add(id);
    }
    state.subscribed.clear();
    state.subPending.clear();
    if (wanted.size) subscribe([...wanted]);
  }

  // ------------------------------------------------------------------ frame handling
  function handleFrame(link, msg, pending) {
    const api = link.api;
    switch (msg.MsgType) {
      case "FrontConnected":
        if (link.ready || (api === "td" && state.login)) {
          setLinkState(api, "relogging", "broker link back, logging in again…");
        } else {
          setLinkState(api, "connected", "broker link up");
        }
        log("", `${api}: broker front connected`);
        return;
      case "FrontDisconnected": {
        const d = msg.FrontDisconnected || {};
        const reason = `${d.Description || (msg.RspInfo && msg.RspInfo.ErrorMsg) || "reason unknown"}${d.Hex ? ` (${d.Hex})` : ""}`;
        link.ready = false;
        setLinkState(api, "disconnected", `broker link down: ${reason}`);
        toast("warn", `${api}: link to the broker lost`, `${reason}; the gateway reconnects and logs in again by itself`);
        return;
      }
      case "SessionState": {
        const s = msg.SessionState || {};
        const detail = s.Detail ? `: ${s.Detail}` : "";
        if (s.State === "ready") {
          // The login frame that follows carries the session details.
          setLinkState(api, "ready", api === "md" ? "receiving quotes" : state.login ? `logged in as ${state.login.UserID}` : "ready");
        } else if (s.State === "disconnected") {
          link.ready = false;
          setLinkState(api, "disconnected", `disconnected${detail}`);
        } else if (s.State === "relogging") {
          link.ready = false;
          setLinkState(api, "relogging", `re-logging in${detail}`);
        } else if (s.State === "login_failed") {
          link.ready = false;
          setLinkState(api, "login_failed", `login failed${detail}`);
          // A failed first login is reported by its RspUserLogin; this is the gateway's own retry.
          if (api === "td" ? state.login : link.everReady) {
            toast("error", `${api}: automatic re-login failed`, s.Detail || "log in again");
          }
        } else if (s.State === "logging_in") {
          setLinkState(api, "connected", `logging in${detail}`);
        } else if (s.State === "connecting" || s.State === "new") {
          setLinkState(api, "connecting", `connecting to the broker${detail}`);
        } else if (s.State === "connected") {
          link.ready = false;
          setLinkState(api, "connected", `broker link up, not logged in${detail}`);
        } else {
          setLinkState(api, String(s.State || "unknown"), `${s.State}${detail}`);
        }
        log("", `${api}: session ${s.State}${detail}`);
        return;
      }
      case "RspUserLogin":
        if (api === "td") onTdLogin(msg);
        else onMdLogin(msg);
        return;
      case "RspAuthenticate":
        if (errorOf(msg)) onTdLogin(msg);
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
        return; // shown by reportError
      case "RspOrderAction":
      case "ErrRtnOrderAction":
        state.cancelPending.clear();
        scheduleRender();
        return;
      case "RtnDepthMarketData":
        if (msg.DepthMarketData) onDepth(msg.DepthMarketData);
        return;
      case "RspSubMarketData":
        onSubRsp(msg, pending, true);
        return;
      case "RspUnSubMarketData":
        onSubRsp(msg, pending, false);
        return;
      case "RtnInstrumentStatus": {
        const s = msg.InstrumentStatus || {};
        log("", `${s.ExchangeID || ""} ${s.InstrumentID || ""}: ${INSTRUMENT_STATUS[s.InstrumentStatus] || s.InstrumentStatus}`);
        return;
      }
      case "RtnTradingNotice": {
        const n = msg.TradingNoticeInfo || {};
        toast("info", "Trading notice", n.FieldContent || JSON.stringify(n));
        return;
      }
      case "HeartBeatWarning":
        log("warn", `${api}: heartbeat warning ${JSON.stringify(msg.HeartBeatWarning || {})}`);
        return;
      default:
        if (!pending || !pending.console) log("", `${api} ⇠ ${JSON.stringify(msg).slice(0, 300)}`);
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
    const res = await td.query("ReqQryInstrument", "QryInstrument", {}, "Instrument list");
    if (!res.ok) return;
    for (const i of res.rows) state.instruments.set(i.InstrumentID, i);
    state.instrumentsLoaded = true;
    log("", `instrument list: ${res.rows.length} instruments`);
    renderInstrumentOptions();
    renderInstruments();
    refreshQuoteNames();
    onTicketInstrumentChange(false);
  }
  async function refreshAccount() {
    const res = await td.query("ReqQryTradingAccount", "QryTradingAccount", investorFilter(), "Account query");
    if (!res.ok) return;
    if (res.rows.length) {
      state.account = res.rows[0];
      state.accountAt = nowText();
    }
    renderAccount();
  }
  async function refreshPositions() {
    const res = await td.query("ReqQryInvestorPosition", "QryInvestorPosition", investorFilter(), "Position query");
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
    const res = await td.query("ReqQryOrder", "QryOrder", investorFilter(), "Order query");
    if (!res.ok) return;
    for (const o of res.rows) upsertOrder(o, false);
  }
  async function refreshTrades() {
    const res = await td.query("ReqQryTrade", "QryTrade", investorFilter(), "Trade query");
    if (!res.ok) return;
    for (const t of res.rows) upsertTrade(t, false);
  }
  async function queryDepth(id) {
    if (!td.ready) return;
    const res = await td.query("ReqQryDepthMarketData", "QryDepthMarketData", { InstrumentID: id }, `Quote query ${id}`);
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
    if (push) {
      const rejected = o.OrderStatus === "5" && o.OrderSubmitStatus === "4";
      const wasRejected = old && old.OrderStatus === "5" && old.OrderSubmitStatus === "4";
      if (rejected && !wasRejected) {
        toast("error", `Order rejected: ${describeOrderFields(o)}`, o.StatusMsg || "rejected by the exchange");
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
      toast("info", `Filled: ${DIRECTION[t.Direction]} ${(OFFSET[t.OffsetFlag] || "").toLowerCase()} ${t.Volume} ${t.InstrumentID} @ ${fmtPrice(t.Price, t.InstrumentID)}`);
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
    const label = `Cancel ${o.InstrumentID} ${(o.OrderSysID || o.OrderRef || "").trim()}`;
    if (td.send({ MsgType: "ReqOrderAction", InputOrderAction: action }, label) !== null) {
      state.cancelPending.add(key);
      scheduleRender();
    }
  }

  // ------------------------------------------------------------------ market data
  function subscribe(ids) {
    ids = ids.filter((id) => id && !state.subscribed.has(id) && !state.subPending.has(id));
    if (!ids.length) return;
    for (const id of ids) ensureQuoteRow(id);
    if (!md.ready) return; // sent when md logs in (onMdLogin subscribes what the table shows)
    for (const id of ids) state.subPending.add(id);
    md.send({ MsgType: "SubscribeMarketData", InstrumentID: ids }, ids.join(","));
    saveSubs();
  }
  function unsubscribe(id) {
    if (md.ready && state.subscribed.has(id)) {
      md.send({ MsgType: "UnSubscribeMarketData", InstrumentID: [id] }, id);
    } else {
      removeQuoteRow(id);
      saveSubs();
    }
  }
  function onSubRsp(msg, pending, sub) {
    const spec = msg.SpecificInstrument;
    const id = spec && typeof spec === "object" ? spec.InstrumentID : typeof spec === "string" ? spec : null;
    const err = errorOf(msg);
    if (sub) {
      const ids = id ? [id] : pending ? pending.label.split(",") : [];
      for (const i of ids) {
        state.subPending.delete(i);
        if (err) removeQuoteRow(i);
        else {
          state.subscribed.add(i);
          ensureQuoteRow(i);
          const row = state.quoteRows.get(i);
          if (row) row.tr.dataset.subscribed = "true";
        }
      }
      if (!err && id) log("", `subscribed ${id}`);
    } else if (!err && id) {
      state.subscribed.delete(id);
      removeQuoteRow(id);
      log("", `unsubscribed ${id}`);
    }
    saveSubs();
  }
  function saveSubs() {
    if (state.creds) storageSet(`webctp.subs.${state.creds.UserID}`, [...state.quoteRows.keys()].join(","));
  }

  const QUOTE_FIELDS = ["last", "change", "pct", "bid", "bidvol", "ask", "askvol", "volume", "oi", "time"];
  function ensureQuoteRow(id) {
    if (state.quoteRows.has(id)) return state.quoteRows.get(id);
    const cells = {};
    const nameSpan = el("span", { class: "inst-name" });
    const tr = el("tr", { "data-testid": "quote-row", "data-instrument": id, "data-subscribed": "false" },
      el("td", { "data-field": "instrument" }, el("strong", { text: id }), nameSpan));
    for (const f of QUOTE_FIELDS) {
      const td_ = el("td", { class: f === "time" ? "" : "num", "data-field": f, text: "—" });
      if (f === "bid" || f === "ask") {
        td_.classList.add("px");
        td_.title = f === "bid" ? "Sell at the bid" : "Buy at the ask";
      }
      cells[f] = td_;
      tr.append(td_);
    }
    const unsub = el("button", { type: "button", class: "btn link", "data-testid": "unsubscribe", title: `Unsubscribe ${id}`, text: "✕" });
    tr.append(el("td", null, unsub));
    unsub.addEventListener("click", (ev) => { ev.stopPropagation(); unsubscribe(id); });
    cells.bid.addEventListener("click", (ev) => { ev.stopPropagation(); fillTicketFromQuote(id, "1"); });
    cells.ask.addEventListener("click", (ev) => { ev.stopPropagation(); fillTicketFromQuote(id, "0"); });
    tr.addEventListener("click", () => { selectInstrument(id); fillTicketFromQuote(id, null); });
    const row = { tr, cells, nameSpan };
    state.quoteRows.set(id, row);
    insertSorted($("quotes-body"), tr, id);
    setQuoteName(row, id);
    $("quotes-empty").hidden = true;
    if (!state.selected) selectInstrument(id);
    const d = state.ticks.get(id);
    if (d) updateQuoteRow(row, d, null);
    return row;
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
    state.subscribed.delete(id);
    state.subPending.delete(id);
    state.series.delete(id);
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
      const cell = c[f];
      if (cell.textContent !== text) cell.textContent = text;
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
    set("time", d.UpdateTime ? `${d.UpdateTime}.${String(d.UpdateMillisec || 0).padStart(3, "0")}` : "—");
    row.tr.dataset.last = hasLast ? String(d.LastPrice) : "";
    row.tr.dataset.bid = validPrice(d.BidPrice1) ? String(d.BidPrice1) : "";
    row.tr.dataset.ask = validPrice(d.AskPrice1) ? String(d.AskPrice1) : "";
    row.tr.dataset.time = c.time.textContent;
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
    if (validPrice(d.LastPrice)) {
      let s = state.series.get(id);
      if (!s) state.series.set(id, (s = []));
      s.push({ p: d.LastPrice, time: d.UpdateTime || "" });
      if (s.length > SERIES_MAX) s.splice(0, s.length - SERIES_MAX);
    }
    if (id === state.selected) scheduleChart();
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
      toast("error", `Subscribe ${id} not sent`, "md is not logged in");
      return;
    }
    if (state.instrumentsLoaded && !state.instruments.has(id)) {
      toast("warn", `Subscribing ${id}`, "this instrument is not in the broker's instrument list; it will not tick");
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
      const btn = el("button", { type: "button", class: "btn small", "data-testid": "instrument-subscribe", text: subscribed ? "Subscribed" : "Subscribe", disabled: subscribed });
      btn.addEventListener("click", (ev) => {
        ev.stopPropagation();
        if (!md.ready) {
          toast("error", `Subscribe ${i.InstrumentID} not sent`, "md is not logged in");
          return;
        }
        subscribe([i.InstrumentID]);
        selectInstrument(i.InstrumentID);
        btn.textContent = "Subscribed";
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
      ? `${hits.length} of ${all.length}${hits.length > INST_SHOWN ? `, first ${INST_SHOWN} shown` : ""}`
      : "loaded after login";
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
        a = { InstrumentID: r.InstrumentID, ExchangeID: r.ExchangeID, PosiDirection: r.PosiDirection, Position: 0, Today: 0,
          PositionCost: 0, OpenCost: 0, UseMargin: 0, PositionProfit: 0, LongFrozen: 0, ShortFrozen: 0 };
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
    }
    return [...map.values()].filter((a) => a.Position > 0)
      .sort((x, y) => x.InstrumentID.localeCompare(y.InstrumentID, "en", { numeric: true }) || x.PosiDirection.localeCompare(y.PosiDirection));
  }
  function renderPositions() {
    const body = $("positions-body");
    const rows = aggregatePositions();
    body.textContent = "";
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
      const tr = el("tr", { "data-testid": "position-row", "data-instrument": a.InstrumentID, "data-direction": side.toLowerCase(), "data-position": String(a.Position) },
        el("td", null, el("strong", { text: a.InstrumentID })),
        el("td", { class: long ? "side-buy" : "side-sell", "data-field": "side", text: side }),
        el("td", { class: "num", "data-field": "position", text: fmtInt(a.Position) }),
        el("td", { class: "num", "data-field": "today", text: fmtInt(a.Today) }),
        el("td", { class: "num", "data-field": "yesterday", text: fmtInt(a.Position - a.Today) }),
        el("td", { class: "num", "data-field": "closable", text: fmtInt(closable) }),
        el("td", { class: "num", "data-field": "avg", text: isFinite(avg) ? avg.toFixed(priceDecimals(a.InstrumentID) + 1) : "—" }),
        el("td", { class: `num ${signClass(pnl)}`, "data-field": "pnl", text: fmtMoney(pnl),
          title: last === null ? "as last queried (no quote)" : `at last price ${fmtPrice(last, a.InstrumentID)}` }),
        el("td", { class: "num", "data-field": "margin", text: fmtMoney(a.UseMargin) }));
      tr.addEventListener("click", () => {
        setTicketInstrument(a.InstrumentID);
        setTicketSide(long ? "1" : "0");
        const ex = info ? info.ExchangeID : a.ExchangeID;
        setTicketOffset(CLOSE_TODAY_EXCHANGES.has(ex) && a.Today > 0 ? "3" : "1");
        $("ticket-volume").value = String(Math.max(1, closable));
        updateTicketSummary();
      });
      body.append(tr);
    }
    $("positions-count").textContent = rows.length ? String(rows.length) : "";
    const live = $("account-live-pnl");
    live.textContent = state.login ? fmtMoney(livePnl) : "—";
    live.classList.toggle("up", !!state.login && livePnl > 0);
    live.classList.toggle("down", !!state.login && livePnl < 0);
    updatePositionHint();
  }
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
    set("account-balance", a && a.Balance);
    set("account-available", a && a.Available);
    set("account-margin", a && a.CurrMargin);
    set("account-frozen", a && (a.FrozenMargin || 0) + (a.FrozenCash || 0) + (a.FrozenCommission || 0));
    set("account-close-profit", a && a.CloseProfit, true);
    set("account-position-profit", a && a.PositionProfit, true);
    set("account-commission", a && a.Commission);
    set("account-prebalance", a && a.PreBalance);
    if (!a) $("account-id").textContent = "";
    $("account-asof").textContent = a && state.accountAt ? `as of ${state.accountAt}` : "";
  }

  function renderOrders() {
    const body = $("orders-body");
    const workingOnly = $("orders-working-only").checked;
    const list = [...state.orders.entries()].sort((x, y) => y[1]._seq - x[1]._seq);
    body.textContent = "";
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
        cancel = el("button", { type: "button", class: "btn small danger", "data-testid": "cancel-order", disabled: pendingCancel || !td.ready, text: pendingCancel ? "Cancelling…" : "Cancel" });
        cancel.addEventListener("click", () => cancelOrder(key));
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
        el("td", { class: o.Direction === "0" ? "side-buy" : "side-sell", "data-field": "side", text: `${DIRECTION[o.Direction] || o.Direction} ${String(off).toLowerCase()}` }),
        el("td", { class: "num", text: o.OrderPriceType === "1" ? "market" : fmtPrice(o.LimitPrice, o.InstrumentID) }),
        el("td", { class: "num", "data-field": "filled", text: `${o.VolumeTraded}/${o.VolumeTotalOriginal}` }),
        el("td", { text: orderTypeOf(o) }),
        el("td", { "data-field": "status" }, el("span", { class: `status ${cls}`, text: words })),
        el("td", { class: `msg${cls === "rejected" ? " bad" : ""}`, "data-field": "message", text: msgText, title: msgText }));
      tr.addEventListener("click", (ev) => {
        if (ev.target.closest("button")) return;
        setTicketInstrument(o.InstrumentID);
      });
      body.append(tr);
    }
    $("orders-count").textContent = state.orders.size ? `${working}/${state.orders.size}` : "";
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
          text: `${DIRECTION[t.Direction] || t.Direction} ${String(OFFSET[t.OffsetFlag] || t.OffsetFlag).toLowerCase()}` }),
        el("td", { class: "num", "data-field": "price", text: fmtPrice(t.Price, t.InstrumentID) }),
        el("td", { class: "num", "data-field": "volume", text: String(t.Volume) }),
        el("td", { text: (t.TradeID || "").trim() }),
        el("td", { text: (t.OrderSysID || "").trim() })));
    }
    $("trades-count").textContent = list.length ? String(list.length) : "";
  }
  $("orders-working-only").addEventListener("change", () => scheduleRender());

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
  for (const tabs of document.querySelectorAll(".tabs-panel")) {
    tabs.addEventListener("click", (ev) => {
      const btn = ev.target.closest(".tab");
      if (!btn) return;
      for (const b of tabs.querySelectorAll(".tab")) {
        b.classList.toggle("active", b === btn);
        b.setAttribute("aria-selected", b === btn ? "true" : "false");
      }
      for (const pane of tabs.querySelectorAll(".tab-body")) pane.hidden = pane.dataset.pane !== btn.dataset.tab;
      if (btn.dataset.tab === "instruments") renderInstruments();
    });
  }

  // ------------------------------------------------------------------ chart
  const canvas = $("chart");
  let chartQueued = false;
  function selectInstrument(id) {
    state.selected = id;
    for (const [rid, row] of state.quoteRows) row.tr.classList.toggle("selected", rid === id);
    $("chart-instrument").textContent = id || "";
    scheduleChart();
  }
  function scheduleChart() {
    if (chartQueued) return;
    chartQueued = true;
    requestAnimationFrame(() => { chartQueued = false; drawChart(); });
  }
  function drawChart() {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    if (!w || !h) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const col = (name) => css.getPropertyValue(name).trim();
    const id = state.selected;
    const all = id ? state.series.get(id) || [] : [];
    const padL = 10, padR = 70, padT = 10, padB = 20;
    const plotW = w - padL - padR, plotH = h - padT - padB;
    const maxPts = Math.max(2, Math.floor(plotW / 2));
    const pts = all.slice(-maxPts);
    canvas.dataset.points = String(pts.length);
    canvas.dataset.instrument = id || "";
    ctx.font = `11px ${col("--mono")}`;
    if (pts.length === 0) {
      ctx.fillStyle = col("--muted");
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText(id ? `waiting for ticks of ${id}…` : "subscribe an instrument and select it to see its price chart", w / 2, h / 2);
      $("chart-legend").textContent = "";
      return;
    }
    const tick = (instrumentInfo(id) || {}).PriceTick || 0;
    const d = state.ticks.get(id);
    let lo = Infinity, hi = -Infinity;
    for (const p of pts) { lo = Math.min(lo, p.p); hi = Math.max(hi, p.p); }
    if (d && validPrice(d.BidPrice1)) lo = Math.min(lo, d.BidPrice1);
    if (d && validPrice(d.AskPrice1)) hi = Math.max(hi, d.AskPrice1);
    const minSpan = Math.max((tick || Math.abs(hi) * 1e-4 || 1) * 4, 1e-9);
    if (hi - lo < minSpan) { const mid = (hi + lo) / 2; lo = mid - minSpan / 2; hi = mid + minSpan / 2; }
    const pad = (hi - lo) * 0.08;
    lo -= pad; hi += pad;
    const x = (i) => padL + (pts.length === 1 ? plotW : (i / (pts.length - 1)) * plotW);
    const y = (p) => padT + (1 - (p - lo) / (hi - lo)) * plotH;
    const dec = decimalsOf(tick);
    // grid + price labels
    ctx.strokeStyle = col("--line");
    ctx.fillStyle = col("--muted");
    ctx.lineWidth = 1;
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    // Grid on round prices: a 1/2/5 x 10^n step, a whole number of ticks, about 4 lines.
    const tagY = y(pts[pts.length - 1].p);
    const raw = (hi - lo) / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= raw) || 10 * mag;
    if (tick) step = Math.max(tick, Math.round(step / tick) * tick);
    for (let p = Math.ceil(lo / step) * step; p <= hi; p += step) {
      const yy = Math.round(y(p)) + 0.5;
      ctx.beginPath(); ctx.moveTo(padL, yy); ctx.lineTo(padL + plotW, yy); ctx.stroke();
      if (Math.abs(yy - tagY) > 14) ctx.fillText(p.toFixed(dec), padL + plotW + 6, yy); // not under the last-price tag
    }
    // time labels
    ctx.textBaseline = "alphabetic";
    ctx.textAlign = "left";
    ctx.fillText(pts[0].time, padL, h - 5);
    ctx.textAlign = "right";
    ctx.fillText(pts[pts.length - 1].time, padL + plotW, h - 5);
    // pre-settlement reference line
    const base = d && validPrice(d.PreSettlementPrice) ? d.PreSettlementPrice : null;
    if (base !== null && base > lo && base < hi) {
      ctx.setLineDash([2, 4]);
      ctx.strokeStyle = col("--muted");
      ctx.beginPath(); ctx.moveTo(padL, y(base)); ctx.lineTo(padL + plotW, y(base)); ctx.stroke();
      ctx.setLineDash([]);
    }
    // bid/ask band at the right edge
    if (d && validPrice(d.BidPrice1) && validPrice(d.AskPrice1)) {
      ctx.fillStyle = "rgba(61,139,253,.15)";
      ctx.fillRect(padL + plotW - 6, y(d.AskPrice1), 6, Math.max(1, y(d.BidPrice1) - y(d.AskPrice1)));
    }
    // price line with a soft fill
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(x(i), y(p.p)) : ctx.moveTo(x(i), y(p.p))));
    const accent = col("--accent");
    ctx.strokeStyle = accent;
    ctx.lineWidth = 1.5;
    ctx.stroke();
    ctx.lineTo(x(pts.length - 1), padT + plotH);
    ctx.lineTo(x(0), padT + plotH);
    ctx.closePath();
    const grad = ctx.createLinearGradient(0, padT, 0, padT + plotH);
    grad.addColorStop(0, "rgba(61,139,253,.25)");
    grad.addColorStop(1, "rgba(61,139,253,0)");
    ctx.fillStyle = grad;
    ctx.fill();
    // last price tag
    const last = pts[pts.length - 1].p;
    const up = base === null ? true : last >= base;
    const tagColor = base === null ? accent : up ? col("--up") : col("--down");
    const ly = y(last);
    ctx.setLineDash([4, 3]);
    ctx.strokeStyle = tagColor;
    ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(padL, ly); ctx.lineTo(padL + plotW, ly); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = tagColor;
    ctx.fillRect(padL + plotW + 2, ly - 8, padR - 4, 16);
    ctx.fillStyle = "#fff";
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillText(last.toFixed(dec), padL + plotW + 6, ly);
    canvas.dataset.last = String(last);
    const lastTick = d && validPrice(d.LastPrice) ? d : null;
    $("chart-legend").textContent = lastTick
      ? `last ${fmtPrice(last, id)} · bid ${fmtPrice(lastTick.BidPrice1, id)} · ask ${fmtPrice(lastTick.AskPrice1, id)} · ${pts.length} ticks`
      : "";
  }
  if (window.ResizeObserver) new ResizeObserver(() => scheduleChart()).observe(canvas);
  else window.addEventListener("resize", scheduleChart);

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
    const id = ticketInstrument();
    const info = instrumentInfo(id);
    const ex = info ? info.ExchangeID : "";
    $("ticket-exchange").textContent = info ? `${ex}${info.InstrumentName ? " · " + info.InstrumentName : ""} · ×${info.VolumeMultiple}` : id ? "unknown instrument" : "";
    const closeToday = CLOSE_TODAY_EXCHANGES.has(ex);
    $("ticket-closetoday-item").hidden = !closeToday;
    $("ticket-close-text").textContent = closeToday ? "Close yd" : "Close";
    $("ticket-close").parentElement.title = closeToday ? `${ex}: Close closes yesterday's lots; use Close today for today's` : "";
    if (!closeToday && ticketOffset() === "3") setTicketOffset("1");
    const market = $("ticket-type-market");
    market.disabled = NO_MARKET_EXCHANGES.has(ex);
    market.textContent = market.disabled ? `Market (not on ${ex})` : "Market (IOC)";
    if (market.disabled && ticket.type.value === "market") ticket.type.value = "limit";
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
  function updateTicketLimits() {
    const b = ticketBounds();
    const node = $("ticket-limits");
    node.dataset.tick = b.tick ? String(b.tick) : "";
    node.dataset.lower = b.lower === null ? "" : String(b.lower);
    node.dataset.upper = b.upper === null ? "" : String(b.upper);
    ticket.price.step = b.tick ? String(b.tick) : "any";
    if (!b.info) {
      node.textContent = b.id ? "not in the instrument list" : "";
    } else {
      const dec = decimalsOf(b.tick);
      const limits = b.lower !== null && b.upper !== null ? `limits ${b.lower.toFixed(dec)} – ${b.upper.toFixed(dec)} · ` : "";
      node.textContent = `${limits}tick ${Number(b.tick.toPrecision(10))}`;
    }
    validateTicketPrice();
  }
  function updatePositionHint() {
    const id = ticketInstrument();
    const node = $("ticket-position-hint");
    if (!id || !state.login) { node.textContent = ""; return; }
    const rows = aggregatePositions().filter((a) => a.InstrumentID === id);
    const parts = rows.map((a) => `${POSI_DIRECTION[a.PosiDirection]} ${a.Position} (today ${a.Today}, yd ${a.Position - a.Today})`);
    node.textContent = parts.length ? `holding: ${parts.join(" · ")}` : "no position";
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
    if (!isFinite(p) || p <= 0) return "enter a price";
    if (b.tick && !onTick(p, b.tick)) return `price ${p} is not a multiple of the tick ${Number(b.tick.toPrecision(10))}`;
    if (b.upper !== null && p > b.upper + 1e-9) return `price ${p} is above the upper limit ${b.upper}`;
    if (b.lower !== null && p < b.lower - 1e-9) return `price ${p} is below the lower limit ${b.lower}`;
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
  function updateTicketSummary() {
    const side = ticketSide();
    const off = ticketOffset();
    const words = `${DIRECTION[side]} ${OFFSET[off].toLowerCase()}`;
    ticket.submit.textContent = words;
    ticket.submit.classList.toggle("buy", side === "0");
    ticket.submit.classList.toggle("sell", side === "1");
    const id = ticketInstrument();
    const type = ticket.type.value;
    const price = type === "market" ? "at market" : `@ ${ticket.price.value || "?"}`;
    const typeText = { limit: "limit, good for the day", market: "market, immediate or cancel", fak: "fill and kill", fok: "fill or kill" }[type];
    $("ticket-summary").textContent = id ? `${words} ${ticket.volume.value || "?"} ${id} ${price} (${typeText})` : "";
  }
  function updateTicketEnabled() {
    ticket.submit.disabled = !td.ready;
    ticket.submit.title = td.ready ? "" : "log in first";
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

  $("ticket-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = ticketInstrument();
    const b = ticketBounds();
    const problems = [];
    if (!td.ready || !state.login) problems.push("td is not logged in");
    if (!id) problems.push("enter an instrument");
    else if (!b.info && state.instrumentsLoaded) problems.push(`${id} is not in the instrument list`);
    const priceErr = priceProblem();
    if (priceErr) problems.push(priceErr);
    const vol = ticketVolume();
    if (!(vol >= 1)) problems.push("volume must be a whole number of lots, at least 1");
    const maxVol = b.info ? (ticket.type.value === "market" ? b.info.MaxMarketOrderVolume : b.info.MaxLimitOrderVolume) : 0;
    if (maxVol && vol > maxVol) problems.push(`volume ${vol} is above the exchange's maximum of ${maxVol} lots per order`);
    if (problems.length) {
      toast("error", "Order not sent", problems.join("; "));
      return;
    }
    const l = state.login;
    const type = ticket.type.value;
    const order = {
      BrokerID: l.BrokerID,
      InvestorID: l.UserID,
      UserID: l.UserID,
      ExchangeID: b.info ? b.info.ExchangeID : "",
      InstrumentID: id,
      Direction: ticketSide(),
      CombOffsetFlag: ticketOffset(),
      CombHedgeFlag: "1",
      VolumeTotalOriginal: vol,
      MinVolume: 1,
      ContingentCondition: "1",
      ForceCloseReason: "0",
      IsAutoSuspend: 0,
      UserForceClose: 0,
      IsSwapOrder: 0,
    };
    // Order types are CTP field combinations (CTP supports only the GFD and IOC time conditions).
    if (type === "market") Object.assign(order, { OrderPriceType: "1", LimitPrice: 0, TimeCondition: "1", VolumeCondition: "1" });
    else if (type === "fak") Object.assign(order, { OrderPriceType: "2", TimeCondition: "1", VolumeCondition: "1" });
    else if (type === "fok") Object.assign(order, { OrderPriceType: "2", TimeCondition: "1", VolumeCondition: "3" });
    else Object.assign(order, { OrderPriceType: "2", TimeCondition: "3", VolumeCondition: "1" });
    if (type !== "market") order.LimitPrice = roundToTick(parseFloat(ticket.price.value), b.tick);
    const label = describeOrderFields(order);
    const reqId = td.send({ MsgType: "ReqOrderInsert", InputOrder: order }, label);
    if (reqId !== null) {
      log("", `order sent: ${label} (${type}, RequestID ${reqId})`);
      $("ticket-summary").textContent = `sent: ${label}`;
    }
  });

  // ------------------------------------------------------------------ console
  $("console-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const link = $("console-api").value === "md" ? md : td;
    const text = $("console-input").value.trim();
    if (!text) return;
    link.sendRaw(text);
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
        toast("error", "Cannot find the gateway", `GET /api/endpoints failed: ${e.message || e}. Open this page from the webctp service.`);
      }
    }
    ep = Object.assign({ td: null, md: null }, ep || {});
    if (params.get("td")) ep.td = params.get("td");
    if (params.get("md")) ep.md = params.get("md");
    if (!ep.td && !ep.md) return;
    state.endpoints = ep;
    $("backend-info").textContent = [ep.backend ? `backend ${ep.backend}` : "", ep.broker_id ? `broker ${ep.broker_id}` : ""].filter(Boolean).join(" · ");
    $("login-token-label").hidden = !ep.token_required;
    if (ep.login_hint) $("login-hint").textContent = ep.login_hint;
    if (!ep.td) {
      setLinkState("td", "offline", "not served (md-only gateway)");
    }
    if (!ep.md) setLinkState("md", "offline", "not served (td-only gateway)");
    const user = $("login-user");
    if (!user.value) user.value = storageGet("webctp.user") || (ep.backend === "sim" ? "demo" : "");
    const pw = $("login-password");
    if (!pw.value && ep.backend === "sim") pw.value = "demo";
    log("", `gateway: td ${ep.td || "-"}, md ${ep.md || "-"}`);
  }

  renderAccount();
  renderInstruments();
  updateTicketEnabled();
  updateTicketSummary();
  drawChart();
  loadEndpoints();

  // For debugging from the browser console only; the page does not depend on it.
  window.webctpDemo = { state, td, md };
})();
