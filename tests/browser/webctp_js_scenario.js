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
  const bars = await md.bars(id, "1m", 5);
  out.bar = bars.length > 0 && bars[bars.length - 1].length === 6;
  md.close();
  td.close(1000, "bye");
  try { await td.query("QryOrder"); } catch (e) { out.closed = e.name; }
  return out;
}
