"""CTP's ErrorID → ErrorMsg table (error.xml v6.7.8) and StatusMsg texts, as the front sends them.

The texts are exact copies of market-facts.md §6 (note the full-width colons of 22 and 90 and
the full-width comma of 26): clients display them and some parse them.
"""

from __future__ import annotations

from ._structs import CThostFtdcRspInfoField

OK = 0
INVALID_LOGIN = 3
DUPLICATE_LOGIN = 5
NOT_LOGGED_IN = 6
NO_PRIVILEGE = 9
OLD_PASSWORD_MISMATCH = 14
BAD_FIELD = 15
INSTRUMENT_NOT_FOUND = 16
DUPLICATE_ORDER_REF = 22
BAD_ACTION_FIELD = 23
ORDER_NOT_FOUND = 25
INSUITABLE_ORDER_STATUS = 26
OVER_CLOSE_POSITION = 30
INSUFFICIENT_MONEY = 31
SETTLEMENT_NOT_CONFIRMED = 42
OVER_CLOSETODAY_POSITION = 50
OVER_CLOSEYESTERDAY_POSITION = 51
TOO_MANY_SESSIONS = 60
AUTH_FAILED = 63
NOT_AUTHENTICATED = 64
NEED_RETRY = 90
ORDER_FREQ_LIMIT = 116
SELF_TRADE_MSG = "CTP:报单字段有误 (would trade against the investor's own order: 自成交)"
"""The simulator's text for ``self_trade = "reject"`` (ErrorID 15): brokers' self-trade checks
answer with codes of their own, none of them documented publicly."""

MESSAGES: dict[int, str] = {
    0: "CTP:正确",
    3: "CTP:不合法的登录",
    5: "CTP:重复的登录",
    6: "CTP:还没有登录",
    9: "CTP:无此权限",
    14: "CTP:原口令不匹配",
    15: "CTP:报单字段有误",
    16: "CTP:找不到合约",
    17: "CTP:合约不能交易",
    22: "CTP:报单错误：不允许重复报单",
    23: "CTP:错误的报单操作字段",
    25: "CTP:撤单找不到相应报单",
    26: "CTP:报单已全成交或已撤销，不能再撤",
    30: "CTP:平仓量超过持仓量",
    31: "CTP:资金不足",
    42: "CTP:结算结果未确认",
    50: "CTP:平今仓位不足",
    51: "CTP:平昨仓位不足",
    60: "CTP:用户在线会话超出上限",
    63: "CTP:客户端认证失败",
    64: "CTP:客户端未认证",
    90: "CTP：查询未就绪，请稍后重试",
    91: "CTP：交易所返回的错误",
    116: "CTP:下单频率限制",
}

ERROR_MSG_BYTES = 80


def fit(text: str, size: int) -> str:
    """Cut ``text`` to at most ``size`` UTF-8 bytes without splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= size:
        return text
    return raw[:size].decode("utf-8", "ignore")


def rsp_info(error_id: int, message: str | None = None) -> CThostFtdcRspInfoField:
    """A RspInfo struct; the message defaults to CTP's text for the ErrorID."""
    text = MESSAGES.get(error_id, "CTP:错误") if message is None else message
    return CThostFtdcRspInfoField._sim_make(ErrorID=error_id, ErrorMsg=fit(text, ERROR_MSG_BYTES))


def rsp_ok() -> CThostFtdcRspInfoField:
    return rsp_info(OK)


# OrderStatus / OrderSubmitStatus → StatusMsg parts (market-facts.md §5): the status part, then the
# submit part while the exchange has not acknowledged ("报单已提交") or rejected ("报单被拒绝").
STATUS_TEXT = {"0": "全部成交", "1": "部分成交", "2": "部分成交", "3": "未成交", "4": "未成交"}
STATUS_TEXT["5"] = "已撤单"
STATUS_TEXT["a"] = ""
SUBMIT_TEXT = {"0": "报单已提交", "4": "报单被拒绝"}


def status_msg(order_status: str, submit_status: str, exchange_reason: str = "") -> str:
    """StatusMsg as CTP composes it, e.g. ``全部成交报单已提交`` or ``已撤单报单被拒绝SHFE:...``."""
    return STATUS_TEXT.get(order_status, "") + SUBMIT_TEXT.get(submit_status, "") + exchange_reason
