"""A minimal webctp bot: subscribe, place and cancel an order, print fills.

Run the service (``python -m webctp``), then ``python examples/bot.py`` (or
``python examples/bot.py ws://host:8081``). Against the simulator any UserID works.
"""

from __future__ import annotations

import sys

import trio

from webctp.client import connect_md, connect_td


async def main(*args: str) -> None:
    base = args[0] if args else "ws://127.0.0.1:8081"
    product = "rb"
    async with connect_td(f"{base}/td/") as td, connect_md(f"{base}/md/") as md:
        await td.login("bot", "pw")
        await md.login()

        # the nearest contract of the product still trading
        contracts = await td.query("QryInstrument", {"ProductID": product})
        nearest = min(contracts, key=lambda c: c["ExpireDate"])
        instrument = nearest["InstrumentID"]
        tick_size = nearest["PriceTick"]

        async with md.subscribe([instrument]) as ticks:
            tick = await ticks.__anext__()
        bid, ask = tick["BidPrice1"], tick["AskPrice1"]
        print(f"{instrument}: last {tick['LastPrice']} bid {bid} ask {ask}")

        # a buy far below the market rests in the book; cancel it
        resting = await td.insert_order(instrument, "buy", 1, bid - 10 * tick_size)
        await resting.wait_accepted()
        await resting.cancel()
        print(f"order {resting.request_id}: status {resting.status} (5 = cancelled)")

        # a buy at the ask trades; then sell it back at the bid (SHFE: close today's position)
        bought = await td.insert_order(instrument, "buy", 1, ask)
        await bought.wait_done()
        sold = await td.insert_order(instrument, "sell", 1, bid, offset="close_today")
        await sold.wait_done()
        for order in (bought, sold):
            for fill in order.trades:
                side = "bought" if fill["Direction"] == "0" else "sold"
                print(f"filled: {side} {fill['Volume']} {instrument} @ {fill['Price']}")


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:2])
