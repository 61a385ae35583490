/* webctp.js: a browser client for webctp, as an ES module (no build step).
 *
 *   import { connectTd, connectMd } from "/web/webctp.js";
 *
 *   const td = await connectTd("ws://127.0.0.1:8081/td/");
 *   await td.login("demo", "pw");
 *   const [account] = await td.query("QryTradingAccount");
 *   const order = await td.insertOrder({ instrumentId: "rb.front", direction: "buy", volume: 1, price: 3100 });
 *   await order.waitDone();                      // filled or cancelled; throws OrderRejected
 *
 *   const md = await connectMd("ws://127.0.0.1:8081/md/");
 *   await md.login();
 *   for await (const tick of md.subscribe(["rb.front"])) { ... break; }   // break unsubscribes
 *
 * The same surface as the Python client (webctp.client): RequestIDs are chosen here, answers
 * are collected up to IsLast, error answers reject with CtpError (errorId, errorMsg, detail),
 * the session's link state is in `state` (SessionState pushes) and onPush() delivers pushes.
 * Memory is bounded: a subscription keeps one unread tick per instrument (a newer tick of an
 * instrument replaces the unread one, as webctp itself conflates); an answer may hold at most
 * MAX_ROWS rows.
 */

const MAX_ROWS = 1_000_000;
const INT32_MAX = 2147483647;

export class ClientError extends Error {}

/** An error answer: CTP's ErrorID/ErrorMsg or one of the gateway's own (-400, -401, ...). */
export class CtpError extends ClientError {
  constructor(frame) {
    const info = (frame && frame.RspInfo) || {};
    const errorId = Number(info.ErrorID ?? -500);
    const errorMsg = String(info.ErrorMsg ?? "");
    const detail = frame && typeof frame.Detail === "string" ? frame.Detail : null;
    super(`${frame.MsgType || "error"} ${errorId}: ${errorMsg}${detail ? ` (${detail})` : ""}`);
    this.name = "CtpError";
    this.errorId = errorId;
    this.errorMsg = errorMsg;
    this.detail = detail;
    this.msgType = frame.MsgType || "";
    this.request = frame.Request ?? null;
    this.requestId = Number.isInteger(frame.RequestID) ? frame.RequestID : null;
    this.frame = frame;
  }
}

/** The order was refused: by CTP (RspOrderInsert) or by the exchange (status 5). */
export class OrderRejected extends CtpError {
  constructor(frame) {
    super(frame);
    this.name = "OrderRejected";
  }
}

/** No answer within the `timeoutMs` given to call()/request()/query(). */
export class RequestTimeout extends ClientError {
  constructor(msgType, timeoutMs) {
    super(`${msgType}: no answer within ${timeoutMs} ms`);
    this.name = "RequestTimeout";
    this.msgType = msgType;
    this.timeoutMs = timeoutMs;
  }
}

/** The WebSocket to webctp closed. */
export class ConnectionLost extends ClientError {
  constructor(code, reason) {
    super(`connection to webctp closed (code ${code}: ${reason || "no reason"})`);
    this.name = "ConnectionLost";
    this.code = code;
    this.reason = reason;
  }
}

/** The frame's error as a CtpError (RspInfo.ErrorID not 0), else null. */
export function errorOf(frame) {
  const info = frame.RspInfo;
  return info && typeof info === "object" && info.ErrorID !== 0 ? new CtpError(frame) : null;
}

const ENVELOPE = new Set(["MsgType", "RspInfo", "RequestID", "IsLast", "Request", "Detail"]);

/** The payload of an answer (its one non-envelope key), null when there is none. */
export function payloadOf(frame) {
  for (const [key, value] of Object.entries(frame)) {
    if (!ENVELOPE.has(key)) return value && typeof value === "object" ? value : null;
  }
  return null;
}

/** A promise with its resolve/reject exposed. */
function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

class Pending {
  constructor(count) {
    this.count = count ?? null;
    this.rows = [];
    this.done = deferred();
    this.finished = false;
  }
  feed(frame) {
    if (this.finished) return;
    if (this.rows.length >= MAX_ROWS) return this.fail(new ClientError(`answer over ${MAX_ROWS} rows`));
    this.rows.push(frame);
    const error = errorOf(frame);
    if (error) this.fail(error);
    else if (this.rows.length === this.count || (this.count === null && frame.IsLast)) {
      this.finished = true;
      this.done.resolve(this.rows);
    }
  }
  fail(error) {
    if (this.finished) return;
    this.finished = true;
    this.done.reject(error);
  }
}

/** The shared core of TdClient and MdClient: one WebSocket, its answers, state and pushes. */
export class Connection {
  constructor(ws) {
    this.ws = ws;
    this.nextId = 0;
    this.pending = new Map();
    this.listeners = new Set();
    this.stateWaiters = new Set();
    /** The last SessionState.State webctp pushed ("new" before any). */
    this.state = "new";
    this.stateDetail = "";
    /** The RspUserLogin payload of the current CTP session (updated after a re-login). */
    this.session = {};
    /** A ConnectionLost once the socket is closed, else null. */
    this.closed = null;
    ws.addEventListener("message", (ev) => {
      let frame;
      try { frame = JSON.parse(ev.data); } catch (e) { return; } // not webctp's
      if (frame && typeof frame === "object" && !Array.isArray(frame)) this.dispatch(frame);
    });
    ws.addEventListener("close", (ev) => this.lost(ev.code, ev.reason));
  }

  /** A fresh RequestID (int32, never 0, wraps around). */
  requestId() {
    do { this.nextId = (this.nextId % INT32_MAX) + 1; } while (this.pending.has(this.nextId));
    return this.nextId;
  }

  /** Send one frame (as is). */
  send(frame) {
    this.sendText(JSON.stringify(frame));
  }

  /** Send a text frame exactly as given (a debugging console; webctp answers what it cannot
   *  parse with -400). Its answers go to onPush listeners. */
  sendText(text) {
    if (this.closed) throw this.closed;
    this.ws.send(text);
  }

  /** Send `frame` with a fresh RequestID; resolves to its answer frames up to IsLast (or
   *  `count` frames); rejects with CtpError on an error answer, with RequestTimeout when
   *  `timeoutMs` passes first (a later answer is then offered to onPush listeners). */
  async call(frame, { count, timeoutMs } = {}) {
    const rid = this.requestId();
    const pending = new Pending(count);
    this.pending.set(rid, pending);
    const timer = timeoutMs > 0
      ? setTimeout(() => pending.fail(new RequestTimeout(frame.MsgType, timeoutMs)), timeoutMs) : 0;
    try {
      this.send({ ...frame, RequestID: rid });
      return await pending.done.promise;
    } finally {
      clearTimeout(timer);
      this.pending.delete(rid);
    }
  }

  /** Send `frame` with a fresh RequestID without waiting for an answer; returns the RequestID.
   *  For requests CTP answers only when they fail (ReqOrderAction: a cancel that works shows
   *  as RtnOrder): such answers, like any frame no call() waits for, go to onPush listeners. */
  post(frame) {
    const rid = this.requestId();
    this.send({ ...frame, RequestID: rid });
    return rid;
  }

  expectAnswer(rid) {
    const pending = new Pending();
    this.pending.set(rid, pending);
    return pending;
  }

  /** Resolves once `state` is one of `states` (rejects when the connection closes). */
  waitState(...states) {
    if (states.includes(this.state)) return Promise.resolve(this.state);
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      const waiter = { states, resolve, reject };
      this.stateWaiters.add(waiter);
    });
  }

  /** Call `handler(frame)` for every frame of these MsgTypes (null: every frame that is not
   *  an answer to one of this client's requests). Returns a function that stops it. */
  onPush(msgTypes, handler) {
    const entry = { types: msgTypes ? new Set(msgTypes) : null, handler };
    this.listeners.add(entry);
    return () => this.listeners.delete(entry);
  }

  dispatch(frame) {
    const msgType = frame.MsgType;
    const rid = frame.RequestID;
    if (msgType === "SessionState") {
      const body = frame.SessionState || {};
      this.state = String(body.State ?? "");
      this.stateDetail = String(body.Detail ?? "");
      for (const waiter of [...this.stateWaiters]) {
        if (waiter.states.includes(this.state)) {
          this.stateWaiters.delete(waiter);
          waiter.resolve(this.state);
        }
      }
    } else if (msgType === "RspUserLogin" && rid === null && !errorOf(frame)) {
      this.session = frame.RspUserLogin || {}; // a re-login after a reconnect
      this.onLogin(this.session);
    }
    if (Number.isInteger(rid) && this.pending.has(rid)) {
      this.pending.get(rid).feed(frame);
      return;
    }
    if (this.onFrame(frame)) return;
    this.publish(frame);
  }

  publish(frame) {
    for (const { types, handler } of [...this.listeners]) {
      if (types && !types.has(frame.MsgType)) continue;
      try { handler(frame); } catch (e) { console.error("webctp.js push handler failed", e); }
    }
  }

  lost(code, reason) {
    if (this.closed) return;
    this.closed = new ConnectionLost(code, reason);
    for (const pending of this.pending.values()) pending.fail(this.closed);
    for (const waiter of this.stateWaiters) waiter.reject(this.closed);
    this.stateWaiters.clear();
    this.onClosed();
  }

  /** Subclass hooks. */
  onFrame(frame) { return false; }
  onLogin(login) {}
  onClosed() {}

  close(code = 1000, reason = "") {
    this.ws.close(code, reason);
  }
}

// CTP OrderStatus: 0 all traded, 1/3 queueing, 2/4 not queueing (final), 5 cancelled.
const FINAL_STATUSES = new Set(["0", "2", "4", "5"]);
const DIRECTIONS = { buy: "0", sell: "1" };
const OFFSETS = { open: "0", close: "1", close_today: "3", close_yesterday: "4" };
// [OrderPriceType, TimeCondition, VolumeCondition]; docs/td_protocol.md "Orders"
const KINDS = { limit: ["2", "3", "1"], fak: ["2", "1", "1"], fok: ["2", "1", "3"], market: ["1", "1", "1"] };

/** What insertOrder returns; its state follows RtnOrder/RtnTrade. */
export class Order {
  constructor(client, requestId, input) {
    this.client = client;
    this.requestId = requestId;
    this.input = input;
    /** The last Order pushed (null before the first RtnOrder). */
    this.data = null;
    /** The RtnTrade payloads of this order. */
    this.trades = [];
    /** Why it was rejected (OrderRejected), or null. */
    this.error = null;
    this.changeWaiters = new Set();
    this.changeHandlers = new Set();
  }
  get status() { return this.data ? String(this.data.OrderStatus ?? "") : null; }
  get volumeTraded() { return this.trades.reduce((n, t) => n + Number(t.Volume || 0), 0); }
  get sysId() {
    return this.data && String(this.data.OrderSysID || "").trim() ? this.data.OrderSysID : null;
  }
  /** Rejected, cancelled or completely filled, with all its trades received. */
  get done() {
    if (this.error) return true;
    if (!this.data || !FINAL_STATUSES.has(this.status)) return false;
    return this.volumeTraded >= Number(this.data.VolumeTraded || 0);
  }
  /** Call `handler(order)` after every change. Returns a function that stops it. */
  onChange(handler) {
    this.changeHandlers.add(handler);
    return () => this.changeHandlers.delete(handler);
  }
  notify() {
    for (const waiter of [...this.changeWaiters]) waiter.resolve();
    this.changeWaiters.clear();
    for (const handler of [...this.changeHandlers]) {
      try { handler(this); } catch (e) { console.error("webctp.js order handler failed", e); }
    }
  }
  /** Resolves at the next change of the order; rejects when the connection is gone. */
  changed() {
    if (this.client.closed) return Promise.reject(this.client.closed);
    const d = deferred();
    this.changeWaiters.add(d);
    return d.promise;
  }
  /** Resolves when the order is filled or cancelled; rejects with OrderRejected when refused. */
  async waitDone() {
    while (!this.done) await this.changed();
    if (this.error) throw this.error;
    return this;
  }
  /** Resolves once the exchange accepted the order (an OrderSysID) or it is done. */
  async waitAccepted() {
    while (!this.sysId && !this.done) await this.changed();
    if (this.error) throw this.error;
    return this;
  }
  /** Cancel and resolve when done; rejects with CtpError when the cancel is refused. */
  async cancel() {
    if (!this.data) await this.waitAccepted();
    if (this.done) return this;
    const o = this.data;
    const action = { ActionFlag: "0", InstrumentID: o.InstrumentID, ExchangeID: o.ExchangeID };
    if (this.sysId) action.OrderSysID = o.OrderSysID;
    else Object.assign(action, { FrontID: o.FrontID, SessionID: o.SessionID, OrderRef: o.OrderRef });
    const client = this.client;
    const rid = client.requestId();
    const answer = client.expectAnswer(rid);
    try {
      client.send({ MsgType: "ReqOrderAction", InputOrderAction: action, RequestID: rid });
      const refused = answer.done.promise.then(() => null, (error) => error);
      while (!this.done) {
        const error = await Promise.race([refused, this.changed().then(() => null)]);
        if (error && !this.done) throw error;
      }
    } finally {
      client.pending.delete(rid);
    }
    return this;
  }
}

/** A trader session: `await connectTd(url)`. */
export class TdClient extends Connection {
  constructor(ws) {
    super(ws);
    this.frontSession = [0, 0];
    this.byRid = new Map(); // RequestID -> Order without RtnOrder yet
    this.byKey = new Map(); // "FrontID:SessionID:OrderRef" -> Order
    this.bySys = new Map(); // "ExchangeID:OrderSysID" -> Order
    this.stray = new Map(); // trades that overtook their order (bounded, oldest dropped)
    this.exchanges = new Map();
  }

  /** Log in (connect, authenticate, log in, confirm the settlement); the RspUserLogin payload. */
  async login(userId, password, { brokerId = "", ...fields } = {}) {
    const payload = { UserID: userId, Password: password, ...fields };
    if (brokerId) payload.BrokerID = brokerId;
    const rows = await this.call({ MsgType: "ReqUserLogin", ReqUserLogin: payload });
    this.session = payloadOf(rows[rows.length - 1]) || {};
    this.onLogin(this.session);
    return this.session;
  }
  onLogin(login) { this.frontSession = [Number(login.FrontID || 0), Number(login.SessionID || 0)]; }

  async logout() { await this.call({ MsgType: "ReqUserLogout", UserLogout: {} }); }

  /** Any trader request ("ReqQryOrder" or "QryOrder"): its answer frames up to IsLast. The
   *  payload key is the request's name without Req, except ReqOrderInsert & co: pass `key`.
   *  `timeoutMs`: see call(). */
  async request(msgType, payload = {}, key = null, { timeoutMs } = {}) {
    const name = msgType.startsWith("Req") ? msgType : `Req${msgType}`;
    return this.call({ MsgType: name, [key || name.slice(3)]: payload }, { timeoutMs });
  }

  /** A query's rows (payloads; [] for an empty result). */
  async query(msgType, payload = {}, { timeoutMs } = {}) {
    const rows = await this.request(msgType, payload, null, { timeoutMs });
    return rows.map(payloadOf).filter((p) => p !== null);
  }

  async exchangeOf(instrumentId) {
    if (!this.exchanges.has(instrumentId)) {
      const rows = await this.query("QryInstrument", { InstrumentID: instrumentId });
      if (!rows.length) throw new ClientError(`no instrument ${instrumentId}`);
      this.exchanges.set(instrumentId, rows[0].ExchangeID);
    }
    return this.exchanges.get(instrumentId);
  }

  /** Place an order; resolves to its Order handle once sent (CTP answers an accepted order
   *  only with RtnOrder). `fields` are more InputOrder fields, which win. */
  async insertOrder({ instrumentId, direction, volume, price = 0, offset = "open", kind = "limit",
                      exchangeId = "", fields = {} }) {
    if (!(direction in DIRECTIONS)) throw new TypeError(`direction: "buy" or "sell", not ${direction}`);
    if (!(offset in OFFSETS)) throw new TypeError(`offset: one of ${Object.keys(OFFSETS)}`);
    if (!(kind in KINDS)) throw new TypeError(`kind: one of ${Object.keys(KINDS)}`);
    const [priceType, timeCondition, volumeCondition] = KINDS[kind];
    const input = {
      InstrumentID: instrumentId,
      ExchangeID: exchangeId || await this.exchangeOf(instrumentId),
      Direction: DIRECTIONS[direction],
      CombOffsetFlag: OFFSETS[offset],
      CombHedgeFlag: "1",
      OrderPriceType: priceType,
      LimitPrice: price,
      VolumeTotalOriginal: volume,
      TimeCondition: timeCondition,
      VolumeCondition: volumeCondition,
      MinVolume: 1,
      ContingentCondition: "1",
      ForceCloseReason: "0",
      ...fields,
    };
    const rid = this.requestId();
    const order = new Order(this, rid, input);
    this.byRid.set(rid, order);
    try {
      this.send({ MsgType: "ReqOrderInsert", InputOrder: input, RequestID: rid });
    } catch (e) {
      this.byRid.delete(rid);
      throw e;
    }
    return order;
  }

  onFrame(frame) {
    const msgType = frame.MsgType;
    let order = null;
    if (msgType === "RtnOrder") order = this.onOrder(frame.Order || {});
    else if (msgType === "RtnTrade") order = this.onTrade(frame.Trade || {});
    else if ((msgType === "RspOrderInsert" || msgType === "ErrRtnOrderInsert") && errorOf(frame)) {
      const rid = Number.isInteger(frame.RequestID) ? frame.RequestID : (frame.InputOrder || {}).RequestID;
      order = this.byRid.get(rid) || null;
      if (order && !order.error) {
        this.byRid.delete(rid);
        order.error = new OrderRejected(frame);
      } else order = null;
    }
    if (!order) return false; // not one of ours: still offered to onPush listeners
    if (order.done) this.forget(order);
    order.notify();
    this.publish(frame);
    return true;
  }

  onOrder(o) {
    const key = `${o.FrontID}:${o.SessionID}:${o.OrderRef}`;
    let order = this.byKey.get(key);
    if (!order) {
      if (o.FrontID !== this.frontSession[0] || o.SessionID !== this.frontSession[1]) return null;
      order = this.byRid.get(o.RequestID);
      if (!order) return null;
      this.byRid.delete(o.RequestID);
      this.byKey.set(key, order);
    }
    order.data = o;
    if (o.OrderSubmitStatus === "4" && o.OrderStatus === "5" && !order.error) {
      order.error = new OrderRejected({
        MsgType: "RtnOrder", RspInfo: { ErrorID: 0, ErrorMsg: o.StatusMsg || "" }, Order: o,
      });
    }
    if (order.sysId) {
      const sys = `${o.ExchangeID}:${o.OrderSysID}`;
      if (!this.bySys.has(sys)) {
        this.bySys.set(sys, order);
        order.trades.push(...(this.stray.get(sys) || []));
        this.stray.delete(sys);
      }
    }
    return order;
  }

  onTrade(t) {
    const sys = `${t.ExchangeID}:${t.OrderSysID}`;
    const order = this.bySys.get(sys);
    if (!order) {
      if (this.stray.size >= 1024) this.stray.delete(this.stray.keys().next().value);
      if (!this.stray.has(sys)) this.stray.set(sys, []);
      this.stray.get(sys).push(t);
      return null;
    }
    order.trades.push(t);
    return order;
  }

  forget(order) {
    this.byRid.delete(order.requestId);
    if (order.data) {
      this.byKey.delete(`${order.data.FrontID}:${order.data.SessionID}:${order.data.OrderRef}`);
      this.bySys.delete(`${order.data.ExchangeID}:${order.data.OrderSysID}`);
    }
  }

  onClosed() {
    for (const order of [...this.byRid.values(), ...this.byKey.values()]) order.notify();
  }
}

/** Ticks of some instruments: `for await (const tick of md.subscribe([...]))`. Subscribes on
 *  the first read; leaving the loop (break/return/throw) or close() unsubscribes. */
export class Subscription {
  constructor(md, instruments) {
    this.md = md;
    this.instruments = instruments;
    this.latest = new Map();
    this.wake = null;
    this.started = null;
    this.closedFlag = false;
    /** alias (`rb.front`, resolved by webctp under the simulator) -> the contract webctp
     *  subscribed for it: ticks name the contract. */
    this.resolved = new Map();
    /** Ticks replaced by a newer one of the same instrument before they were read. */
    this.conflated = 0;
  }
  put(tick) {
    const id = String(tick.InstrumentID || "");
    if (this.latest.delete(id)) this.conflated += 1;
    this.latest.set(id, tick);
    this.poke();
  }
  poke() {
    if (this.wake) { const w = this.wake; this.wake = null; w.resolve(); }
  }
  /** Subscribe; resolves when webctp acknowledged every instrument. */
  start() {
    if (!this.started) this.started = this.md.subscribeNow(this).then(() => this);
    return this.started;
  }
  /** Unsubscribe (the instruments no other subscription of this client wants). */
  async close() {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.poke();
    if (this.started) await this.md.unsubscribeNow(this);
  }
  async next() {
    await this.start();
    while (!this.latest.size) {
      if (this.closedFlag) return { done: true, value: undefined };
      if (this.md.closed) throw this.md.closed;
      this.wake = deferred();
      await this.wake.promise;
    }
    const [id, tick] = this.latest.entries().next().value;
    this.latest.delete(id);
    return { done: false, value: tick };
  }
  async return() {
    await this.close();
    return { done: true, value: undefined };
  }
  [Symbol.asyncIterator]() { return this; }
}

/** A market-data session: `await connectMd(url)`. */
export class MdClient extends Connection {
  constructor(ws) {
    super(ws);
    this.subs = new Map(); // instrument -> Set<Subscription>
    // Subscriptions naming an alias that await their answers: till then the latest tick of each
    // contract is kept in `recent` (the alias's contract is only known from the answer, and its
    // first tick may come first). One tick per contract, so bounded by the subscriptions.
    this.aliasRequests = 0;
    this.recent = new Map();
  }
  /** Log in (most fronts, and the simulator, accept empty credentials). */
  async login(userId = "", password = "") {
    const rows = await this.call({ MsgType: "ReqUserLogin", ReqUserLogin: { UserID: userId, Password: password } });
    this.session = payloadOf(rows[rows.length - 1]) || {};
    return this.session;
  }
  /** Ticks of these instruments (see Subscription). */
  subscribe(instruments) {
    const ids = [...new Set(instruments)];
    if (!ids.length) throw new TypeError("subscribe needs at least one instrument");
    return new Subscription(this, ids);
  }
  async subscribeNow(sub) {
    for (const id of sub.instruments) { // before the request: ticks may precede the answers
      if (!this.subs.has(id)) this.subs.set(id, new Set());
      this.subs.get(id).add(sub);
    }
    const aliases = sub.instruments.some(isAlias);
    if (aliases) this.aliasRequests += 1;
    try {
      const rows = await this.call({ MsgType: "SubscribeMarketData", InstrumentID: sub.instruments }, { count: sub.instruments.length });
      if (aliases) { // one answer per item, in order: each names the contract
        sub.instruments.forEach((requested, i) => {
          const contract = String((payloadOf(rows[i]) || {}).InstrumentID || "");
          if (!isAlias(requested) || !contract) return;
          sub.resolved.set(requested, contract);
          if (!this.subs.has(contract)) this.subs.set(contract, new Set());
          this.subs.get(contract).add(sub);
          const tick = this.recent.get(contract);
          if (tick && !sub.instruments.includes(contract)) sub.put(tick);
        });
      }
    } catch (e) {
      this.drop(sub);
      throw e;
    } finally {
      if (aliases) this.aliasRequests -= 1;
      if (!this.aliasRequests) this.recent.clear();
    }
  }
  /** Forget `sub`; the instruments no other subscription wants (a resolved alias by its
   *  contract only: both names are the same subscription at webctp). */
  drop(sub) {
    const unused = [];
    for (const id of sub.instruments) {
      const keys = sub.resolved.has(id) ? [id, sub.resolved.get(id)] : [id];
      for (const key of keys) {
        const set = this.subs.get(key);
        if (!set) continue;
        set.delete(sub);
        if (!set.size) this.subs.delete(key);
      }
      const last = keys[keys.length - 1];
      if (!this.subs.has(last) && !unused.includes(last)) unused.push(last);
    }
    return unused;
  }
  async unsubscribeNow(sub) {
    const unused = this.drop(sub);
    if (unused.length && !this.closed) {
      await this.call({ MsgType: "UnSubscribeMarketData", InstrumentID: unused }, { count: unused.length });
    }
  }
  /** GetBars (webctp's extension): [time, open, high, low, close, volume] rows. */
  async bars(instrumentId, period = "1m", count = 500) {
    const rows = await this.call({ MsgType: "GetBars", InstrumentID: instrumentId, Period: period, Count: count });
    const body = payloadOf(rows[rows.length - 1]);
    if (!body) throw new ClientError("GetBars answered without bars");
    return body.Bars || [];
  }
  onFrame(frame) {
    if (frame.MsgType !== "RtnDepthMarketData") return false;
    const tick = frame.DepthMarketData || {};
    const id = String(tick.InstrumentID || "");
    if (this.aliasRequests) this.recent.set(id, tick);
    const subs = this.subs.get(id);
    if (!subs || !subs.size) return false;
    for (const sub of subs) sub.put(tick);
    return true;
  }
  onClosed() {
    for (const set of this.subs.values()) for (const sub of set) sub.poke();
  }
}

/** `rb.front`: the front-month alias webctp resolves under the simulator (docs/td_protocol.md). */
const ALIAS_SUFFIX = ".front";
function isAlias(id) { return id.endsWith(ALIAS_SUFFIX); }

function withToken(url, token) {
  if (!token) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
}

function open(url, token, Kind, timeoutMs) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(withToken(url, token));
    const client = new Kind(ws);
    const timer = setTimeout(() => { ws.close(); reject(new ConnectionLost(null, "connect timed out")); }, timeoutMs);
    ws.addEventListener("open", () => { clearTimeout(timer); resolve(client); }, { once: true });
    ws.addEventListener("close", (ev) => {
      clearTimeout(timer);
      reject(new ConnectionLost(ev.code, ev.reason || "could not connect"));
    }, { once: true });
  });
}

/** `const td = await connectTd("ws://host:8081/td/", {token})`: a trader session. */
export function connectTd(url, { token = null, timeoutMs = 10000 } = {}) {
  return open(url, token, TdClient, timeoutMs);
}

/** `const md = await connectMd("ws://host:8081/md/", {token})`: a market-data session. */
export function connectMd(url, { token = null, timeoutMs = 10000 } = {}) {
  return open(url, token, MdClient, timeoutMs);
}

/** Keeps a session open: `new Reconnector(connectTd, url)`, then `start()`. After the socket
 *  closes (or cannot be opened) it waits `retryDelay` ms and connects again; the delay doubles
 *  after each failure up to `maxDelayMs` and is back to `minDelayMs` once a socket opens (set
 *  `retryDelay` to choose the next wait). Events, with `on(event, fn)` (returns a function that
 *  stops it): "connecting"; "open" (client): a new TdClient/MdClient, log in again there;
 *  "close" (error): the socket closed (ConnectionLost) or could not be opened; "retry" (at):
 *  the next attempt is at `at` (Date.now() milliseconds). `stop()` closes and stops retrying. */
export class Reconnector {
  constructor(connect, url, { token = null, timeoutMs = 10000, minDelayMs = 1000, maxDelayMs = 30000 } = {}) {
    this.connect = connect;
    this.url = url;
    this.options = { token, timeoutMs };
    this.minDelayMs = minDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.retryDelay = minDelayMs;
    /** The client of the open socket, else null. */
    this.client = null;
    /** When the next attempt is due (Date.now() milliseconds), else null. */
    this.retryAt = null;
    this.running = false;
    this.timer = 0;
    this.handlers = { connecting: new Set(), open: new Set(), close: new Set(), retry: new Set() };
  }
  on(event, fn) {
    this.handlers[event].add(fn);
    return () => this.handlers[event].delete(fn);
  }
  emit(event, arg) {
    for (const fn of [...this.handlers[event]]) {
      try { fn(arg); } catch (e) { console.error(`webctp.js Reconnector ${event} handler failed`, e); }
    }
  }
  start() {
    if (this.running) return;
    this.running = true;
    this.attempt();
  }
  async attempt() {
    this.timer = 0;
    this.retryAt = null;
    if (!this.running) return;
    this.emit("connecting");
    let client;
    try {
      client = await this.connect(this.url, this.options);
    } catch (e) {
      if (!this.running) return;
      this.emit("close", e);
      this.schedule();
      return;
    }
    if (!this.running) { client.close(1000, "stopped"); return; }
    this.client = client;
    this.retryDelay = this.minDelayMs;
    // The client's own close listener ran first: client.closed is the ConnectionLost.
    client.ws.addEventListener("close", () => {
      if (this.client !== client) return;
      this.client = null;
      this.emit("close", client.closed);
      this.schedule();
    });
    this.emit("open", client);
  }
  schedule() {
    if (!this.running || this.timer) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(delay * 2, this.maxDelayMs);
    this.retryAt = Date.now() + delay;
    this.timer = setTimeout(() => this.attempt(), delay);
    this.emit("retry", this.retryAt);
  }
  stop(code = 1000, reason = "") {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = 0;
    this.retryAt = null;
    const client = this.client;
    this.client = null;
    if (client) client.close(code, reason);
  }
}

/** The service's WebSocket addresses, from the page's own origin (GET /api/endpoints). */
export async function endpoints(base = "") {
  const response = await fetch(`${base}/api/endpoints`);
  if (!response.ok) throw new ClientError(`GET /api/endpoints: ${response.status}`);
  return response.json();
}
