"""Small pure pieces: WebSocket path routing, flow-folder names, metrics text, codec."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.extensions import Extension, PerMessageDeflate

from webctp._connection import route
from webctp._flow import safe_name
from webctp._metrics import Metrics
from webctp._wire import plain_server_frames, text_frame
from webctp.protocol import codec
from webctp.protocol.catalogue import load


@pytest.mark.parametrize(
    ("path", "mode", "kind"),
    [
        ("/td/", "all", "td"),
        ("/td", "all", "td"),
        ("/md/?token=x", "all", "md"),
        ("/md", "td", None),
        ("/", "all", None),
        ("/", "md", "md"),
        ("", "td", "td"),
        ("/td/anything", "all", None),
        ("/tdx", "all", None),
    ],
)
def test_route(path: str, mode: str, kind: str | None) -> None:
    assert route(path, mode) == kind


def test_flow_folder_names_cannot_escape() -> None:
    for user in ("../../etc", "a/b", "..", "", "x" * 100, "用户", "ok_1"):
        name = safe_name(user)
        assert "/" not in name and ".." not in name and name
        assert len(name) <= 15 + 1 + 12
    assert safe_name("a/b") != safe_name("a_b")  # the hash keeps distinct users apart


def test_metrics_render() -> None:
    m = Metrics()
    m.sessions_active["td"] += 2
    m.errors[-400] += 3
    m.ticks_conflated_closed = 2

    class LiveSink:
        ticks_conflated = 3

    m.watch_sink(LiveSink())
    text = m.render()
    assert 'webctp_sessions_active{kind="td"} 2' in text
    assert 'webctp_errors_total{code="-400"} 3' in text
    assert "webctp_ticks_conflated_total 5" in text
    assert all(line.startswith(("#", "webctp_")) for line in text.splitlines())


class FakeTick:
    """Stands in for a binding struct: attributes only."""

    def __init__(self, **values: object) -> None:
        for f in load().structs["DepthMarketData"].fields:
            setattr(self, f.name, {"f": 0.0, "i": 0, "s": "", "c": ""}[f.kind])
        for k, v in values.items():
            setattr(self, k, v)


def test_tick_codec_maps_dbl_max_and_skips_reserve() -> None:
    c = codec.codec("DepthMarketData")
    tick = FakeTick(
        InstrumentID="rb2601",
        LastPrice=3500.0,
        AskPrice5=sys.float_info.max,
        Turnover=sys.float_info.max,
        Volume=7,
        reserve1="old",
    )
    data = c.to_dict(c.capture(tick))
    assert data["InstrumentID"] == "rb2601" and data["LastPrice"] == 3500.0
    assert data["AskPrice5"] == 0.0 and data["Turnover"] == 0.0 and data["Volume"] == 7
    assert "reserve1" not in data and len(data) == 46


def test_other_structs_keep_dbl_max_and_drop_passwords() -> None:
    c = codec.codec("UserPasswordUpdate")
    assert "OldPassword" not in c.names and "NewPassword" not in c.names
    inst = codec.codec("Instrument")
    assert "StrikePrice" in inst.names


def test_frames_survive_bad_text() -> None:
    frame = codec.push("RtnOrder", "Order", {"BizType": "\udcb0", "StatusMsg": "已撤单"}, None)
    text = codec.dumps(frame)
    assert orjson.loads(text)["Order"] == {"BizType": "?", "StatusMsg": "已撤单"}
    assert codec.dumps({"x": float("nan")}) == '{"x":null}'
    rsp = codec.response("RspQryTrade", "Trade", None, (0, "CTP:正确"), 0, True)
    assert rsp == {
        "MsgType": "RspQryTrade",
        "RspInfo": {"ErrorID": 0, "ErrorMsg": "CTP:正确"},
        "RequestID": 0,
        "IsLast": True,
        "Trade": None,
    }


def test_flow_slots_are_reused_and_distinct(tmp_path: Path) -> None:
    import dataclasses

    import trio

    from webctp._context import ServiceContext
    from webctp._session import Session
    from webctp.backend import load_backend
    from webctp.config import Config

    cfg = Config()
    cfg = dataclasses.replace(cfg, ctp=dataclasses.replace(cfg.ctp, flow_dir=str(tmp_path)))

    async def main() -> None:
        ctx = ServiceContext(cfg, load_backend(cfg.ctp))
        send, _ = trio.open_memory_channel[str](1)
        a, b = Session(ctx, send), Session(ctx, send)
        a.user_id = b.user_id = "alice"
        pa, pb = a.flow_path(), b.flow_path()
        assert pa != pb and pa.endswith("/s0/") and pb.endswith("/s1/")
        a._free_flow_slot()
        c = Session(ctx, send)
        c.user_id = "alice"
        assert c.flow_path() == pa  # the next session of the user reuses the folder

    trio.run(main)


def _open_pair(
    extensions: list[Extension] | None = None,
) -> tuple[WSConnection, WSConnection]:
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="h", target="/md/", extensions=extensions or [])))
    request = next(iter(server.events()))
    assert isinstance(request, Request)
    client.receive_data(server.send(AcceptConnection(extensions=extensions or [])))
    list(client.events())
    return client, server


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_own_text_frames_equal_wsproto_and_decode(size: int) -> None:
    client, server = _open_pair()
    text = "é" * size if size < 200 else "x" * size  # 'é': two UTF-8 bytes
    assert plain_server_frames(server)
    frame = text_frame(text)
    assert frame == server.send(TextMessage(data=text))
    client.receive_data(frame)
    (event,) = list(client.events())
    assert isinstance(event, TextMessage) and event.data == text and event.message_finished


def test_own_frames_only_where_wsproto_would_build_the_same() -> None:
    client, _ = _open_pair()
    assert not plain_server_frames(client)  # a client masks its frames
    _, deflate_server = _open_pair([PerMessageDeflate()])
    assert not plain_server_frames(deflate_server)  # an extension rewrites the payload
    assert not plain_server_frames(object())
    assert not plain_server_frames(WSConnection(ConnectionType.SERVER))  # not open yet


def test_flow_folders_private_and_pruned(tmp_path: Path) -> None:
    from webctp import _flow

    root = tmp_path / "flow"
    held = _flow.acquire(str(root), "td", "alice")
    second = _flow.acquire(str(root), "td", "alice")
    assert (held.number, second.number) == (0, 1)
    for folder in (root, root / "td", held.path):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    (held.path / "TradingDay.con").write_bytes(b"x")
    old = _flow.acquire(str(root), "md", "bob")
    _flow.release(old)
    _flow.release(second)
    now = time.time()
    # bob's folder is old enough but alice's is held by a live session
    assert _flow.prune(str(root), retention_s=3600, now=now + 7200) == 1
    assert held.path.exists() and not old.path.parent.exists()
    assert _flow.prune(str(root), retention_s=3600, now=now) == 0  # nothing stale
    _flow.release(held)
    assert _flow.prune(str(root), retention_s=3600, now=now + 7200) == 1
    assert list((root / "td").iterdir()) == []


def test_settlement_text_split_between_rows_is_decoded_whole() -> None:
    """The binding gives SettlementInfo.Content as raw GB18030 bytes in fixed-size chunks; a
    character cut between two rows must come out whole, not as two U+FFFD."""
    from webctp._session import Pending
    from webctp._td import _decode_chunks

    text = "交易结算单（盯市）\n客户号 12345 期货公司 模拟\n" * 7
    raw = text.encode("gb18030")
    cut = [raw[i : i + 13] for i in range(0, len(raw), 13)]  # odd size: cuts characters
    assert any(c[-1] >= 0x80 for c in cut[:-1])
    pending = Pending("ReqQrySettlementInfo", 5)
    rows = []
    for i, chunk in enumerate(cut):
        payload: dict[str, object] = {"Content": chunk, "SequenceNo": i}
        _decode_chunks(payload, pending, is_last=i == len(cut) - 1)
        rows.append(payload["Content"])
    assert "".join(str(r) for r in rows) == text
    assert "\ufffd" not in "".join(str(r) for r in rows)
