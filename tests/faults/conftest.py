"""Fault-injection harness: the e2e keeper environment, RPC proxies, a keeper builder with a
driveable block waiter, and chain controls (automine, stuck blocks) restored after each test."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from web3 import Web3

from keeper.app import Keeper, KeeperDeps
from keeper.chain.rpc import RpcSettings
from keeper.config import load_config
from keeper.ledger import Ledger
from keeper.localnet.market import move_market
from keeper.metrics import Metrics
from keeper.read import ReadTarget, read_snapshot
from keeper.send.sender import Sender, SenderSettings, private_endpoint
from keeper.wiring import connect, open_stores, policies_for, unlock
from tests.e2e.conftest import KeeperEnv, keeper_env  # noqa: F401 - fixture re-export
from tests.faults.proxy import RpcProxy
from tests.txkit import DEFAULT_GAS_LIMIT, GWEI, ChainCtl  # noqa: F401 - re-exported to tests

pytestmark = pytest.mark.chain
FAST_RPC = RpcSettings(timeout_s=2.0, rounds=2, backoff_s=0.05, max_backoff_s=0.2, cooldown_s=2.0)


# ------------------------------------------------------------------ config edits


def edit_config(cfg: Path, old: str, new: str) -> None:
    text = cfg.read_text()
    assert old in text, old
    cfg.write_text(text.replace(old, new, 1))


def set_rpc_urls(env: KeeperEnv, urls: list[str]) -> None:
    text = env.config.read_text()
    start = text.index("rpc_urls: [")
    end = text.index("]", start)
    quoted = ", ".join(f'"{u}"' for u in urls)
    env.config.write_text(text[:start] + f"rpc_urls: [{quoted}" + text[end:])


def network_line(env: KeeperEnv, line: str) -> None:
    edit_config(env.config, "    block_time_s: 1\n", f"    block_time_s: 1\n    {line}\n")


# ------------------------------------------------------------------ chain control


@pytest.fixture(autouse=True)
def _keeper_logs_reach_caplog() -> Iterator[None]:
    """The CLI and the demo call setup_logging(), which detaches the 'keeper' logger from the
    root (propagate=False); put it back so every test's caplog sees the keeper's alerts."""
    yield
    lg = logging.getLogger("keeper")
    lg.handlers[:] = []
    lg.propagate = True
    lg.setLevel(logging.NOTSET)


@pytest.fixture
def chain(w3: Web3) -> Iterator[ChainCtl]:
    ctl = ChainCtl(w3, filler=w3.eth.accounts[9])
    yield ctl
    ctl.automine(True)
    ctl.rpc("evm_setBlockGasLimit", hex(DEFAULT_GAS_LIMIT))


@pytest.fixture
def proxies(anvil_url: str) -> Iterator[Callable[[], RpcProxy]]:
    made: list[RpcProxy] = []

    def make() -> RpcProxy:
        p = RpcProxy(anvil_url)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


# ------------------------------------------------------------------ keeper builder


@dataclass
class Kit:
    env: KeeperEnv
    made: list[Keeper] = field(default_factory=list)

    def keeper(
        self,
        *,
        rpc: RpcSettings = FAST_RPC,
        waiter: Callable[[int], int] | None = None,
        recover: bool = True,
        metrics: Metrics | None = None,
        **sender_kw: Any,
    ) -> Keeper:
        cfg = load_config(self.env.config)
        w3 = connect(cfg, rpc)
        ledger, history = open_stores(cfg)
        account = unlock(cfg)
        settings = SenderSettings.from_config(cfg, **{"block_timeout_s": 10.0, **sender_kw})
        sender = Sender(
            w3,
            account,
            ledger,
            settings,
            wait_for_block=waiter,
            broadcast_w3=private_endpoint(cfg),
            metrics=metrics,
        )
        if metrics is not None:
            metrics.names.update({str(v.address).lower(): v.name for v in cfg.vaults})
        if recover:
            sender.recover_pending()
        keeper = Keeper(
            cfg,
            KeeperDeps(
                w3=w3,
                ledger=ledger,
                history=history,
                keeper_address=account.address,
                policies=policies_for(cfg),
                sender=sender,
                metrics=metrics,
            ),
        )
        self.made.append(keeper)
        return keeper

    def close(self, keeper: Keeper) -> None:
        if keeper in self.made:
            self.made.remove(keeper)
            keeper.close()


@pytest.fixture
def kit(keeper_env: KeeperEnv) -> Iterator[Kit]:  # noqa: F811 - the imported fixture
    k = Kit(keeper_env)
    yield k
    for keeper in list(k.made):
        k.close(keeper)


@pytest.fixture
def shared_kit(keeper_env: KeeperEnv, store_url: str) -> Iterator[Kit]:  # noqa: F811
    """A Kit whose config names the store explicitly: a SQLite file, or a PostgreSQL database
    (the test runs once per backend)."""
    with keeper_env.config.open("a") as f:
        f.write(f'store: "{store_url}"\n')
    k = Kit(dataclasses.replace(keeper_env, store=store_url))
    yield k
    for keeper in list(k.made):
        k.close(keeper)


# ------------------------------------------------------------------ observations


def store_rows(env: KeeperEnv, sql: str) -> list[tuple[Any, ...]]:
    """Rows of `sql` from the env's store, whichever backend."""
    led = Ledger(env.store_location)
    try:
        with led.engine.connect() as c:
            return [tuple(r) for r in c.execute(text(sql)).all()]
    finally:
        led.close()


def ticks(env: KeeperEnv) -> list[tuple[str, str, int | None]]:
    return store_rows(env, "SELECT verdict, reason, block_number FROM ticks ORDER BY id")  # type: ignore[return-value]


def txs(env: KeeperEnv) -> list[tuple[int, str, str, int | None, str | None]]:
    return store_rows(  # type: ignore[return-value]
        env, "SELECT id, status, purpose, receipt_status, error FROM txs ORDER BY id"
    )


def vault_view(env: KeeperEnv) -> Any:
    symbols = {t.address.lower(): s for s, t in env.market.tokens.items()}
    return read_snapshot(
        env.w3,
        env.market.multicall3,
        [ReadTarget(address=env.vault, symbols=symbols)],
        chain_id=31337,
    ).vaults[0]


def epoch(env: KeeperEnv) -> int:
    return int(vault_view(env).epoch)


def push_out_of_band(env: KeeperEnv, symbol: str = "WETH", bps: int = 3_000) -> None:
    move_market(env.w3, env.market, symbol, bps)  # +30%: the asset leaves its outer band


def in_band(env: KeeperEnv) -> bool:
    return all(abs(a.weight_bps - a.target_bps) <= a.inner_band_bps for a in vault_view(env).assets)
