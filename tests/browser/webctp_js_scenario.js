// Run by test_webctp_js.py in the page (page.evaluate): the browser client end to end.
async () => {
  const ctp = await import("/web/webctp.js");
  const ep = await ctp.endpoints();
  const out = {};
  const td = await ctp.connectTd(ep.td);
  try { await td.query("QryTradingAccount"); } catch (e) {
    out.beforeLogin = [e.name, e.errorId, e instanceof ctp.CtpError];
  }
  const login = await td.login("jsuser", "pw");
  out.login = [login.UserID, td.session.SessionID === login.SessionID];
  out.state = await td.waitState("ready");
  const [account] = await td.query("QryTradingAccount");
  out.available = account.Available;
  out.empty = await td.query("QryOrder");
  try { await td.query("QryInstrument", { NoSuchField: 1 }); } catch (e) {
    out.bad = [e.errorId, e.detail, e.msgType, e.request];
  }
  const [inst] = await td.query("QryInstrument", { ExchangeID: "SHFE" });
  const id = inst.InstrumentID;
  const [market] = await td.query("QryDepthMarketData", { InstrumentID: id });
  const trades = [];
  const stop = td.onPush(["RtnTrade"], (f) => trades.push(f.Trade));
  const filled = await td.insertOrder({ instrumentId: id, direction: "buy", volume: 2, 
    price: market.UpperLimitPrice });
  await filled.waitDone();
  stop();
  out.filled = [filled.status, filled.volumeTraded, filled.trades.length, trades.length];
  const resting = await td.insertOrder({ instrumentId: id, direction: "buy", volume: 1, 
    price: market.LowerLimitPrice });
  await resting.waitAccepted();
  const accepted = [resting.status, resting.done];
  await resting.cancel();
  out.cancelled = [...accepted, resting.status, resting.done];
  const unknown = await td.insertOrder({ instrumentId: "zz0001", exchangeId: "SHFE", direction: "buy", volume: 1, price: 1 });
  try { await unknown.waitDone(); } catch (e) { out.rejected = [e.name, e.errorId, e instanceof ctp.OrderRejected]; }
  const md = await ctp.connectMd(ep.md);
  await md.login();
  const seen = new Set();
  for await (const tick of md.subscribe([id])) {
    seen.add(tick.InstrumentID);
    out.tick = tick.LastPrice > 0;
    break;
  }
  out.ticks = [...seen];
  out.subsAfterBreak = md.subs.size;
  // an alias (simulator): its ticks name the contract it stands for
  const aliased = md.subscribe(["rb.front"]);
  for await (const tick of aliased) {
    out.alias = [aliased.resolved.get("rb.front"), tick.InstrumentID];
    break;
  }
  out.subsAfterAlias = md.subs.size;
  const bars = await md.bars(id, "1m", 5);
  out.bar = bars.length > 0 && bars[bars.length - 1].length === 6;
  // post(): a request answered only when it fails; the refusal comes to onPush
  const refused = new Promise((resolve) => {
    const stopIt = td.onPush(["RspOrderAction"], (f) => { stopIt(); resolve(f); });
  });
  const rid = td.post({ MsgType: "ReqOrderAction",
    InputOrderAction: { ActionFlag: "0", InstrumentID: id, ExchangeID: "SHFE", OrderSysID: "987654321" } });
  const refusal = await refused;
  out.posted = [refusal.RequestID === rid, ctp.errorOf(refusal) instanceof ctp.CtpError,
    ctp.errorOf({ MsgType: "RspX", RspInfo: { ErrorID: 0, ErrorMsg: "" } })];
  // timeoutMs: a cancel that works has no answer but RtnOrder, so waiting for one times out
  const another = await td.insertOrder({ instrumentId: id, direction: "buy", volume: 1,
    price: market.LowerLimitPrice });
  await another.waitAccepted();
  try {
    await td.call({ MsgType: "ReqOrderAction", InputOrderAction: { ActionFlag: "0", InstrumentID: id,
      ExchangeID: another.data.ExchangeID, OrderSysID: another.data.OrderSysID } }, { timeoutMs: 500 });
  } catch (e) {
    out.timeout = [e.name, e instanceof ctp.RequestTimeout, e.timeoutMs];
  }
  await another.waitDone();
  out.cancelledAnyway = another.status;
  // sendText(): sent as typed; the gateway's -400 comes to onPush
  const bad = new Promise((resolve) => {
    const stopIt = td.onPush(null, (f) => {
      const e = ctp.errorOf(f);
      if (e && e.errorId === -400) { stopIt(); resolve(e.errorId); }
    });
  });
  td.sendText("{not json");
  out.text = await bad;
  // Reconnector: a dropped socket is opened again, and logged in again by the "open" handler
  const until = async (ok) => {
    for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 20));
    return ok();
  };
  const keeper = new ctp.Reconnector(ctp.connectTd, ep.td, { minDelayMs: 50 });
  const events = [];
  const sessions = [];
  keeper.on("connecting", () => events.push("connecting"));
  keeper.on("open", (c) => {
    events.push("open");
    c.login("jsuser", "pw").then((l) => sessions.push(l.SessionID));
  });
  keeper.on("close", (e) => events.push(`close ${e.name}`));
  keeper.on("retry", (at) => events.push(`retry ${at > Date.now() ? "later" : "now"}`));
  keeper.start();
  await until(() => sessions.length === 1);
  const first = keeper.client;
  first.ws.close();
  const again = await until(() => sessions.length === 2);
  out.reconnector = [again, events.join(","), sessions[0] !== sessions[1], keeper.client !== first,
    keeper.retryDelay];
  const second = keeper.client;
  keeper.stop();
  await until(() => second.closed !== null);
  out.stopped = [keeper.client, keeper.retryAt, second.closed.name, events.length];
  md.close();
  td.close(1000, "bye");
  try { await td.query("QryOrder"); } catch (e) { out.closed = e.name; }
  return out;
}
