"""Load and validate price and gas files for the backtester. Users bring their own files.

Price file: `timestamp` plus one `<sym>_<quote>_close` (or `<sym>_close`, `<sym>`) column per
asset; `ffilled_assets` is allowed and ignored. Rows must be hourly, sorted, unique and positive.
- Leading empty cells (an asset not listed yet) are allowed: the backtest starts once every
  vault asset has a price.
- Anything else is a `DataError` that names the row, the column and the fix, unless
  `fill="ffill"`: then interior NaNs and missing hours are carried forward (documented fill) and
  counted in `PriceData.filled`.

Gas files: the daily Etherscan file (`date`, `eth_avg_gas_price_gwei`) and/or the hourly file
(`timestamp`, `avg_gas_price_gwei` or `base_fee_gwei` [+ `priority_fee_gwei`]). Hourly wins
where both exist. With no gas data for an hour the default gas model applies (`gas.py`).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from keeper.errors import DataError

FROZEN = {"frozen": True, "slots": True, "kw_only": True}
HOUR_S = 3600
KNOWN_EXTRA = {"ffilled_assets"}
QUOTES = ("_usdt_close", "_usd_close", "_usdc_close", "_close")


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class PriceData:
    ts: NDArray[np.int64]  # UTC seconds, hourly
    prices: NDArray[np.float64]  # (T, N), NaN before an asset's first price
    symbols: tuple[str, ...]
    source: str
    filled: int = 0  # cells filled forward (fill="ffill")


def _symbol(col: str) -> str | None:
    c = col.strip().lower()
    for q in QUOTES:
        if c.endswith(q) and len(c) > len(q):
            return c[: -len(q)].upper()
    return None


def _read_rows(path: Path, delimiter: str = ",") -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise DataError(f"file not found: {path}", key="path")
    with path.open(newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration as err:
            raise DataError(f"{path} is empty: expected a header row") from err
        return header, [row for row in reader if row]


def _parse_ts(values: list[str], path: Path) -> NDArray[np.int64]:
    try:
        arr = np.array([v.strip().replace(" ", "T") for v in values], dtype="datetime64[s]")
    except ValueError as err:
        raise DataError(f"{path}: bad timestamp ({err}); use ISO 'YYYY-MM-DD HH:MM:SS' UTC"
                        ) from err
    return arr.astype(np.int64)


def _check_order(ts: NDArray[np.int64], path: Path, fill: str) -> None:
    step = np.diff(ts)
    bad = np.flatnonzero(step <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        kind = "duplicate" if step[bad[0]] == 0 else "unsorted"
        raise DataError(f"{path}: {kind} timestamp at data row {i + 1} ({_iso(ts[i])}); "
                        "sort the file by timestamp and drop duplicate rows")
    gaps = np.flatnonzero(step != HOUR_S)
    if gaps.size and fill != "ffill":
        i = int(gaps[0]) + 1
        raise DataError(f"{path}: gap before data row {i + 1} ({_iso(ts[i])}, previous "
                        f"{_iso(ts[i - 1])}); rows must be hourly: fill the hours or pass "
                        "--fill ffill to carry prices forward")


def _iso(t: int) -> str:
    return str(np.datetime64(int(t), "s")).replace("T", " ")


def _columns(header: list[str], path: Path) -> tuple[int, list[int], list[str]]:
    cols = [h.strip() for h in header]
    if "timestamp" not in cols:
        raise DataError(f"{path}: no 'timestamp' column; header is {cols}")
    idx, syms = [], []
    for j, c in enumerate(cols):
        if c == "timestamp" or c in KNOWN_EXTRA:
            continue
        s = _symbol(c)
        if s is None:
            raise DataError(f"{path}: unknown column '{c}' (column {j + 1}); name price columns "
                            "'<symbol>_usdt_close' or '<symbol>_close', or remove it")
        idx.append(j)
        syms.append(s)
    if not idx:
        raise DataError(f"{path}: no price columns; expected e.g. 'eth_usdt_close'")
    return cols.index("timestamp"), idx, syms


def _to_float(rows: list[list[str]], idx: list[int], path: Path, syms: list[str]
              ) -> NDArray[np.float64]:
    out = np.full((len(rows), len(idx)), np.nan)
    for r, row in enumerate(rows):
        for k, j in enumerate(idx):
            cell = row[j].strip() if j < len(row) else ""
            if cell and cell.lower() != "nan":
                try:
                    out[r, k] = float(cell)
                except ValueError as err:
                    raise DataError(f"{path}: data row {r + 1}, column {syms[k]}: '{cell}' is "
                                    "not a number; fix or blank the cell") from err
    return out


def _check_values(px: NDArray[np.float64], ts: NDArray[np.int64], syms: list[str], path: Path,
                  fill: str) -> int:
    bad = np.argwhere(px <= 0)
    if bad.size:
        r, k = (int(x) for x in bad[0])
        raise DataError(f"{path}: non-positive price {px[r, k]} at data row {r + 1} "
                        f"({_iso(ts[r])}), column {syms[k]}; prices must be > 0")
    started = np.maximum.accumulate(~np.isnan(px), axis=0)
    holes = np.argwhere(np.isnan(px) & started)
    if holes.size and fill != "ffill":
        r, k = (int(x) for x in holes[0])
        raise DataError(f"{path}: missing price at data row {r + 1} ({_iso(ts[r])}), column "
                        f"{syms[k]}; fill it or pass --fill ffill to carry the last price forward")
    return int(holes.shape[0])


def _ffill(px: NDArray[np.float64]) -> NDArray[np.float64]:
    idx = np.where(~np.isnan(px), np.arange(px.shape[0])[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    filled: NDArray[np.float64] = px[idx, np.arange(px.shape[1])]
    return filled


def _regrid(ts: NDArray[np.int64], px: NDArray[np.float64]
            ) -> tuple[NDArray[np.int64], NDArray[np.float64], int]:
    """Put rows on a full hourly grid (missing hours NaN, then filled forward)."""
    grid = np.arange(ts[0], ts[-1] + HOUR_S, HOUR_S, dtype=np.int64)
    if grid.size == ts.size:
        return ts, px, 0
    out = np.full((grid.size, px.shape[1]), np.nan)
    out[((ts - ts[0]) // HOUR_S).astype(int)] = px
    return grid, out, int(grid.size - ts.size) * px.shape[1]


def load_prices(path: str | Path, *, symbols: tuple[str, ...] | None = None,
                fill: str = "error") -> PriceData:
    """Read and validate an hourly price file (see the module docstring for the rules)."""
    p = Path(path)
    header, rows = _read_rows(p)
    if not rows:
        raise DataError(f"{p}: no data rows")
    t_col, idx, syms = _columns(header, p)
    ts = _parse_ts([r[t_col] for r in rows], p)
    _check_order(ts, p, fill)
    px = _to_float(rows, idx, p, syms)
    n_filled = _check_values(px, ts, syms, p, fill)
    ts, px, n_gap = _regrid(ts, px)
    px = _ffill(px) if fill == "ffill" else px
    out = PriceData(ts=ts, prices=px, symbols=tuple(syms), source=str(p),
                    filled=n_filled + n_gap)
    return select(out, symbols) if symbols else out


def select(data: PriceData, symbols: tuple[str, ...]) -> PriceData:
    """Keep the named assets, in that order; a missing symbol is a DataError naming the choices."""
    missing = [s for s in symbols if s not in data.symbols]
    if missing:
        raise DataError(f"{data.source}: no price column for {missing}; file has {data.symbols}")
    cols = [data.symbols.index(s) for s in symbols]
    return PriceData(ts=data.ts, prices=data.prices[:, cols], symbols=symbols,
                     source=data.source, filled=data.filled)


def window(data: PriceData, start_ts: int | None, end_ts: int | None) -> PriceData:
    """Rows in [start, end] that have a price for every asset."""
    ok = ~np.isnan(data.prices).any(axis=1)
    if start_ts is not None:
        ok &= data.ts >= start_ts
    if end_ts is not None:
        ok &= data.ts <= end_ts
    first = int(np.argmax(ok)) if ok.any() else -1
    if first < 0:
        raise DataError(f"{data.source}: no hour in the window has a price for every asset")
    last = int(len(ok) - 1 - np.argmax(ok[::-1]))
    sl = slice(first, last + 1)
    return PriceData(ts=data.ts[sl], prices=data.prices[sl], symbols=data.symbols,
                     source=data.source, filled=data.filled)


def parse_date(s: str) -> int:
    """'YYYY-MM-DD' or ISO timestamp -> UTC seconds."""
    try:
        return int(np.datetime64(s.strip().replace(" ", "T"), "s").astype(np.int64))
    except ValueError as err:
        raise DataError(f"bad date '{s}': use YYYY-MM-DD") from err


# ---------------------------------------------------------------- gas files


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class GasData:
    hourly_ts: NDArray[np.int64]  # seconds
    hourly_gwei: NDArray[np.float64]
    daily_day: NDArray[np.int64]  # day numbers (ts // 86400)
    daily_gwei: NDArray[np.float64]


def _col(header: list[str], name: str) -> int | None:
    cols = [h.strip() for h in header]
    return cols.index(name) if name in cols else None


def _num(cell: str) -> float:
    try:
        return float(cell) if cell.strip() else math.nan
    except ValueError:
        return math.nan


def _hourly_gas(header: list[str], rows: list[list[str]], p: Path
                ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    t, avg = _col(header, "timestamp"), _col(header, "avg_gas_price_gwei")
    base, tip = _col(header, "base_fee_gwei"), _col(header, "priority_fee_gwei")
    ts = _parse_ts([r[t] for r in rows], p)  # type: ignore[index]
    g = np.array([_num(r[avg]) if avg is not None else math.nan for r in rows])
    b = np.array([_num(r[base]) if base is not None else math.nan for r in rows])
    tp = np.array([_num(r[tip]) if tip is not None else math.nan for r in rows])
    # The 2023 window has base fee only (tips from 2023-12-13): add the median observed tip.
    tip_fill = float(np.nanmedian(tp)) if np.isfinite(tp).any() else 1.0
    g = np.where(np.isnan(g), b + np.where(np.isnan(tp), tip_fill, tp), g)
    ok = np.isfinite(g) & (g > 0)
    return ts[ok], g[ok]


def _daily_gas(header: list[str], rows: list[list[str]], p: Path
               ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    d, g = _col(header, "date"), _col(header, "eth_avg_gas_price_gwei")
    days = _parse_ts([r[d] for r in rows], p) // 86400  # type: ignore[index]
    gw = np.array([_num(r[g]) for r in rows])  # type: ignore[index]
    ok = np.isfinite(gw) & (gw > 0)
    return days[ok], gw[ok]


def load_gas(paths: list[str | Path]) -> GasData:
    """Read any mix of daily and hourly gas files."""
    ht, hg, dd, dg = [np.zeros(0, np.int64)], [np.zeros(0)], [np.zeros(0, np.int64)], [np.zeros(0)]
    for path in paths:
        p = Path(path)
        header, rows = _read_rows(p)
        if _col(header, "eth_avg_gas_price_gwei") is not None and _col(header, "date") is not None:
            a, b = _daily_gas(header, rows, p)
            dd.append(a)
            dg.append(b)
        elif _col(header, "timestamp") is not None and (
                _col(header, "avg_gas_price_gwei") is not None
                or _col(header, "base_fee_gwei") is not None):
            a, b = _hourly_gas(header, rows, p)
            ht.append(a)
            hg.append(b)
        else:
            raise DataError(f"{p}: not a gas file; need 'date,eth_avg_gas_price_gwei' (daily) or "
                            "'timestamp,avg_gas_price_gwei|base_fee_gwei' (hourly)")
    return GasData(hourly_ts=np.concatenate(ht), hourly_gwei=np.concatenate(hg),
                   daily_day=np.concatenate(dd), daily_gwei=np.concatenate(dg))


# ---------------------------------------------------------------- pool depths


def wbtc_weth_depth_usd(path: str | Path, eth_usd_by_day: dict[int, float],
                        before_ts: int | None = None) -> float:
    """Median effective depth (USD) of the WBTC/WETH 0.3% pool from its daily liquidity file."""
    from keeper.costs import depth_from_liquidity

    header, rows = _read_rows(Path(path), delimiter=";")
    li, sp, ux = _col(header, "Liquidity"), _col(header, "Sqrt Price"), _col(header, "Date (Unix)")
    vals = []
    for r in rows:
        t = int(r[ux])  # type: ignore[index]
        eth = eth_usd_by_day.get(t // 86400)
        if eth is None or (before_ts is not None and t >= before_ts):
            continue
        liq, sq = int(r[li].replace(",", "")), int(float(r[sp].replace(",", "")))  # type: ignore[index]
        vals.append(depth_from_liquidity(liq, sq, 8, 18, eth))
    if not vals:
        raise DataError(f"{path}: no pool rows with an ETH price before the cutoff")
    return float(np.median(vals))


def usdc_weth_depth_usd(path: str | Path) -> float:
    """Median effective depth (USD) of the USDC/WETH 0.05% pool from its minute file."""
    header, rows = _read_rows(Path(path))
    li, tk = _col(header, "currentLiquidity"), _col(header, "closeTick")
    out = []
    for r in rows:
        sqrt_p = 1.0001 ** (float(r[tk]) / 2.0)  # type: ignore[index]
        out.append(0.5 * int(r[li]) / sqrt_p / 1e6)  # type: ignore[index]  # USDC virtual / 2
    return float(np.median(out))
