/* webctp web demo: the page's own words in English and Chinese.
 *
 * Elements carry data-i18n="key" (their text) or data-i18n-attr="attr:key;attr:key"; the page
 * calls webctpI18n.apply(lang) and webctpI18n.t(key, vars) for words it builds itself.
 * CTP's own messages (ErrorMsg, StatusMsg) are never translated: they are shown as CTP sent them.
 */
"use strict";

(function () {
  const en = {
    skip_to_ticket: "Skip to the order ticket",
    user: "User", password: "Password", token: "Token", log_in: "Log in", log_out: "Log out",
    confirm_orders: "Confirm orders", confirm_title: "Ask before every order is sent",
    quotes: "Quotes", subscribe: "Subscribe", subscribe_label: "Instrument to subscribe",
    stale: "stale: link down", stale_td: "stale: trading link down",
    quotes_hint: "Enter/click a row to select; bid/ask fill the ticket",
    instrument: "Instrument", last: "Last", change: "Change", chg_pct: "Chg %", bid: "Bid", bid_vol: "Bid vol",
    ask: "Ask", ask_vol: "Ask vol", open: "Open", high: "High", low: "Low", volume: "Volume", oi: "Open int.",
    upper: "Upper lim.", lower: "Lower lim.", presettle: "Pre-settle", updated: "Updated", actions: "Actions",
    quotes_empty: "No subscriptions. Log in, then subscribe an instrument.",
    chart: "Chart", timeframe: "Timeframe", chart_empty: "Subscribe an instrument and select it to see its chart.",
    depth: "Depth", depth_caption: "Five best bid and ask levels; choose a price to load it into the ticket",
    level: "Level", price: "Price", mine: "Mine",
    ticket: "Order ticket", modify_abort: "Stop modifying", side: "Side", buy: "Buy", sell: "Sell",
    offset: "Offset", open_off: "Open", close_off: "Close", close_yd: "Close yd", close_today: "Close today",
    type: "Type", type_limit: "Limit (GFD)", type_market: "Market (IOC)", type_fak: "FAK (limit, IOC)",
    type_fok: "FOK (limit, IOC, all)", tick_down: "One tick down", tick_up: "One tick up",
    lot_down: "One lot less", lot_up: "One lot more", lots: "Volume",
    orders_trades: "Orders and trades", orders: "Orders", trades: "Trades", working_only: "working only",
    cancel_all: "Cancel all", time: "Time", filled: "Filled", status: "Status", message: "Message",
    positions_tools: "Positions and tools", positions: "Positions", instruments: "Instruments", log: "Log",
    console: "Console", close_all: "Close all", pos: "Pos", today: "Today", yd: "Yd", closable: "Closable",
    avg: "Avg", pnl: "P/L", margin: "Margin", search_label: "Search instruments",
    search_placeholder: "code, name, product or exchange", name: "Name", exchange: "Exchange", class: "Class",
    multiplier: "Multiplier", tick: "Tick", expires: "Expires",
    times_note: "All times are exchange time (Beijing, UTC+8).",
    console_api: "Socket", send: "Send", console_input: "Raw JSON request",
    console_hint: "raw JSON request; RequestID is added when missing; answers appear in the Log",
    account: "Account", equity: "Equity (live)", available: "Available (live)", risk: "Risk ratio",
    live_pnl: "Position P/L (live)", frozen: "Frozen", close_profit: "Close profit", commission: "Commission",
    balance_q: "Balance (queried)", prebalance: "Pre-balance", messages: "Messages", sections: "Sections",
    m_market: "Market", m_trade: "Trade", confirm_title_dlg: "Send these orders?", cancel: "Cancel",
    // built by the page
    btn_cancel: "Cancel", btn_cancelling: "Cancelling…", btn_modify: "Modify", btn_close: "Close",
    btn_reverse: "Reverse", btn_subscribe: "Subscribe", btn_subscribed: "Subscribed", btn_unsub: "Unsubscribe {id}",
    long: "Long", short: "Short", net: "Net",
    st_0: "Filled", st_1: "Part filled, queueing", st_2: "Part filled, not queueing", st_3: "Queueing",
    st_4: "Not queueing", st_5: "Cancelled", st_a: "Submitted", st_b: "Not touched", st_c: "Touched",
    st_rejected: "Rejected",
    replace: "Replace", modifying: "Modifying {what}: change price or volume, then Replace",
    asof: "queried {t}", live: "live", no_position: "no position", holding: "holding",
    lang_switch: "中文", lang_switch_label: "中文 (Chinese)",
    chart_alt: "{id} {period} candles: {n} bars, last close {close}, high {high}, low {low}",
    chart_alt_none: "No chart",
    retrying: "gateway unreachable, retrying in {s} s",
    sell_at_bid: "Sell at the bid", buy_at_ask: "Buy at the ask",
    ask_level: "Ask {n}", bid_level: "Bid {n}",
  };
  const zh = {
    skip_to_ticket: "跳到下单面板",
    user: "用户", password: "密码", token: "令牌", log_in: "登录", log_out: "退出",
    confirm_orders: "下单确认", confirm_title: "每笔委托发送前先确认",
    quotes: "行情", subscribe: "订阅", subscribe_label: "要订阅的合约",
    stale: "数据过期：连接中断", stale_td: "数据过期：交易连接中断",
    quotes_hint: "回车/点击行选中；点买价/卖价填入下单面板",
    instrument: "合约", last: "最新价", change: "涨跌", chg_pct: "涨跌幅", bid: "买价", bid_vol: "买量",
    ask: "卖价", ask_vol: "卖量", open: "开盘", high: "最高", low: "最低", volume: "成交量", oi: "持仓量",
    upper: "涨停价", lower: "跌停价", presettle: "昨结算", updated: "更新时间", actions: "操作",
    quotes_empty: "尚未订阅。请先登录，再订阅合约。",
    chart: "K线", timeframe: "周期", chart_empty: "订阅并选中合约后显示K线。",
    depth: "五档", depth_caption: "买卖五档；选择价格填入下单面板",
    level: "档位", price: "价格", mine: "我的",
    ticket: "下单", modify_abort: "停止改单", side: "方向", buy: "买", sell: "卖",
    offset: "开平", open_off: "开仓", close_off: "平仓", close_yd: "平昨", close_today: "平今",
    type: "类型", type_limit: "限价 (当日有效)", type_market: "市价 (即成剩撤)", type_fak: "FAK (限价, 即成剩撤)",
    type_fok: "FOK (限价, 全成或撤)", tick_down: "减一个最小变动价位", tick_up: "加一个最小变动价位",
    lot_down: "减一手", lot_up: "加一手", lots: "手数",
    orders_trades: "委托与成交", orders: "委托", trades: "成交", working_only: "仅挂单",
    cancel_all: "全部撤单", time: "时间", filled: "成交/委托", status: "状态", message: "信息",
    positions_tools: "持仓与工具", positions: "持仓", instruments: "合约", log: "日志",
    console: "控制台", close_all: "全部平仓", pos: "持仓", today: "今仓", yd: "昨仓", closable: "可平",
    avg: "开仓均价", pnl: "持仓盈亏", margin: "保证金", search_label: "搜索合约",
    search_placeholder: "代码、名称、品种或交易所", name: "名称", exchange: "交易所", class: "类别",
    multiplier: "合约乘数", tick: "最小变动", expires: "到期日",
    times_note: "所有时间均为交易所时间（北京时间，UTC+8）。",
    console_api: "连接", send: "发送", console_input: "原始 JSON 请求",
    console_hint: "原始 JSON 请求；缺少 RequestID 时自动添加；应答显示在日志中",
    account: "资金", equity: "动态权益", available: "可用资金（实时）", risk: "风险度",
    live_pnl: "持仓盈亏（实时）", frozen: "冻结", close_profit: "平仓盈亏", commission: "手续费",
    balance_q: "权益（查询）", prebalance: "上日权益", messages: "消息", sections: "页面",
    m_market: "行情", m_trade: "下单", confirm_title_dlg: "发送以下委托？", cancel: "取消",
    btn_cancel: "撤单", btn_cancelling: "撤单中…", btn_modify: "改单", btn_close: "平仓",
    btn_reverse: "反手", btn_subscribe: "订阅", btn_subscribed: "已订阅", btn_unsub: "退订 {id}",
    long: "多", short: "空", net: "净",
    st_0: "全部成交", st_1: "部分成交，排队中", st_2: "部分成交，不在队列", st_3: "未成交，排队中",
    st_4: "未成交，不在队列", st_5: "已撤单", st_a: "已提交", st_b: "尚未触发", st_c: "已触发",
    st_rejected: "已拒绝",
    replace: "改单", modifying: "正在修改 {what}：改价格或数量后点“改单”",
    asof: "查询于 {t}", live: "实时", no_position: "无持仓", holding: "持仓",
    lang_switch: "EN", lang_switch_label: "EN (English)",
    chart_alt: "{id} {period} K线：{n} 根，最新收盘 {close}，最高 {high}，最低 {low}",
    chart_alt_none: "无K线",
    retrying: "网关不可达，{s} 秒后重试",
    sell_at_bid: "按买价卖出", buy_at_ask: "按卖价买入",
    ask_level: "卖{n}", bid_level: "买{n}",
  };
  const dicts = { en, zh };
  let lang = "en";

  function t(key, vars) {
    let s = (dicts[lang] && dicts[lang][key]) || en[key] || key;
    if (vars) for (const [k, v] of Object.entries(vars)) s = s.split(`{${k}}`).join(String(v));
    return s;
  }
  function apply(newLang) {
    lang = dicts[newLang] ? newLang : "en";
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-attr]")) {
      for (const pair of node.dataset.i18nAttr.split(";")) {
        const [attr, key] = pair.split(":");
        if (attr && key) node.setAttribute(attr, t(key));
      }
    }
  }
  window.webctpI18n = { t, apply, get lang() { return lang; } };
})();
