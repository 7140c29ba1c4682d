"""Soak: simulated market time at 12 s blocks on anvil with random faults injected.

The keeper (FailoverProvider over two fault-injecting proxies in front of one anvil, a real
Sender with a keystore account) ticks every `tick_blocks` blocks; every simulated hour the
market moves by a seeded random walk (pools and feeds) and the feeds refresh. Before a tick,
with probability `fault_rate` (0.5 on the tick after the 3-hourly +-30% shock, so faults
also hit the send path), one fault is injected for that tick: primary RPC down, all RPCs
down, an HTTP 429 burst, a timeout after a send reaches the node, a lagging (stale) primary, a
x10 base fee, a stale feed, or a frozen feed while its pools move.

Reports ticks, sends, replacements, failures, duplicate sends (must be 0), lost ledger records
(must be 0) and the longest time outside the outer band, to benchmarks/results/soak.md.
Not part of CI. Run: `.venv/bin/python -m benchmarks.bench_soak --hours 24 --fault-rate 0.1`.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from web3 import Web3

from benchmarks._common import RESULTS, stack
from keeper.app import Keeper, KeeperDeps, Mode
from keeper.chain.anvil import Anvil
from keeper.chain.rpc import RpcSettings
from keeper.config import load_config
from keeper.history import PriceHistory
from keeper.ledger import Ledger
from keeper.localnet.deploy import LocalMarket
from keeper.localnet.market import feed_answer, move_market, set_feed
from keeper.read import ReadTarget, read_snapshot
from keeper.send.sender import Sender, SenderSettings
from keeper.wiring import connect, policies_for, unlock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.faults.proxy import RpcProxy

BLOCK_S = 12
HOURLY_VOL = {"WETH": 0.0075, "WBTC": 0.0060, "LINK": 0.0110}
FAULTS = (
    "primary_down",
    "all_down",
    "burst_429",
    "send_timeout",
    "lagging",
    "base_fee_x10",
    "stale_feed",
    "frozen_feed",
)
SHOCK_EVERY_H, SHOCK_BPS = 3, 3_000  # every 3 h one asset jumps +-30%
HOT_FAULT_RATE = 0.5  # fault probability on the tick after a shock
RPC = RpcSettings(timeout_s=1.0, rounds=3, backoff_s=0.02, max_backoff_s=0.1, cooldown_s=1.0)


@dataclass
class Soak:
    w3: Web3
    market: LocalMarket
    vault: str
    keeper: Keeper
    proxies: tuple[RpcProxy, RpcProxy]
    rng: random.Random
    stats: Counter[str] = field(default_factory=Counter)
    outside_s: int = 0
    max_outside_s: int = 0
    sim_s: int = 0
    vol_scale: float = 1.0  # x the hourly vols: more band breaches, more sends
    hours: int = 0
    shock_assets: tuple[str, ...] = ("WETH", "WBTC")
    hot: bool = False  # the next tick should send: faults are likelier there

    def rpc(self, method: str, *params: object) -> object:
        return self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]

    # ---------------------------------------------------------------- the world

    def advance(self, blocks: int) -> None:
        self.rpc("anvil_mine", hex(blocks), hex(BLOCK_S))
        self.sim_s += blocks * BLOCK_S

    def hour(self) -> None:
        for sym, vol in HOURLY_VOL.items():
            bps = round(self.rng.gauss(0.0, vol * self.vol_scale) * 10_000)
            move_market(self.w3, self.market, sym, bps)
        self.hours += 1
        if self.hours % SHOCK_EVERY_H == 0:  # a jump that breaks the outer band: a send is due
            sym = self.rng.choice(self.shock_assets)
            move_market(self.w3, self.market, sym, self.rng.choice((-SHOCK_BPS, SHOCK_BPS)))
            self.hot = True
        set_feed(self.w3, self.market, "USDC", feed_answer(self.w3, self.market, "USDC")[0])

    def outside(self) -> bool:
        symbols = {t.address.lower(): s for s, t in self.market.tokens.items()}
        snap = read_snapshot(
            self.w3,
            self.market.multicall3,
            [ReadTarget(address=self.vault, symbols=symbols)],
            chain_id=31337,
        )
        return any(a.outside_outer for a in snap.vaults[0].assets)

    # ---------------------------------------------------------------- faults

    def inject(self) -> str | None:
        rate = self.stats["fault_rate_ppm"] / 1e6
        if self.hot:  # right after a shock, so faults hit the send path too
            rate, self.hot = max(rate, HOT_FAULT_RATE), False
        if self.rng.random() >= rate:
            return None
        fault = self.rng.choice(FAULTS)
        self._apply(fault)
        self.stats[f"fault:{fault}"] += 1
        return fault

    def _apply(self, fault: str) -> None:
        a, b = self.proxies
        if fault == "primary_down":
            a.mode = "down"
        elif fault == "all_down":
            a.mode = b.mode = "down"
        elif fault == "burst_429":
            a.fail_next = ["http:429"] * 3
            b.fail_next = ["http:429"] * 2
        elif fault == "send_timeout":
            a.mode = "send_timeout"
        elif fault == "lagging":
            a.stale_block, a.mode = max(int(self.w3.eth.block_number) - 5, 1), "stale"
        elif fault == "base_fee_x10":
            self.rpc("anvil_setNextBlockBaseFeePerGas", hex(10 * 10**9))
            self.rpc("evm_mine")
        elif fault == "stale_feed":
            ts = int(self.w3.eth.get_block("latest")["timestamp"])
            set_feed(
                self.w3,
                self.market,
                "LINK",
                feed_answer(self.w3, self.market, "LINK")[0],
                updated_at=ts - 7200,
            )
        elif fault == "frozen_feed":
            move_market(
                self.w3, self.market, "WETH", self.rng.choice((-800, 800)), update_feed=False
            )

    def clear(self, fault: str | None) -> None:
        for p in self.proxies:
            p.mode, p.fail_next = "ok", []
        if fault == "stale_feed":
            set_feed(self.w3, self.market, "LINK", feed_answer(self.w3, self.market, "LINK")[0])
        if fault == "frozen_feed":  # the oracle catches up with the pools
            move_market(self.w3, self.market, "WETH", 0)

    # ---------------------------------------------------------------- the loop

    def tick(self) -> None:
        fault = self.inject()
        try:
            for r in self.keeper.tick(Mode.SEND):
                self.stats["ticks"] += 1
                self.stats[f"verdict:{r.verdict}"] += 1
        except Exception as err:  # noqa: BLE001 - a soak counts every escape, it never stops
            self.stats["tick_exceptions"] += 1
            self.stats[f"exception:{type(err).__name__}"] += 1
        finally:
            self.clear(fault)


def build(tmp: Path, anvil_url: str) -> tuple[Soak, Path]:
    w3 = Web3(Web3.HTTPProvider(anvil_url, request_kwargs={"timeout": 60}))
    a, b = RpcProxy(anvil_url), RpcProxy(anvil_url)
    market, cfg_path, _addr = stack(w3, a.url, 1, tmp, block_time_s=BLOCK_S)
    text = cfg_path.read_text().replace(
        f'rpc_urls: ["{a.url}"]', f'rpc_urls: ["{a.url}", "{b.url}"]'
    )
    cfg_path.write_text(text)
    cfg = load_config(cfg_path)
    rpc_w3 = connect(cfg, RPC)
    ledger = Ledger(cfg.ledger.path)
    account = unlock(cfg)
    sender = Sender(rpc_w3, account, ledger, SenderSettings.from_config(cfg, block_timeout_s=10.0))
    sender.recover_pending()
    keeper = Keeper(
        cfg,
        KeeperDeps(
            w3=rpc_w3,
            ledger=ledger,
            history=PriceHistory(tmp / "h.sqlite"),
            keeper_address=account.address,
            policies=policies_for(cfg),
            sender=sender,
        ),
    )
    soak = Soak(
        w3=w3,
        market=market,
        vault=market.vaults["v0"],
        keeper=keeper,
        proxies=(a, b),
        rng=random.Random(7),
    )
    return soak, cfg.ledger.path


def audit(soak: Soak, ledger_path: Path) -> dict[str, int]:
    """Duplicate sends and lost records, from the chain and the ledger."""
    addr = soak.keeper.deps.keeper_address
    on_chain = int(soak.w3.eth.get_transaction_count(addr))  # type: ignore[arg-type]
    with sqlite3.connect(ledger_path) as c:
        tick_rows = c.execute("SELECT COUNT(*) FROM ticks").fetchone()[0]
        final = c.execute("SELECT COUNT(*) FROM txs WHERE mined_hash IS NOT NULL").fetchone()[0]
        dup = c.execute(
            "SELECT COUNT(*) FROM (SELECT vault, epoch_key FROM txs WHERE status = "
            "'confirmed' AND receipt_status = 1 GROUP BY vault, epoch_key "
            "HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        attempts = c.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
        txs = c.execute("SELECT COUNT(*) FROM txs").fetchone()[0]
        pending = c.execute(
            "SELECT COUNT(*) FROM txs WHERE status IN ('pending', 'mined')"
        ).fetchone()[0]
    return {
        "on_chain_txs": on_chain,
        "ledger_txs_mined": final,
        "duplicate_sends": dup,
        "lost_tx_records": max(on_chain - final, 0),
        "tick_rows": tick_rows,
        "lost_tick_records": max(soak.stats["ticks"] - tick_rows, 0),
        "replacements": attempts - txs,
        "left_pending": pending,
    }


def run(
    hours: float,
    tick_blocks: int,
    fault_rate: float,
    vol_scale: float,
    shock_assets: tuple[str, ...],
) -> tuple[dict[str, int], Counter[str], float]:
    import tempfile

    t0 = time.perf_counter()
    with Anvil(extra_args=("--base-fee", "1000000000")) as anvil:
        soak, ledger_path = build(Path(tempfile.mkdtemp(prefix="vk-soak-")), anvil.url)
        soak.stats["fault_rate_ppm"] = int(fault_rate * 1e6)
        soak.vol_scale = vol_scale
        soak.shock_assets = shock_assets
        blocks_per_hour = 3600 // BLOCK_S
        total = int(hours * blocks_per_hour)
        block = 0
        while block < total:
            soak.advance(tick_blocks)
            block += tick_blocks
            if block % blocks_per_hour < tick_blocks:
                soak.hour()
            soak.tick()
            if soak.outside():
                soak.outside_s += tick_blocks * BLOCK_S
                soak.max_outside_s = max(soak.max_outside_s, soak.outside_s)
            else:
                soak.outside_s = 0
        result = audit(soak, ledger_path)
        result["max_outside_outer_s"] = soak.max_outside_s
        result["sim_hours"] = soak.sim_s // 3600
        for p in soak.proxies:
            p.close()
        soak.keeper.deps.sender.close()  # type: ignore[union-attr]
    return result, soak.stats, time.perf_counter() - t0


def report(
    args: argparse.Namespace, result: dict[str, int], stats: Counter[str], wall_s: float
) -> str:
    faults = {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("fault:")}
    verdicts = {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("verdict:")}
    failures = sum(verdicts.get(v, 0) for v in ("error", "failed", "halted", "skipped"))
    lines = [
        "# Soak: simulated market time with random faults",
        "",
        f"`python -m benchmarks.bench_soak --hours {args.hours:g} --tick-blocks {args.tick_blocks}"
        f" --fault-rate {args.fault_rate:g} --vol-scale {args.vol_scale:g}"
        f" --shock-assets {args.shock_assets}` (seed 7: hourly moves"
        f" at {args.vol_scale:g}x the default vols, one of {args.shock_assets} +-30% every 3 h),"
        " anvil, 12 s"
        " blocks, one vault ($1M), the "
        "keeper behind two fault-injecting RPC proxies; "
        f"wall time {wall_s:,.0f} s.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| simulated hours | {result['sim_hours']} |",
        f"| ticks | {stats['ticks']} |",
        f"| sends (keeper txs on chain) | {result['on_chain_txs']} |",
        f"| rebalances sent (verdict sent) | {verdicts.get('sent', 0)} |",
        f"| replacements (attempts beyond the first) | {result['replacements']} |",
        f"| failures (error / failed / halted / skipped ticks) | {failures} |",
        f"| exceptions escaping a tick | {stats['tick_exceptions']} |",
        "| **duplicate sends** (same vault epoch executed twice) | "
        f"**{result['duplicate_sends']}** |",
        f"| **lost ledger records** (txs on chain without a row + ticks without a row) | "
        f"**{result['lost_tx_records'] + result['lost_tick_records']}** |",
        f"| txs left pending at the end | {result['left_pending']} |",
        f"| max time outside the outer band | {result['max_outside_outer_s'] / 60:,.0f} min |",
        "",
        "Faults injected (one per faulted tick):",
        "",
        "| fault | ticks |",
        "|---|---:|",
        *[f"| {k} | {v} |" for k, v in sorted(faults.items())],
        "",
        "Tick verdicts:",
        "",
        "| verdict | count |",
        "|---|---:|",
        *[f"| {k} | {v} |" for k, v in sorted(verdicts.items())],
        "",
        "Exceptions:",
        "",
        *(_exceptions(stats) or ["- none"]),
        "",
        "Not injected in the soak (covered by tests/faults): reorgs, dropped txs, stuck txs "
        "needing replacement (automine is on), nonce gaps, insufficient funds, revoked role, "
        "process kill. The outer-band time includes the hours where a fault (stale or frozen "
        "feed, all RPCs down) stopped the keeper on purpose.",
        "",
    ]
    return "\n".join(lines)


def _exceptions(stats: Counter[str]) -> list[str]:
    return [
        f"- {k.split(':', 1)[1]}: {v}"
        for k, v in sorted(stats.items())
        if k.startswith("exception:")
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--tick-blocks", type=int, default=5, help="blocks between ticks (5 = 60 s)")
    ap.add_argument("--fault-rate", type=float, default=0.1, help="probability per tick")
    ap.add_argument("--vol-scale", type=float, default=3.0, help="x the hourly volatilities")
    ap.add_argument("--shock-assets", default="WETH,WBTC", help="assets the 3-hourly shock hits")
    ap.add_argument("--out", type=Path, default=RESULTS / "soak.md")
    args = ap.parse_args()
    shock = tuple(args.shock_assets.split(","))
    result, stats, wall = run(args.hours, args.tick_blocks, args.fault_rate, args.vol_scale, shock)
    text = report(args, result, stats, wall)
    args.out.write_text(text)
    print(text)
    if result["duplicate_sends"] or result["lost_tx_records"] or result["lost_tick_records"]:
        raise SystemExit("soak: duplicate sends or lost records")


if __name__ == "__main__":
    main()
