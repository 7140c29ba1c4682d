"""E. Oracle and market-data faults (fault tests 20-25): stale feed, zero/negative answer, frozen
feed while the pool moves, oracle vs pool TWAP disagreement, a sandwich on a fork, and a
6/8/18-decimals property test."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.exceptions import ContractLogicError

from keeper.app import Keeper, KeeperDeps, Mode
from keeper.chain.anvil import Anvil
from keeper.chain.errors import name_revert
from keeper.config import load_config
from keeper.history import PriceHistory
from keeper.ledger import Ledger
from keeper.localnet import chain as lchain
from keeper.localnet.deploy import sqrt_price_x96
from keeper.localnet.market import current_prices_e8, feed_answer, move_market, set_feed
from keeper.models import FeedState
from keeper.plan import raw_for_value
from keeper.units import value_e18
from tests.faults.conftest import (
    GWEI,
    ChainCtl,
    Kit,
    epoch,
    push_out_of_band,
    set_rpc_urls,
    ticks,
    txs,
    vault_view,
)
from tests.txkit import planned_calldata

pytestmark = pytest.mark.chain


def _vault_revert(kit: Kit, data: str) -> str:
    with pytest.raises(ContractLogicError) as err:
        kit.env.w3.eth.call({"from": kit.env.keeper, "to": kit.env.vault, "data": data})
    return name_revert(err.value.data if isinstance(err.value.data, str) else None) or ""


def _nothing_sent(kit: Kit, chain: ChainCtl, e0: int) -> None:
    assert chain.sent_count(kit.env.keeper) == 0 and txs(kit.env) == [] and epoch(kit.env) == e0


def test_stale_feed_by_its_heartbeat_no_action_and_vault_would_revert(
    kit: Kit, chain: ChainCtl
) -> None:
    keeper = kit.keeper()
    push_out_of_band(kit.env)
    planned = planned_calldata(keeper)  # what the keeper would send with a fresh feed
    e0 = epoch(kit.env)
    ts = kit.env.w3.eth.get_block("latest")["timestamp"]
    answer, _ = feed_answer(kit.env.w3, kit.env.market, "WBTC")
    set_feed(kit.env.w3, kit.env.market, "WBTC", answer, updated_at=ts - 3601)  # heartbeat 1 h
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "hold" and "WBTC feed is stale" in r.reason and "heartbeat 3600" in r.reason
    assert ticks(kit.env)[-1][0] == "hold"
    _nothing_sent(kit, chain, e0)
    assert _vault_revert(kit, planned).startswith("StaleFeed")


@pytest.mark.parametrize("answer", [0, -1])
def test_zero_or_negative_answer_no_action_and_vault_would_revert(
    kit: Kit, chain: ChainCtl, answer: int
) -> None:
    keeper = kit.keeper()
    push_out_of_band(kit.env)
    planned = planned_calldata(keeper)
    e0 = epoch(kit.env)
    set_feed(kit.env.w3, kit.env.market, "LINK", answer)
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "hold" and f"LINK feed answer {answer} is not positive" in r.reason
    _nothing_sent(kit, chain, e0)
    assert _vault_revert(kit, planned).split("(")[0] in ("BadAnswer", "AnswerOutOfBounds")


def test_frozen_feed_while_pool_moves_20pct_raises_deviation_alarm(
    kit: Kit, chain: ChainCtl, caplog: pytest.LogCaptureFixture
) -> None:
    keeper = kit.keeper()
    e0 = epoch(kit.env)
    move_market(kit.env.w3, kit.env.market, "WETH", -2_000, update_feed=False)  # feed frozen
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "hold" and r.reason.startswith("oracle/pool deviation alarm: WETH")
    assert any(
        "deviation alarm" in rec.getMessage()
        for rec in caplog.records
        if rec.levelname == "WARNING"
    )
    assert ticks(kit.env)[-1][1].startswith("oracle/pool deviation alarm")
    _nothing_sent(kit, chain, e0)


def test_oracle_and_pool_twap_disagree_beyond_limit_blocks_the_action(
    kit: Kit, chain: ChainCtl
) -> None:
    e0 = epoch(kit.env)
    price = feed_answer(kit.env.w3, kit.env.market, "WETH")[0]
    set_feed(kit.env.w3, kit.env.market, "WETH", price * 13 // 10)  # the oracle alone says +30%
    keeper = kit.keeper()
    lax = Keeper(
        keeper.cfg,
        KeeperDeps(
            w3=keeper.deps.w3,
            ledger=Ledger(kit.env.tmp / "lax.sqlite"),
            history=PriceHistory(kit.env.tmp / "lax-h.sqlite"),
            keeper_address=kit.env.keeper,
            policies=keeper.deps.policies,
            max_pool_deviation_bps=100_000,
        ),
    )
    (without_guard,) = lax.tick(Mode.CHECK)
    assert without_guard.action == "rebalance"  # the oracle alone would trade
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "hold" and "oracle/pool deviation alarm" in r.reason
    assert "WETH" in r.reason and "bps > 200 bps" in r.reason
    _nothing_sent(kit, chain, e0)
    lax.close()


def _attack(w3: Web3, kit: Kit, symbol: str, move_bps: int) -> list[str]:
    """Front-run: push every pool holding `symbol` by `move_bps` (feeds untouched), sent with a
    tip that outbids the keeper; returns the attack tx hashes."""
    m = kit.env.market
    prices = current_prices_e8(w3, m)
    prices[symbol] = prices[symbol] * (10_000 + move_bps) // 10_000
    router = lchain.at(w3, "SwapRouter", m.router)
    sent: list[str] = []
    for key, pool_addr in m.pools.items():
        base, quote, fee = key.split("/")
        if symbol not in (base, quote):
            continue
        a, b = m.tokens[base], m.tokens[quote]
        t0, t1 = sorted((a, b), key=lambda t: int(t.address, 16))
        pool = lchain.at(w3, "UniswapV3Pool", pool_addr)
        target = sqrt_price_x96(t0, t1, prices)
        tin, tout = (t1, t0) if target > int(pool.functions.slot0().call()[0]) else (t0, t1)
        bal = lchain.at(w3, "MockERC20", tin.address).functions.balanceOf(m.deployer).call()
        params = (tin.address, tout.address, int(fee), m.deployer, 2**63, bal // 4, 0, target)
        data = router.functions.exactInputSingle(params)._encode_transaction_data()
        resp = w3.provider.make_request(
            "eth_sendTransaction",
            [
                {  # type: ignore[arg-type]
                    "from": m.deployer,
                    "to": m.router,
                    "data": data,
                    "gas": hex(2_000_000),
                    "maxFeePerGas": hex(900 * GWEI),
                    "maxPriorityFeePerGas": hex(300 * GWEI),
                }
            ],
        )
        sent.append(str(resp["result"]))
    return sent


def test_sandwich_on_a_fork_reverts_or_loses_at_most_the_slippage_cap(kit: Kit) -> None:
    push_out_of_band(kit.env)  # WETH overweight: the keeper will sell WETH
    with Anvil(fork_url=str(kit.env.w3.provider.endpoint_uri)) as fork:  # type: ignore[attr-defined]
        w3f = Web3(Web3.HTTPProvider(fork.url))
        ctl = ChainCtl(w3f, filler=w3f.eth.accounts[9])
        set_rpc_urls(kit.env, [fork.url])
        for tok in kit.env.market.tokens.values():  # the attacker's approvals, ahead of time
            erc20 = lchain.at(w3f, "MockERC20", tok.address)
            lchain.transact(
                erc20.functions.approve(kit.env.market.router, 2**256 - 1), kit.env.market.deployer
            )
        nav0 = _nav(kit, w3f)
        attacks: list[str] = []

        def before(call: int) -> None:
            if call == 1:  # our rebalance waits in the pool; the attacker sells WETH first
                attacks.extend(_attack(w3f, kit, "WETH", -500))

        keeper = kit.keeper(waiter=ctl.waiter(before))
        ctl.automine(False)
        (r,) = keeper.tick(Mode.SEND)
        ctl.automine(True)
        ((tx_id, status, purpose, receipt, error),) = txs(kit.env)
        ours = w3f.eth.get_transaction_receipt(keeper.deps.ledger.get_tx(tx_id).mined_hash)
        assert len(attacks) >= 3  # every WETH pool was pushed first, in the same block
        for h in attacks:
            att = w3f.eth.get_transaction_receipt(h)  # type: ignore[arg-type]
            assert att["status"] == 1 and att["blockNumber"] == ours["blockNumber"]
            assert att["transactionIndex"] < ours["transactionIndex"]
        nav1 = _nav(kit, w3f)
        max_slip = vault_view_at(kit, w3f).limits.max_slippage_bps
        if receipt == 0:  # the oracle floor held: nothing traded
            assert r.verdict == "failed" and status == "failed"
            # the vault's oracle floor (minOut) enforced by the vault or passed to the router
            assert error is not None and (
                "SlippageExceeded" in error or "Too little received" in error
            )
            assert nav1 == nav0
        else:  # it traded inside the vault's floor: the loss is bounded
            assert (status, purpose) == ("confirmed", "rebalance")
            assert (nav0 - nav1) * 10_000 <= nav0 * max_slip


def vault_view_at(kit: Kit, w3f: Web3):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    return vault_view(replace(kit.env, w3=w3f))


def _nav(kit: Kit, w3f: Web3) -> int:
    return int(vault_view_at(kit, w3f).nav_e18)


@settings(max_examples=200, deadline=None)
@given(
    token_dec=st.sampled_from([6, 8, 18]),
    feed_dec=st.sampled_from([6, 8, 18]),
    price=st.integers(min_value=1, max_value=10**6),
    value_usd=st.integers(1, 10**9),
)
def test_decimals_mix_6_8_18_has_no_scaling_error(
    token_dec: int, feed_dec: int, price: int, value_usd: int
) -> None:
    answer = price * 10**feed_dec // 100  # price in cents -> feed units
    feed = FeedState(
        feed="0x0",
        answer=answer,
        decimals=feed_dec,
        updated_at_ts=0,
        heartbeat_s=3600,
        min_answer=1,
        max_answer=2**255,
    )
    asset = _asset(token_dec, feed)
    v = value_usd * 10**18
    raw = raw_for_value(v, asset)
    back = value_e18(raw, token_dec, answer, feed_dec)
    one_unit = value_e18(1, token_dec, answer, feed_dec)
    assert back <= v and v - back <= one_unit + 1  # rounds down by less than one raw unit


def _asset(decimals: int, feed: FeedState):  # type: ignore[no-untyped-def]
    from keeper.models import AssetState

    return AssetState(
        symbol="X",
        token="0x0",
        decimals=decimals,
        balance_raw=0,
        feed=feed,  # type: ignore[arg-type]
        value_e18=0,
        weight_bps=0,
        target_bps=0,
        inner_band_bps=0,  # type: ignore[arg-type]
        outer_band_bps=0,
    )  # type: ignore[arg-type]


def test_keeper_values_match_the_vault_for_6_8_18_decimal_tokens(kit: Kit) -> None:
    view = vault_view(kit.env)
    assert sorted(a.decimals for a in view.assets) == [6, 8, 18, 18]  # USDC, WBTC, WETH, LINK
    for a in view.assets:
        mine = value_e18(a.balance_raw, a.decimals, a.feed.answer, a.feed.decimals)
        assert abs(mine - a.value_e18) <= 1, a.symbol  # the vault's own OracleLib scaling
    cfg = load_config(kit.env.config)
    assert {s: t.decimals for s, t in cfg.contracts.tokens.items()}["WBTC"] == 8
