"""`keeper check` and `keeper simulate` against a node a network hop away.

A latency-adding JSON-RPC proxy (benchmarks/latency_proxy.py) sits in front of a local anvil
with the local market and vaults moved out of band (WETH +30%), so every vault plans a
rebalance. Each command runs as the operator runs it, a fresh process (start-up included),
with the proxy's URL as the network's only RPC. Reported per added latency: the whole command's
wall time (median), the HTTP requests by the keeper and by any fork it starts, and the round
trips in sequence (requests that overlap count once). Beside the commands, the same market
measures a running keeper (`keeper run` pays start-up once): one `simulate` tick per latency,
in this process, after a first tick that does the one-time work.

Two simulation paths: the node answers `eth_simulateV1` (anvil does), or the proxy refuses it
as many providers and Hardhat do, so the keeper falls back to a fork. `--before DIR` also runs
the keeper of another checkout (an earlier version), each of its runs next to this checkout's,
so both meet the same machine load. The CPU time of each command is reported beside its wall
time: on a shared machine the wall time also holds the time the process waited for a core.

Run: `.venv/bin/python -m benchmarks.bench_remote_sim` (full, writes
benchmarks/results/remote_sim.md), `--quick` (CI: 0 and 50 ms, one run each, one vault, prints
its table and writes nothing; fails when a command's verdict or its round trips in sequence
are off, the running keeper's included).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from benchmarks._common import RESULTS, stack
from benchmarks.latency_proxy import LatencyProxy
from keeper.app import Mode
from keeper.chain.anvil import Anvil
from keeper.localnet.market import move_market
from keeper.wiring import build_keeper, load

LATENCIES_MS = (0, 10, 25, 50, 100)
QUICK_LATENCIES_MS = (0, 50)
BLOCK_TIME_S = 12
MAX_ROUNDS = 10  # round trips in sequence one simulated vault may take (goal)
WANT = {"check": "planned", "simulate": "simulated"}


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    cpu_s: float
    keeper: int
    fork: int
    rounds: int
    verdicts: tuple[str, ...]


def keeper_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("keeper")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "keeper.cli"]


def keeper_env(source: str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if source:  # another checkout's keeper (an earlier version)
        env["PYTHONPATH"] = source
    return env


def child_cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def require(who: str, outcomes: list[tuple[str, str]], want: str) -> tuple[str, ...]:
    """The verdicts of (verdict, reason) pairs; exits naming the reasons unless all are `want`."""
    bad = {f"{verdict} ({reason})" for verdict, reason in outcomes if verdict != want}
    if bad:
        raise SystemExit(f"{who}: {sorted(bad)}, want {want}")
    return tuple(verdict for verdict, _ in outcomes)


def run_cmd(proxy: LatencyProxy, command: str, cfg: Path, source: str | None) -> Run:
    proxy.reset()
    cpu, t = child_cpu_s(), time.perf_counter()
    out = subprocess.run(
        [*keeper_cmd(), command, "--config", str(cfg), "--json"],
        capture_output=True,
        text=True,
        cwd=cfg.parent,
        env=keeper_env(source),
        timeout=3600,
        check=False,
    )
    seconds, cpu = time.perf_counter() - t, child_cpu_s() - cpu
    if out.returncode != 0:
        raise SystemExit(f"keeper {command} failed ({out.returncode}): {out.stderr.strip()[-800:]}")
    results = json.loads(out.stdout)
    verdicts = require(f"keeper {command}", [(r["verdict"], r["reason"]) for r in results],
                       WANT[command])
    return Run(
        seconds=seconds,
        cpu_s=cpu,
        keeper=proxy.requests["keeper"],
        fork=proxy.requests["fork"],
        rounds=proxy.rounds,
        verdicts=verdicts,
    )


def running_keeper(
    w3: Web3, proxy: LatencyProxy, cfg: Path, latencies: tuple[int, ...], repeats: int
) -> dict[int, Run]:
    """One `simulate` tick of a keeper already running (as `keeper run` is), per latency: the
    keeper is built and ticks once first (its start-up, chain id and simulation-path probe), then
    each measured tick reads a newly mined block, as the next scheduled tick does."""
    out: dict[int, Run] = {}
    with contextlib.chdir(cfg.parent):
        keeper = build_keeper(load(cfg, None), can_send=False)
        try:
            keeper.tick(Mode.SIMULATE)
            for ms in latencies:
                proxy.delay_s = ms / 1000
                runs = []
                for _ in range(repeats):
                    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
                    proxy.reset()
                    cpu, t = time.process_time(), time.perf_counter()
                    results = keeper.tick(Mode.SIMULATE)
                    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
                    verdicts = require("running keeper", [(r.verdict, r.reason) for r in results],
                                       WANT["simulate"])
                    runs.append(Run(seconds, cpu, proxy.requests["keeper"],
                                    proxy.requests["fork"], proxy.rounds, verdicts))
                out[ms] = median(runs)
        finally:
            keeper.close()
    return out


def median(runs: list[Run]) -> Run:
    mid = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    return Run(
        seconds=statistics.median(r.seconds for r in runs),
        cpu_s=statistics.median(r.cpu_s for r in runs),
        keeper=mid.keeper,
        fork=mid.fork,
        rounds=mid.rounds,
        verdicts=mid.verdicts,
    )


def row(ms: int, check: Run, sim: Run) -> str:
    return (
        f"| {ms} ms | {check.seconds:.2f} s | {sim.seconds:.2f} s | {sim.cpu_s:.2f} s | "
        f"{check.keeper} | {sim.keeper} | {sim.fork} | {sim.rounds} |"
    )


HEADER = [
    "| added latency per request | `keeper check` | `keeper simulate` | its CPU time | requests "
    "by `check` | requests by `simulate` | requests by the fork it starts | round trips in "
    "sequence (`simulate`) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
]


def own_state(cfg: Path, name: str) -> Path:
    """The same network, vaults and key in a directory of their own, so another keeper version
    keeps its own ledger and history (an older keeper refuses a store a newer one migrated)."""
    home = cfg.parent / name
    home.mkdir(exist_ok=True)
    for f in (cfg.name, "deployments.json", "keystore.json", "passphrase.txt"):
        shutil.copy(cfg.parent / f, home / f)
    return home / cfg.name


Tables = dict[str | None, tuple[list[str], dict[int, Run]]]  # per keeper source: rows, runs


def tables(
    proxy: LatencyProxy, cfg: Path, latencies: tuple[int, ...], repeats: int,
    sources: list[str | None],
) -> Tables:
    """One table per keeper source; each run of one source next to the same run of the other."""
    out: Tables = {
        src: (list(HEADER), {}) for src in sources
    }
    cfgs = {src: cfg if src is None else own_state(cfg, "before") for src in sources}
    for ms in latencies:
        proxy.delay_s = ms / 1000
        runs: dict[tuple[str | None, str], list[Run]] = {}
        for command in ("check", "simulate"):
            for _ in range(repeats):
                for src in sources:
                    runs.setdefault((src, command), []).append(
                        run_cmd(proxy, command, cfgs[src], src)
                    )
        for src in sources:
            check, sim = median(runs[(src, "check")]), median(runs[(src, "simulate")])
            out[src][0].append(row(ms, check, sim))
            out[src][1][ms] = sim
            print(f"{src or 'this checkout'}: {out[src][0][-1]}", flush=True)
    return out


RUNNING_HEADER = [
    "| added latency per request | a running keeper's `simulate` tick | CPU time of the process "
    "(the proxy's threads included) | requests | round trips in sequence |",
    "|---|---:|---:|---:|---:|",
]


def running_rows(runs: dict[int, Run]) -> list[str]:
    return [*RUNNING_HEADER, *(
        f"| {ms} ms | {r.seconds:.2f} s | {r.cpu_s:.2f} s | {r.keeper} | {r.rounds} |"
        for ms, r in runs.items()
    )]


def one_node(
    vaults: int, latencies: tuple[int, ...], repeats: int, reject: frozenset[str],
    sources: list[str | None],
) -> tuple[Tables, dict[int, Run]]:
    """The commands' tables for one market of `vaults` vaults behind the proxy, and the running
    keeper's ticks on the same market."""
    with Anvil(extra_args=("--gas-limit", "300000000")) as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 120}))
        proxy = LatencyProxy(anvil.url, reject=reject)
        try:
            market, cfg, _keeper = stack(w3, proxy.url, vaults, block_time_s=BLOCK_TIME_S)
            move_market(w3, market, "WETH", 3_000)
            commands = tables(proxy, cfg, latencies, repeats, sources)
            return commands, running_keeper(w3, proxy, cfg, latencies, repeats)
        finally:
            proxy.close()


def check_rounds(label: str, sims: dict[int, Run]) -> list[str]:
    return [
        f"{label}: `keeper simulate` took {r.rounds} round trips in sequence at {ms} ms "
        f"(limit {MAX_ROUNDS})"
        for ms, r in sims.items()
        if r.rounds > MAX_ROUNDS
    ]


TITLES = {"simulateV1": "node answers eth_simulateV1", "fork": "node without eth_simulateV1"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI: 0 and 50 ms, one run, one vault")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--vaults", type=int, default=100, help="vaults of the many-vault row, 0: none")
    ap.add_argument("--out", default=None, help="results file (default: remote_sim.md; none "
                    "with --quick)")
    ap.add_argument("--paths", default="simulateV1,fork", help="simulateV1, fork, or both")
    ap.add_argument("--before", help="also run the keeper of this checkout (an earlier version)")
    ap.add_argument("--latencies", help="added ms per request, comma-separated (0,10,25,50,100)")
    args = ap.parse_args()
    latencies = QUICK_LATENCIES_MS if args.quick else LATENCIES_MS
    if args.latencies:
        latencies = tuple(int(ms) for ms in args.latencies.split(","))
    repeats = 1 if args.quick else args.repeats
    doc, problems = [], []
    for i, path in enumerate(args.paths.split(",")):
        reject = frozenset({"eth_simulateV1"}) if path == "fork" else frozenset()
        sources: list[str | None] = [None] + ([args.before] if args.before and i == 0 else [])
        print(f"## 1 vault, {TITLES[path]}", flush=True)
        got, running = one_node(1, latencies, repeats, reject, sources)
        lines, sims = got[None]
        doc += [f"### 1 vault, {TITLES[path]}", "", *lines, ""]
        if args.before and args.before in got:
            doc += [f"### 1 vault, before ({args.before})", "", *got[args.before][0], ""]
        doc += [f"### 1 vault, a running keeper, {TITLES[path]}", "", *running_rows(running), ""]
        print("\n".join(running_rows(running)), flush=True)
        problems += check_rounds(path, sims) + check_rounds(f"{path}, running keeper", running)
        if not args.quick and args.vaults > 1:
            print(f"## {args.vaults} vaults at 50 ms, {TITLES[path]}", flush=True)
            many, many_running = one_node(args.vaults, (50,), 1, reject, [None])
            doc += [f"### {args.vaults} vaults at 50 ms, {TITLES[path]}", "", *many[None][0], "",
                    f"### {args.vaults} vaults at 50 ms, a running keeper, {TITLES[path]}", "",
                    *running_rows(many_running), ""]
    out = args.out or (None if args.quick else "remote_sim.md")
    if out:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / out).write_text("\n".join(doc))
    if problems:
        raise SystemExit("\n".join(problems))


if __name__ == "__main__":
    main()
