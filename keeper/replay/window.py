"""The hours a replay runs, read once for both sides: hourly prices, hourly gas, and the history
before the window that the forecast fits on.

The price file has one `<sym>_usdt_close` column per risky asset (ETH, BTC, LINK); the vault's
tokens map onto them (WETH is priced as ETH, WBTC as BTC) and USDC is $1. Gas comes from the gas
files the backtester reads (daily or hourly), hour by hour as the backtester sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from keeper.backtest.data import GasData, PriceData, load_gas, load_prices, parse_date, select
from keeper.backtest.gas import hourly_gas
from keeper.backtest.market import MIN_FIT_H
from keeper.errors import DataError
from keeper.units import ONE_E8, WEI_PER_GWEI

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
DEFAULT_PRICES = DATA_DIR / "prices_hourly_2022_05_06.csv"
DEFAULT_GAS = DATA_DIR / "gas_daily_2022_05_06.csv"
DEFAULT_START = "2022-06-12 00:00:00"  # the June 2022 crash: ETH -25% on June 13 alone
SERIES = {"WETH": "ETH", "WBTC": "BTC", "LINK": "LINK", "USDC": "USDC"}  # token -> price series
CASH = "USDC"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Window:
    """Rows [0, i0) are history; rows [i0, i0 + hours) are replayed."""

    prices: PriceData  # every row from the file's first complete one to the window's last
    gas: GasData | None
    gas_gwei: NDArray[np.float64]  # per row, as the backtester prices gas
    i0: int
    hours: int
    source: str

    @property
    def rows(self) -> range:
        return range(self.i0, self.i0 + self.hours)

    def ts(self, t: int) -> int:
        return int(self.prices.ts[t])

    def price(self, t: int, token: str) -> float:
        series = SERIES.get(token, token)
        if series == CASH:
            return 1.0
        return float(self.prices.prices[t, self.prices.symbols.index(series)])

    def price_e8(self, t: int, token: str) -> int:
        """The hour's price as an 8-decimal feed answer."""
        return round(self.price(t, token) * ONE_E8)

    def gas_wei(self, t: int) -> int:
        return round(float(self.gas_gwei[t]) * WEI_PER_GWEI)

    def history(self, tokens: tuple[str, ...]) -> list[tuple[int, tuple[float, ...]]]:
        """The rows before the window, in the vault's asset order: what the forecast fits on."""
        return [(self.ts(t), tuple(self.price(t, s) for s in tokens)) for t in range(self.i0)]


def series_of(tokens: tuple[str, ...]) -> tuple[str, ...]:
    """The backtester's symbols for a vault's tokens (same order); an unknown token is an error."""
    unknown = [s for s in tokens if s not in SERIES]
    if unknown:
        raise DataError(f"no price series for {unknown}: a replay prices {sorted(SERIES)}")
    return tuple(SERIES[s] for s in tokens)


def load_window(prices: Path | None, gas: list[Path] | None, start: str, hours: int,
                tokens: tuple[str, ...]) -> Window:
    """Read and check the window: `hours` rows from `start`, with MIN_FIT_H rows before it."""
    path = prices or DEFAULT_PRICES
    risky = tuple(s for s in series_of(tokens) if s != CASH)
    data = select(load_prices(path), tuple(dict.fromkeys((*risky, "ETH"))))
    first = int(np.argmax(~np.isnan(data.prices).any(axis=1)))
    data = PriceData(ts=data.ts[first:], prices=data.prices[first:], symbols=data.symbols,
                     source=data.source, filled=data.filled)
    i0 = int(np.searchsorted(data.ts, parse_date(start)))
    if i0 >= data.ts.size or int(data.ts[i0]) != parse_date(start):
        raise DataError(f"{path}: no row at --start {start}; the file covers "
                        f"{_iso(data.ts[0])} to {_iso(data.ts[-1])}")
    if i0 < MIN_FIT_H:
        raise DataError(f"{path}: only {i0} hours before --start {start}; the forecast fits on "
                        f"at least {MIN_FIT_H}: choose a start after {_iso(data.ts[MIN_FIT_H])}")
    if i0 + hours > data.ts.size:
        raise DataError(f"{path}: {data.ts.size - i0} hours from --start {start}, {hours} asked: "
                        "choose an earlier --start or fewer --hours")
    end = i0 + hours
    cut = PriceData(ts=data.ts[:end], prices=data.prices[:end], symbols=data.symbols,
                    source=data.source, filled=data.filled)
    # no gas file with your own prices: the backtester's default gas model (a flat price)
    gas_data = load_gas(list(gas)) if gas else (load_gas([DEFAULT_GAS]) if prices is None
                                                else None)
    gwei = hourly_gas(cut.ts, gas_data).gwei
    return Window(prices=cut, gas=gas_data, gas_gwei=gwei, i0=i0, hours=hours,
                  source=f"{Path(path).name} from {start}")


def _iso(t: int) -> str:
    return str(np.datetime64(int(t), "s")).replace("T", " ")
