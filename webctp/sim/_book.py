"""The users' side of one instrument's order book: resting orders in price-time priority.

The market's own participants (the "crowd" of the random walk, or the replayed book) quote the
synthetic levels kept by ``MarketState``; every account's resting orders live here, one book
per instrument shared by all accounts. Each resting order remembers the crowd volume that was
at its price before it joined (``queue_ahead``): trades at that price consume that volume
first, an order that improves the price has none ahead of it, and a trade at a price beyond
it (the market went through it) fills it before anything else, bounded by the traded volume.

Pure code: no callbacks, no accounting. Matching returns ``Fill`` records; the engine books
them (``_trading``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._orders import OrderRec

EPS = 1e-9


@dataclass(slots=True)
class Fill:
    """``lots`` traded at ``price`` against ``maker`` (None: the market's participants)."""

    price: float
    lots: int
    maker: OrderRec | None = None


class OrderBook:
    """Resting orders of one instrument by side and price; time priority inside a price."""

    __slots__ = ("asks", "bids", "by_seq", "moved")

    def __init__(self) -> None:
        self.bids: dict[float, list[OrderRec]] = {}
        self.asks: dict[float, list[OrderRec]] = {}
        self.by_seq: dict[int, OrderRec] = {}
        self.moved: set[OrderRec] = set()
        """Orders whose queue position changed since the engine last stored them."""

    def _advance(self, order: OrderRec, ahead: int) -> None:
        if order.queue_ahead != ahead:
            order.queue_ahead = ahead
            self.moved.add(order)

    def __bool__(self) -> bool:
        return bool(self.by_seq)

    def __contains__(self, order: OrderRec) -> bool:
        return order.seq in self.by_seq

    def side(self, bids: bool) -> dict[float, list[OrderRec]]:
        return self.bids if bids else self.asks

    def add(self, order: OrderRec, ahead: int) -> None:
        """Queue ``order`` at its limit price behind everything already there."""
        assert order.limit is not None
        order.book_left = order.remaining
        order.queue_ahead = max(0, ahead)
        self.side(order.buy).setdefault(order.limit, []).append(order)
        self.by_seq[order.seq] = order

    def restore(self, order: OrderRec) -> None:
        """Re-queue an order read back from the store (its stored queue position kept)."""
        ahead = order.queue_ahead
        self.add(order, ahead)

    def remove(self, order: OrderRec) -> None:
        if self.by_seq.pop(order.seq, None) is None:
            return
        assert order.limit is not None
        side = self.side(order.buy)
        level = side.get(order.limit)
        if level is not None:
            level.remove(order)
            if not level:
                del side[order.limit]

    def best(self, bids: bool) -> float | None:
        side = self.side(bids)
        if not side:
            return None
        return max(side) if bids else min(side)

    def prices(self, bids: bool) -> list[float]:
        """Prices of one side, best first."""
        return sorted(self.side(bids), reverse=bids)

    def volume(self, bids: bool, price: float) -> int:
        return sum(o.book_left for o in self.side(bids).get(price, ()))

    def crosses_own(self, user_id: str, buy: bool, limit: float | None) -> bool:
        """Would an order of ``user_id`` on side ``buy`` reach one of the user's own resting
        orders on the other side?"""
        for price, level in self.side(not buy).items():
            if limit is not None and (price > limit + EPS if buy else price < limit - EPS):
                continue
            if any(o.user_id == user_id for o in level):
                return True
        return False

    def take_level(
        self, bids: bool, price: float, volume: int, crowd: int
    ) -> tuple[list[Fill], int]:
        """An aggressive order takes up to ``volume`` lots at ``price`` from side ``bids``,
        where the crowd quotes ``crowd`` lots: crowd volume ahead of each resting order
        first, then the order, then the crowd behind. Returns the fills (crowd fills merged
        per run) and the crowd lots taken."""
        fills: list[Fill] = []
        taken = 0
        left = volume
        level = self.side(bids).get(price, [])
        for order in list(level):
            if left == 0:
                break
            gap = min(left, max(0, order.queue_ahead - taken))
            if gap:
                _crowd_fill(fills, price, gap)
                taken += gap
                left -= gap
            if left == 0:
                break
            n = min(left, order.book_left)
            fills.append(Fill(price, n, order))
            left -= n
            order.book_left -= n
            if order.book_left == 0:
                self.remove(order)
        if left:
            n = min(left, max(0, crowd - taken))
            if n:
                _crowd_fill(fills, price, n)
                taken += n
        for order in self.side(bids).get(price, ()):
            self._advance(order, max(0, order.queue_ahead - taken))
        return fills, taken

    def available(self, bids: bool, price: float, crowd: int) -> int:
        """Everything an aggressive order could take at ``price`` (see ``take_level``)."""
        level = self.side(bids).get(price, ())
        ahead = max((o.queue_ahead for o in level), default=0)
        return max(crowd, ahead) + sum(o.book_left for o in level)

    def market_trade(self, price: float, volume: int) -> tuple[list[Fill], float]:
        """The market's participants trade ``volume`` lots at ``price``.

        Resting orders the price went through are filled first (best price first, then time),
        with no queue ahead of them any more; at ``price`` itself the queue ahead is consumed
        before an order fills. Fills never exceed ``volume``. When the volume runs out before
        every order the price went through is filled, the market stops at the first of them:
        the returned price is where the market really traded last.
        """
        fills: list[Fill] = []
        reached = price
        for bids in (True, False):
            side = self.side(bids)
            best = self.best(bids)
            if best is None or (best < price - EPS if bids else best > price + EPS):
                continue  # nothing on this side at or beyond the price (the usual case)
            for p in self.prices(bids):
                through = p > price + EPS if bids else p < price - EPS
                at = abs(p - price) <= EPS
                if not (through or at):
                    break
                taken = 0
                for order in list(side[p]):
                    if at:
                        gap = min(volume, max(0, order.queue_ahead - taken))
                        taken += gap
                        volume -= gap
                    if volume == 0:
                        break
                    n = min(volume, order.book_left)
                    volume -= n
                    order.book_left -= n
                    fills.append(Fill(p, n, order))
                    if order.book_left == 0:
                        self.remove(order)
                for order in side.get(p, ()):
                    self._advance(order, 0 if through else max(0, order.queue_ahead - taken))
                if through and p in side:  # volume ran out here: the market stops at p
                    reached = p
                    break
        return fills, reached


def _crowd_fill(fills: list[Fill], price: float, lots: int) -> None:
    if fills and fills[-1].maker is None and fills[-1].price == price:
        fills[-1].lots += lots
    else:
        fills.append(Fill(price, lots))
