"""Multi-keeper soak: 3 `keeper run` processes on one anvil and one PostgreSQL store, 2 vaults.

Each keeper is a separate OS process with its own host identity (KEEPER_HOST_ID), so leases
behave as between machines: a dead keeper's lease is taken over only when it expires. The
keepers share the keeper account (one keystore) and reach anvil through two fault-injecting
RPC proxies. The driver plays a market hour by hour (real hourly returns, by default from the
May-June 2022 slice shipped in keeper/data, scaled by --vol-scale, plus a +-30% shock every
--shock-every hours) and injects random faults per hour:
kill -9 of a keeper (right when it holds a lease when possible; restarted an hour later), the
first node down, the second node lagging 5 blocks, and dropped sends (the pool forgets the
keeper's pending transaction).

Reported (benchmarks/results/multikeeper.md): sends, rebalances, duplicates (two mined
transactions for one vault epoch: must be 0), reverted sends (a losing keeper's send: goal 0),
orphaned leases (unfinished, owner dead, not taken over at the end: must be 0), hours outside
the outer band, and the time to take over a dead keeper's lease, in ticks (goal: under 2).

Run: `.venv/bin/python -m benchmarks.bench_multikeeper --hours 300`. A short version runs in CI
(tests/e2e/test_multikeeper_soak.py).
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from web3 import Web3

from benchmarks._common import RESULTS, stack
from keeper.backtest.data import load_prices, parse_date, select
from keeper.chain import raw
from keeper.chain.anvil import Anvil
from keeper.chain.contracts import _type_str, fn_abi
from keeper.errors import DataError
from keeper.ledger import Ledger
from keeper.localnet.deploy import LocalMarket
from keeper.localnet.market import feed_answer, move_market, set_feed
from keeper.read import ReadTarget, read_snapshot
from keeper.replay.window import DEFAULT_PRICES, SERIES

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.faults.proxy import RpcProxy  # noqa: E402
from tests.pgserver import start_pg, stop_pg  # noqa: E402

TICK_S = 1  # each keeper's schedule
LEASE_S = 1.0  # renewed every third of it; 0.75 x the tick, as the keeper's default
KILL_WAIT_H = 6  # a kill waits this many hours for a keeper holding a lease
N_KEEPERS, N_VAULTS = 3, 2
FAULTS = ("kill", "node_down", "node_lagging", "dropped_send")


@dataclass
class Settings:
    hours: int = 300
    step_s: float = 3.0  # wall seconds per market hour (the keepers tick every TICK_S)
    fault_rate: float = 0.3  # probability of a fault per hour
    vol_scale: float = 2.0
    shock_every: int = 6
    seed: int = 11
    start: str = "2022-05-01 00:00:00"
    script: tuple[str | None, ...] = ()  # the fault of each hour, in order (else random)
    prices: Path | None = None  # default: keeper/data/prices_hourly_2022_05_06.csv


@dataclass
class Keepers:
    cfg: Path
    logs: Path
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, i: int) -> None:
        env = {**os.environ, "KEEPER_HOST_ID": f"keeper-{i}", "PYTHONUNBUFFERED": "1"}
        out = (self.logs / f"keeper-{i}.log").open("ab")
        self.procs[i] = subprocess.Popen(
            [sys.executable, "-m", "keeper.cli", "run", "--config", str(self.cfg)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def kill(self, i: int) -> None:
        proc = self.procs.pop(i, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


@dataclass
class World:
    w3: Web3
    market: LocalMarket
    vaults: dict[str, str]  # name -> address
    keeper: str
    store: str
    proxies: tuple[RpcProxy, RpcProxy]
    keepers: Keepers
    rng: random.Random
    stats: dict[str, Any] = field(default_factory=dict)
    takeovers_s: list[float] = field(default_factory=list)
    dead: dict[int, int] = field(default_factory=dict)  # keeper -> hours until its restart
    kill_armed: int = 0  # hours left for a kill to find a keeper holding a lease
    drop_armed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    def rpc(self, method: str, *params: Any) -> Any:
        return raw.request(self.w3, method, list(params)).get("result")


# ---------------------------------------------------------------- the market


def advance_hour(world: World, moves: dict[str, int], hour: int, s: Settings) -> None:
    """One market hour: every asset moves (pools swapped to the new price, feeds refreshed).
    Block time is not jumped: a jump would expire every plan's on-chain deadline in flight.
    The moves mine at once (automine); 1 s interval mining resumes after."""
    world.rpc("evm_setAutomine", True)
    try:
        _moves(world, moves, hour, s)
    finally:
        world.rpc("evm_setIntervalMining", 1)


def _moves(world: World, moves: dict[str, int], hour: int, s: Settings) -> None:
    shock = hour // s.shock_every if hour % s.shock_every == 0 else None
    for sym, bps in moves.items():
        bps = round(bps * s.vol_scale)
        if shock is not None and sym == ("WETH", "WBTC")[shock % 2]:
            bps += 3000 if shock // 2 % 2 == 0 else -3000  # up, then back down next time
        if bps:
            move_market(world.w3, world.market, sym, bps)
        else:
            set_feed(world.w3, world.market, sym, feed_answer(world.w3, world.market, sym)[0])
    set_feed(world.w3, world.market, "USDC", feed_answer(world.w3, world.market, "USDC")[0])


def hourly_moves(s: Settings) -> tuple[str, list[dict[str, int]]]:
    """Each hour's move of WETH, WBTC and LINK in bps, from real hourly closes."""
    path = s.prices or DEFAULT_PRICES
    tokens = ("WETH", "WBTC", "LINK")
    data = select(load_prices(path), tuple(SERIES[t] for t in tokens))
    i0 = int(data.ts.searchsorted(parse_date(s.start)))
    rows = data.prices[i0: i0 + s.hours + 1]
    if len(rows) <= s.hours:
        raise DataError(f"{path}: fewer than {s.hours + 1} hours from {s.start}")
    moves = [{t: round((b / a - 1.0) * 10_000) for t, a, b in zip(tokens, r0, r1, strict=True)}
             for r0, r1 in itertools.pairwise(rows)]
    return f"real hourly returns from {Path(path).name} starting {s.start}", moves


def outside(world: World) -> int:
    symbols = {t.address.lower(): sym for sym, t in world.market.tokens.items()}
    targets = [ReadTarget(address=a, symbols=symbols) for a in world.vaults.values()]
    snap = read_snapshot(world.w3, world.market.multicall3, targets, chain_id=31337)
    return sum(any(a.outside_outer for a in v.assets) for v in snap.vaults)


def epochs(world: World) -> dict[str, int]:
    symbols = {t.address.lower(): sym for sym, t in world.market.tokens.items()}
    targets = [ReadTarget(address=a, symbols=symbols) for a in world.vaults.values()]
    snap = read_snapshot(world.w3, world.market.multicall3, targets, chain_id=31337)
    return {v.address.lower(): int(v.epoch) for v in snap.vaults}


# ---------------------------------------------------------------- faults


def live_leases(led: Ledger) -> list[tuple[str, str, str]]:
    with led.engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT vault, epoch, owner FROM epoch_locks WHERE done = 0 AND expires_ts > "
                "EXTRACT(EPOCH FROM clock_timestamp()) AND vault NOT LIKE 'account:%'"
            )
        ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def keeper_of(owner: str) -> int | None:
    host = owner.split(":", 1)[0]
    return int(host.split("-", 1)[1]) if host.startswith("keeper-") else None


def watch(world: World, store: str, stop: threading.Event) -> None:
    """The fault watcher, all hour long (the market moves included): an armed kill strikes the
    first keeper seen holding a lease; an armed drop removes the keeper's pending send."""
    led = Ledger(store)
    try:
        while not stop.wait(0.01):
            with world.lock:
                if world.kill_armed:
                    held = [x for x in live_leases(led) if keeper_of(x[2]) in world.keepers.procs]
                    if held:
                        world.kill_armed = 0
                        kill_holder(world, led, held[0])
                if world.drop_armed and drop_pending(world):
                    world.drop_armed = False
    finally:
        led.close()


def step(world: World, fault: str | None, s: Settings) -> None:
    """The rest of the hour. A kill waits up to KILL_WAIT_H hours for a keeper that holds a
    lease, then strikes one at random."""
    time.sleep(s.step_s)
    with world.lock:
        world.drop_armed = False
        if not world.kill_armed:
            return
        world.kill_armed -= 1
        if not world.kill_armed and world.keepers.procs:  # no lease held: a random moment
            i = world.rng.choice(sorted(world.keepers.procs))
            world.keepers.kill(i)
            world.dead[i] = 1
            world.count("kills_random")


def kill_holder(world: World, led: Ledger, lease: tuple[str, str, str]) -> None:
    i = keeper_of(lease[2])
    assert i is not None
    world.keepers.kill(i)
    world.dead[i] = 1
    world.count("kills_holding_a_lease")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        held = led.lease(lease[0], lease[1])
        if held is None or held.done or held.owner != lease[2]:
            world.takeovers_s.append(time.monotonic() - t0)
            return
        time.sleep(0.02)
    world.count("takeovers_not_within_30s")


def drop_pending(world: World) -> bool:
    pool = world.rpc("txpool_content")["pending"].get(world.keeper.lower(), {})
    for tx in pool.values():
        world.rpc("anvil_dropTransaction", tx["hash"])
        world.count("sends_dropped")
        return True
    return False


def revive(world: World) -> None:
    """Killed keepers come back an hour later."""
    for i, hours in list(world.dead.items()):
        if hours <= 0:
            world.keepers.start(i)
            del world.dead[i]
        else:
            world.dead[i] = hours - 1


def inject(world: World, s: Settings) -> str | None:
    a, b = world.proxies
    a.mode, b.mode, b.lag_blocks = "ok", "ok", None
    revive(world)
    if s.script:
        fault = s.script[(world.stats.get("hour", 1) - 1) % len(s.script)]
    elif world.rng.random() < s.fault_rate:
        fault = world.rng.choice(FAULTS)
    else:
        return None
    if fault is None:
        return None
    if fault == "kill" and not world.keepers.procs:
        return None
    world.count(f"fault:{fault}")
    if fault == "kill":
        world.kill_armed = KILL_WAIT_H
    elif fault == "dropped_send":
        world.drop_armed = True
    elif fault == "node_down":
        a.mode = "down"
    elif fault == "node_lagging":
        b.lag_blocks, b.mode = 5, "stale"
    return fault


# ---------------------------------------------------------------- audit


def rebalance_epoch(data: bytes) -> int:
    item = fn_abi("RebalancingVault", "rebalance")
    from eth_abi import decode

    args = decode([_type_str(p) for p in item["inputs"]], data[4:])
    return int(args[2]) if len(args) > 2 else -1


def audit(world: World, led: Ledger, from_block: int) -> dict[str, Any]:
    """From the chain: every keeper tx, its status and its vault epoch; from the store: open
    rows and orphaned leases."""
    mined: dict[tuple[str, int], int] = {}
    sends = reverted = 0
    for n in range(from_block, int(world.w3.eth.block_number) + 1):
        block = world.w3.eth.get_block(n, full_transactions=True)
        for tx in block["transactions"]:
            if str(tx["from"]).lower() != world.keeper.lower():
                continue
            sends += 1
            receipt = world.w3.eth.get_transaction_receipt(tx["hash"])
            if receipt["status"] == 0:
                reverted += 1
            to = str(tx.get("to") or "").lower()
            if to in {a.lower() for a in world.vaults.values()} and receipt["status"] == 1:
                key = (to, rebalance_epoch(bytes(tx["input"])))
                mined[key] = mined.get(key, 0) + 1
    with led.engine.connect() as c:
        rows = c.execute(text("SELECT error FROM txs WHERE receipt_status = 0")).all()
    errors = [str(r[0]) for r in rows]
    fenced = sum("BadEpoch" in e for e in errors)  # a keeper that lost the race to the chain
    return {
        "sends": sends,
        "rebalances": sum(mined.values()),
        "duplicates": sum(c - 1 for c in mined.values() if c > 1),
        "reverted": reverted,
        "reverted_losing_keeper": fenced,
        "reverted_reasons": sorted(set(errors)),
        "orphaned_leases": len(led.orphaned_leases()),
        "left_pending": len(led.pending_txs()),
    }


# ---------------------------------------------------------------- the run


def setup(tmp: Path, anvil: Anvil, store: str) -> World:
    w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 60}))
    a, b = RpcProxy(anvil.url), RpcProxy(anvil.url)
    market, cfg, keeper = stack(w3, a.url, N_VAULTS, tmp)
    body = cfg.read_text().replace(f'rpc_urls: ["{a.url}"]', f'rpc_urls: ["{a.url}", "{b.url}"]')
    body += (
        f'store: "{store}"\nlease_s: {LEASE_S}\nschedule: {{interval_s: {TICK_S}}}\n'
        "log_format: json\n"
    )
    cfg.write_text(body)
    logs = tmp / "logs"
    logs.mkdir()
    return World(
        w3=w3,
        market=market,
        vaults={n: market.vaults[n] for n in (f"v{i}" for i in range(N_VAULTS))},
        keeper=keeper,
        store=store,
        proxies=(a, b),
        keepers=Keepers(cfg=cfg, logs=logs),
        rng=random.Random(0),
    )


def run(s: Settings, tmp: Path | None = None) -> tuple[dict[str, Any], World]:
    tmp = tmp or Path(tempfile.mkdtemp(prefix="vk-multikeeper-"))
    server, run_as = start_pg()
    anvil = Anvil(extra_args=("--base-fee", "1000000000")).start()  # automine to deploy
    world: World | None = None
    try:
        world = setup(tmp, anvil, server.new_database())
        world.rng = random.Random(s.seed)
        result = soak(world, s)
        return result, world
    finally:
        if world is not None:
            world.keepers.stop_all()
            for p in world.proxies:
                p.close()
        anvil.stop()
        stop_pg(server, run_as)


def soak(world: World, s: Settings) -> dict[str, Any]:
    source, moves = hourly_moves(s)
    world.stats["market"] = source
    start_block = int(world.w3.eth.block_number)
    world.rpc("evm_setIntervalMining", 1)  # 1 s blocks: a send waits in the pool a moment
    for i in range(N_KEEPERS):
        world.keepers.start(i)
    led = Ledger(world.store)
    hours_outside = 0
    t0 = time.monotonic()
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(world, world.store, stop), daemon=True)
    watcher.start()
    try:
        time.sleep(3.0)  # the keepers connect and recover
        for hour, move in enumerate(moves[: s.hours], start=1):
            world.stats["hour"] = hour
            with world.lock:
                fault = inject(world, s)
            advance_hour(world, move, hour, s)
            step(world, fault, s)
            hours_outside += outside(world)
        for p in world.proxies:
            p.mode, p.lag_blocks = "ok", None
        stop.set()
        watcher.join(timeout=30)
        for i in list(world.dead):
            world.keepers.start(i)
        time.sleep(max(4 * TICK_S, 3 * LEASE_S) + 3)  # quiet: recovery resolves what is left
        world.keepers.stop_all()
        result = audit(world, led, start_block)
    finally:
        stop.set()
        led.close()
    takeovers = sorted(world.takeovers_s)
    result.update(
        hours=s.hours,
        wall_s=time.monotonic() - t0,
        hours_outside=hours_outside,
        takeovers=len(takeovers),
        takeover_max_ticks=(takeovers[-1] / TICK_S) if takeovers else 0.0,
        takeover_median_ticks=(takeovers[len(takeovers) // 2] / TICK_S) if takeovers else 0.0,
        **{k: v for k, v in world.stats.items() if k not in ("market", "hour")},
    )
    result["market"] = world.stats.get("market", "")
    return result


def report(s: Settings, r: dict[str, Any]) -> str:
    faults = {k.split(":", 1)[1]: v for k, v in r.items() if k.startswith("fault:")}
    lines = [
        "# Multi-keeper soak: 3 keepers, one PostgreSQL store, 2 vaults",
        "",
        f"`python -m benchmarks.bench_multikeeper --hours {s.hours} --step-s {s.step_s:g} "
        f"--start '{s.start}' "
        f"--fault-rate {s.fault_rate:g} --vol-scale {s.vol_scale:g} --shock-every "
        f"{s.shock_every} --seed {s.seed}`: market = {r['market']} (x{s.vol_scale:g}, a +-30% "
        f"shock every {s.shock_every} h); 3 `keeper run` processes with separate host "
        f"identities, one keeper account, ticks every {TICK_S} s, leases of {LEASE_S:g} s; "
        f"anvil with 1 s blocks behind two fault-injecting proxies; wall time "
        f"{r['wall_s']:,.0f} s.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| market hours | {r['hours']} |",
        f"| sends (keeper transactions mined) | {r['sends']} |",
        f"| rebalances executed | {r['rebalances']} |",
        f"| **duplicates** (a second mined tx for one vault epoch) | **{r['duplicates']}** |",
        f"| **reverted sends by a losing keeper** (the vault's BadEpoch) | "
        f"**{r['reverted_losing_keeper']}** |",
        f"| reverted sends, all reasons | {r['reverted']} |",
        f"| **orphaned leases** at the end | **{r['orphaned_leases']}** |",
        f"| transactions left pending at the end | {r['left_pending']} |",
        f"| vault-hours outside the outer band (of {r['hours'] * N_VAULTS}) "
        f"| {r['hours_outside']} |",
        f"| keepers killed holding a lease / at a random moment | "
        f"{r.get('kills_holding_a_lease', 0)} / {r.get('kills_random', 0)} |",
        f"| takeover of a dead keeper's lease: median / max | "
        f"{r['takeover_median_ticks']:.2f} / {r['takeover_max_ticks']:.2f} ticks |",
        f"| takeovers slower than 30 s | {r.get('takeovers_not_within_30s', 0)} |",
        f"| sends dropped from the pool | {r.get('sends_dropped', 0)} |",
        "",
        "Faults injected (one per faulted hour):",
        "",
        "| fault | hours |",
        "|---|---:|",
        *[f"| {k} | {v} |" for k, v in sorted(faults.items())],
        "",
        "Revert reasons (from the ledger):",
        "",
        *([f"- {e}" for e in r["reverted_reasons"]] or ["- none"]),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=int, default=300)
    ap.add_argument("--step-s", type=float, default=2.0)
    ap.add_argument("--fault-rate", type=float, default=0.3)
    ap.add_argument("--vol-scale", type=float, default=2.0)
    ap.add_argument("--shock-every", type=int, default=6)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--prices", type=Path, default=None, help="hourly price CSV")
    ap.add_argument("--out", type=Path, default=RESULTS / "multikeeper.md")
    args = ap.parse_args()
    s = Settings(
        hours=args.hours,
        step_s=args.step_s,
        fault_rate=args.fault_rate,
        vol_scale=args.vol_scale,
        shock_every=args.shock_every,
        seed=args.seed,
        prices=args.prices,
    )
    result, _world = run(s)
    text_out = report(s, result)
    args.out.write_text(text_out)
    print(text_out)
    if result["duplicates"] or result["orphaned_leases"]:
        raise SystemExit("multi-keeper soak: duplicates or orphaned leases")


if __name__ == "__main__":
    main()
