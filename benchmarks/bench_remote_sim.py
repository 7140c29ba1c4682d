"""`keeper check` and `keeper simulate` against a node a network hop away.

A latency-adding JSON-RPC proxy (benchmarks/latency_proxy.py) sits in front of a local anvil
with the local market and vaults moved out of band (WETH +30%), so every vault plans a
rebalance. Each command runs as the operator runs it, a fresh process (start-up included),
with the proxy's URL as the network's only RPC. Reported per added latency: the whole command's
wall time (median), the HTTP requests by the keeper and by any fork it starts, and the round
trips in sequence (requests that overlap count once).

Two simulation paths: the node answers `eth_simulateV1` (anvil does), or the proxy refuses it
as many providers and Hardhat do, so the keeper falls back to a fork.

Run: `.venv/bin/python -m benchmarks.bench_remote_sim` (full, writes
benchmarks/results/remote_sim.md), `--quick` (CI: 0 and 50 ms, one run each, one vault, prints
its table and writes nothing; fails when a command's verdict or its round trips in sequence
are off).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from benchmarks._common import RESULTS, stack
from benchmarks.latency_proxy import LatencyProxy
from keeper.chain.anvil import Anvil
from keeper.localnet.market import move_market

LATENCIES_MS = (0, 10, 25, 50, 100)
QUICK_LATENCIES_MS = (0, 50)
BLOCK_TIME_S = 12
MAX_ROUNDS = 10  # round trips in sequence one simulated vault may take (goal)
WANT = {"check": "planned", "simulate": "simulated"}


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    keeper: int
    fork: int
    rounds: int
    verdicts: tuple[str, ...]


def keeper_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("keeper")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "keeper.cli"]


def keeper_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if SOURCE:  # another checkout's keeper (to measure an earlier version)
        env["PYTHONPATH"] = SOURCE[0]
    return env


SOURCE: list[str] = []


def run_cmd(proxy: LatencyProxy, command: str, cfg: Path) -> Run:
    proxy.reset()
    t = time.perf_counter()
    out = subprocess.run(
        [*keeper_cmd(), command, "--config", str(cfg), "--json"],
        capture_output=True,
        text=True,
        cwd=cfg.parent,
        env=keeper_env(),
        timeout=3600,
        check=False,
    )
    seconds = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"keeper {command} failed ({out.returncode}): {out.stderr.strip()[-800:]}")
    verdicts = tuple(r["verdict"] for r in json.loads(out.stdout))
    return Run(
        seconds=seconds,
        keeper=proxy.requests["keeper"],
        fork=proxy.requests["fork"],
        rounds=proxy.rounds,
        verdicts=verdicts,
    )


def median_run(proxy: LatencyProxy, command: str, cfg: Path, repeats: int) -> Run:
    runs = [run_cmd(proxy, command, cfg) for _ in range(repeats)]
    mid = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    bad = [v for r in runs for v in r.verdicts if v != WANT[command]]
    if bad:
        raise SystemExit(f"keeper {command}: verdicts {sorted(set(bad))}, want {WANT[command]}")
    return Run(
        seconds=statistics.median(r.seconds for r in runs),
        keeper=mid.keeper,
        fork=mid.fork,
        rounds=mid.rounds,
        verdicts=mid.verdicts,
    )


def row(ms: int, check: Run, sim: Run) -> str:
    return (
        f"| {ms} ms | {check.seconds:.2f} s | {sim.seconds:.2f} s | {check.keeper} | "
        f"{sim.keeper} | {sim.fork} | {sim.rounds} |"
    )


HEADER = [
    "| added latency per request | `keeper check` | `keeper simulate` | requests by "
    "`check` | requests by `simulate` | requests by the fork it starts | round trips in "
    "sequence (`simulate`) |",
    "|---|---:|---:|---:|---:|---:|---:|",
]


def table(
    proxy: LatencyProxy, cfg: Path, latencies: tuple[int, ...], repeats: int
) -> tuple[list[str], dict[int, Run]]:
    lines, sims = list(HEADER), {}
    for ms in latencies:
        proxy.delay_s = ms / 1000
        check = median_run(proxy, "check", cfg, repeats)
        sims[ms] = sim = median_run(proxy, "simulate", cfg, repeats)
        lines.append(row(ms, check, sim))
        print(lines[-1], flush=True)
    return lines, sims


def one_node(
    vaults: int, latencies: tuple[int, ...], repeats: int, reject: frozenset[str]
) -> tuple[list[str], dict[int, Run]]:
    """The table for one market of `vaults` vaults behind the proxy."""
    with Anvil(extra_args=("--gas-limit", "300000000")) as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 120}))
        proxy = LatencyProxy(anvil.url, reject=reject)
        try:
            market, cfg, _keeper = stack(w3, proxy.url, vaults, block_time_s=BLOCK_TIME_S)
            move_market(w3, market, "WETH", 3_000)
            return table(proxy, cfg, latencies, repeats)
        finally:
            proxy.close()


def check_rounds(label: str, sims: dict[int, Run]) -> list[str]:
    return [
        f"{label}: `keeper simulate` took {r.rounds} round trips in sequence at {ms} ms "
        f"(limit {MAX_ROUNDS})"
        for ms, r in sims.items()
        if r.rounds > MAX_ROUNDS
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI: 0 and 50 ms, one run, one vault")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--vaults", type=int, default=100, help="vaults in the many-vault row")
    ap.add_argument("--out", default=None, help="results file (default: remote_sim.md; none "
                    "with --quick)")
    ap.add_argument("--paths", default="simulateV1,fork", help="simulateV1, fork, or both")
    ap.add_argument("--keeper-src", help="run the keeper from this checkout (an earlier version)")
    args = ap.parse_args()
    SOURCE[:] = [args.keeper_src] if args.keeper_src else []
    latencies = QUICK_LATENCIES_MS if args.quick else LATENCIES_MS
    repeats = 1 if args.quick else args.repeats
    doc, problems = [], []
    for path in args.paths.split(","):
        reject = frozenset({"eth_simulateV1"}) if path == "fork" else frozenset()
        title = {"simulateV1": "node answers eth_simulateV1", "fork": "node without eth_simulateV1"}
        print(f"## 1 vault, {title[path]}", flush=True)
        lines, sims = one_node(1, latencies, repeats, reject)
        doc += [f"### 1 vault, {title[path]}", "", *lines, ""]
        problems += check_rounds(path, sims)
        if not args.quick and args.vaults > 1:
            print(f"## {args.vaults} vaults at 50 ms, {title[path]}", flush=True)
            many, _ = one_node(args.vaults, (50,), 1, reject)
            doc += [f"### {args.vaults} vaults at 50 ms, {title[path]}", "", *many, ""]
    out = args.out or (None if args.quick else "remote_sim.md")
    if out:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / out).write_text("\n".join(doc))
    if problems:
        raise SystemExit("\n".join(problems))


if __name__ == "__main__":
    main()
