"""Replay: a recorded tick file drives the markets of the instruments it names.

The file is CSV with a header of CTP DepthMarketData field names (any order, extra columns
ignored). Required: ``InstrumentID``, ``UpdateTime``, ``LastPrice``, ``Volume`` (the day's
cumulative volume, as CTP sends it). Optional: ``UpdateMillisec``, ``Turnover``,
``OpenInterest``, ``PreSettlementPrice``, ``UpperLimitPrice``, ``LowerLimitPrice`` and the
book, ``BidPrice1``…``BidPrice5``, ``BidVolume1``…, ``AskPrice1``…, ``AskVolume1``…. Empty cells
and CTP's DBL_MAX mean "not set". Rows are replayed in file order; the gaps between their
UpdateTimes set the pace (divided by the speed). A time earlier than the previous one by more
than twelve hours is the next calendar day (a night session past midnight).

Pure parsing: the engine (``Engine.replay_row``) applies each row to the market.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

REQUIRED = ("InstrumentID", "UpdateTime", "LastPrice", "Volume")
LEVELS = 5
_UNSET = 1e300


class ReplayFileError(OSError):
    """The tick file cannot be replayed (the message names the file and line). An OSError,
    like a missing file, so the service reports it as ``event=startup_failed``."""


@dataclass(frozen=True, slots=True)
class ReplayRow:
    instrument_id: str
    at: float
    """Seconds since the first row's midnight (pacing only)."""
    update_time: str
    update_ms: int
    last: float
    volume: int
    open_interest: float | None
    pre_settlement: float | None
    upper: float | None
    lower: float | None
    bids: tuple[tuple[float, int], ...]
    asks: tuple[tuple[float, int], ...]


def _num(cell: str | None) -> float | None:
    if cell is None or not cell.strip():
        return None
    value = float(cell)
    if not math.isfinite(value) or abs(value) >= _UNSET:
        return None
    return value


def _seconds(hms: str) -> int:
    parts = hms.strip().split(":")
    if len(parts) != 3:
        raise ValueError(f"UpdateTime {hms!r} is not HH:MM:SS")
    h, m, s = (int(p) for p in parts)
    if not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 61):
        raise ValueError(f"UpdateTime {hms!r} is out of range")
    return h * 3600 + m * 60 + s


def _levels(row: dict[str, str], side: str) -> tuple[tuple[float, int], ...]:
    out = []
    for n in range(1, LEVELS + 1):
        price = _num(row.get(f"{side}Price{n}"))
        volume = _num(row.get(f"{side}Volume{n}"))
        if price is None or not volume or volume < 0:
            break
        out.append((price, int(volume)))
    return tuple(out)


def load(path: str | Path, rename: dict[str, str] | None = None) -> list[ReplayRow]:
    """Read a tick file; ``rename`` maps recorded InstrumentIDs to the ones to drive."""
    rename = rename or {}
    rows: list[ReplayRow] = []
    day_offset = 0
    prev = None
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ReplayFileError(f"{path}: missing column(s) {', '.join(missing)}")
        for line, raw in enumerate(reader, start=2):
            try:
                secs = _seconds(raw["UpdateTime"])
                if prev is not None and secs + day_offset < prev - 12 * 3600:
                    day_offset += 86400
                at = secs + day_offset
                prev = at
                last = _num(raw["LastPrice"])
                volume = _num(raw["Volume"])
                if last is None or last <= 0 or volume is None or volume < 0:
                    raise ValueError("LastPrice must be > 0 and Volume >= 0")
                ms = int(_num(raw.get("UpdateMillisec")) or 0)
                iid = raw["InstrumentID"].strip()
                if not iid:
                    raise ValueError("empty InstrumentID")
                rows.append(
                    ReplayRow(
                        instrument_id=rename.get(iid, iid),
                        at=at + ms / 1000,
                        update_time=raw["UpdateTime"].strip(),
                        update_ms=ms,
                        last=last,
                        volume=int(volume),
                        open_interest=_num(raw.get("OpenInterest")),
                        pre_settlement=_num(raw.get("PreSettlementPrice")),
                        upper=_num(raw.get("UpperLimitPrice")),
                        lower=_num(raw.get("LowerLimitPrice")),
                        bids=_levels(raw, "Bid"),
                        asks=_levels(raw, "Ask"),
                    )
                )
            except (ValueError, TypeError, AttributeError) as exc:
                raise ReplayFileError(f"{path}:{line}: {exc}") from None
    return rows


def sample_path() -> Path:
    """The small tick file shipped with the package (rb2601, SHFE, 2025-11-20 morning)."""
    return Path(__file__).with_name("replay_sample.csv")
