"""End to end through the `keeper` CLI on the local market with the real Uniswap v3."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from keeper.cli import app
from keeper.localnet.market import move_market, set_feed
from keeper.read import ReadTarget, read_snapshot

pytestmark = pytest.mark.chain
runner = CliRunner()  # click 8.2+: .stdout and .stderr are kept apart


def _weights(env) -> dict[str, tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    symbols = {t.address.lower(): s for s, t in env.market.tokens.items()}
    snap = read_snapshot(
        env.w3,
        env.market.multicall3,
        [ReadTarget(address=env.vault, symbols=symbols)],
        chain_id=31337,
    )
    return {a.symbol: (a.weight_bps, a.target_bps, a.inner_band_bps) for a in snap.vaults[0].assets}


def _txs(env) -> list[tuple[str, str, int]]:  # type: ignore[no-untyped-def]
    with sqlite3.connect(env.ledger) as c:
        return c.execute("SELECT status, purpose, receipt_status FROM txs").fetchall()


def _sent_count(env) -> int:  # type: ignore[no-untyped-def]
    return env.w3.eth.get_transaction_count(env.keeper)


def test_rebalance_yes_brings_weights_inside_inner_band(keeper_env) -> None:  # type: ignore[no-untyped-def]
    move_market(keeper_env.w3, keeper_env.market, "WETH", 3_000)  # +30%: WETH leaves its outer band
    before = _weights(keeper_env)
    assert abs(before["WETH"][0] - before["WETH"][1]) > 500
    out = runner.invoke(app, ["rebalance", "--yes", "--config", str(keeper_env.config)])
    assert out.exit_code == 0, out.output
    after = _weights(keeper_env)
    for sym, (w, t, inner) in after.items():
        assert abs(w - t) <= inner, (sym, w, t)
    assert _sent_count(keeper_env) == 1
    assert _txs(keeper_env) == [("confirmed", "rebalance", 1)]


def test_check_json_plans_but_sends_nothing(keeper_env) -> None:  # type: ignore[no-untyped-def]
    move_market(keeper_env.w3, keeper_env.market, "WBTC", -3_000)
    out = runner.invoke(app, ["check", "--json", "--config", str(keeper_env.config)])
    assert out.exit_code == 0, out.output
    (result,) = json.loads(out.stdout)
    assert (result["action"], result["verdict"]) == ("rebalance", "planned")
    assert result["details"]["legs"], result
    assert result["cost_usd"] > 0
    assert _sent_count(keeper_env) == 0


def test_hold_when_inside_the_band(keeper_env) -> None:  # type: ignore[no-untyped-def]
    out = runner.invoke(app, ["check", "--json", "--config", str(keeper_env.config)])
    (result,) = json.loads(out.stdout)
    assert (result["action"], result["verdict"]) == ("hold", "hold")
    assert "within" in result["reason"]


def test_fork_simulation_catches_a_revert_and_nothing_is_sent(keeper_env) -> None:  # type: ignore[no-untyped-def]
    w3, market = keeper_env.w3, keeper_env.market
    move_market(w3, market, "WETH", 3_000)
    # The WBTC feed is exactly one heartbeat (1 h) old at the snapshot block: the read accepts
    # it, but the transaction lands a block later, when the vault's oracle guard rejects it.
    ts = w3.eth.get_block("latest")["timestamp"] + 100
    w3.provider.make_request("evm_setNextBlockTimestamp", [ts])  # type: ignore[arg-type]
    answer = market.prices_e8["WBTC"]
    set_feed(w3, market, "WBTC", answer, updated_at=ts - 3600)
    out = runner.invoke(app, ["simulate", "--json", "--config", str(keeper_env.config)])
    assert out.exit_code == 0, out.output
    (result,) = json.loads(out.stdout)
    assert result["verdict"] == "rejected"
    assert "StaleFeed" in result["reason"]
    out = runner.invoke(app, ["rebalance", "--yes", "--config", str(keeper_env.config)])
    assert out.exit_code == 0, out.output
    assert "nothing to send" in out.output
    assert _sent_count(keeper_env) == 0
    assert _txs(keeper_env) == []


def test_status_shows_weights_and_recent_decisions(keeper_env) -> None:  # type: ignore[no-untyped-def]
    runner.invoke(app, ["check", "--config", str(keeper_env.config)])
    out = runner.invoke(app, ["status", "--json", "--config", str(keeper_env.config)])
    assert out.exit_code == 0, out.output
    st = json.loads(out.stdout)
    assert [a["symbol"] for a in st["vaults"][0]["assets"]] == ["WETH", "WBTC", "LINK", "USDC"]
    assert st["recent"][0]["decision"] == "hold"
    assert st["pending"] == []


def test_bad_config_is_one_line_exit_2(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "networks.yaml"
    cfg.write_text("networks: [unclosed\n")
    out = runner.invoke(app, ["check", "--config", str(cfg)])
    assert out.exit_code == 2
    assert "Traceback" not in out.output
    assert out.output.strip().startswith("error:")


def _point(env, key: str, address: str) -> None:  # type: ignore[no-untyped-def]
    """Edit the test's deployments file: `key` is 'vault' or 'multicall3'."""
    path = env.tmp / "deployments.json"
    data = json.loads(path.read_text())
    if key == "vault":
        data["vaults"]["main"] = address
    else:
        data["contracts"][key] = address
    path.write_text(json.dumps(data))


NO_CODE = "0x" + "12" * 20


def test_a_vault_address_without_code_is_named_not_a_traceback(keeper_env) -> None:  # type: ignore[no-untyped-def]
    _point(keeper_env, "vault", NO_CODE)
    out = runner.invoke(app, ["check", "--json", "--config", str(keeper_env.config)])
    assert out.exit_code == 0 and "Traceback" not in out.output, out.output
    (result,) = json.loads(out.stdout)
    assert result["verdict"] == "hold"
    assert "no vault contract at this address (check the config)" in result["reason"]
    out = runner.invoke(app, ["status", "--config", str(keeper_env.config)])
    assert out.exit_code == 0 and "Traceback" not in out.output, out.output
    assert "no vault contract at this address" in out.output
    assert _sent_count(keeper_env) == 0


def test_a_multicall_address_without_code_is_named_not_a_traceback(keeper_env) -> None:  # type: ignore[no-untyped-def]
    _point(keeper_env, "multicall3", NO_CODE)
    why = f"Multicall3 at {NO_CODE} returned no data: there is no contract at that address"
    out = runner.invoke(app, ["check", "--json", "--config", str(keeper_env.config)])
    assert out.exit_code == 0 and "Traceback" not in out.output, out.output
    (result,) = json.loads(out.stdout)  # a tick that cannot read is skipped, and says why
    assert result["verdict"] == "skipped" and why in result["reason"]
    out = runner.invoke(app, ["status", "--config", str(keeper_env.config)])
    assert out.exit_code == 1 and "Traceback" not in out.output, out.output
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and why in lines[0], out.output
