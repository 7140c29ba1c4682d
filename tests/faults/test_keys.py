"""F. Keys and roles (fault tests 26 and 30) plus key-safety and private-relay checks: the keeper
role revoked on chain, a log scan after a full demo run, a wrong/missing passphrase, a node on the
wrong chain, and the private relay with its public fallback."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from eth_account import Account
from rich.console import Console
from typer.testing import CliRunner

import keeper.demo as demo_mod
import keeper.replay.run as replay_run_mod
from keeper.app import Mode
from keeper.chain.anvil import free_port
from keeper.chain.contracts import encode_call
from keeper.cli import app
from keeper.demo_run import demo_settings, run_demo
from keeper.runtime import Runtime
from tests.e2e.conftest import PASSPHRASE, local_config
from tests.faults.conftest import (
    ChainCtl,
    Kit,
    edit_config,
    epoch,
    network_line,
    push_out_of_band,
    set_rpc_urls,
    ticks,
    txs,
)
from tests.faults.proxy import RpcProxy

pytestmark = pytest.mark.chain
runner = CliRunner()


def test_keeper_role_revoked_alerts_once_and_does_not_retry(
    kit: Kit, chain: ChainCtl, caplog: pytest.LogCaptureFixture
) -> None:
    env = kit.env
    admin = env.w3.eth.accounts[0]
    role = env.w3.eth.call(
        {"to": env.vault, "data": encode_call("RebalancingVault", "KEEPER_ROLE")}
    )
    revoke = encode_call("RebalancingVault", "revokeRole", (role, env.keeper))
    chain.rpc("eth_sendTransaction", {"from": admin, "to": env.vault, "data": "0x" + revoke.hex()})
    push_out_of_band(env)
    e0 = epoch(env)
    keeper = kit.keeper()
    rt = Runtime(keeper.cfg, keeper, Mode.SEND, runtime_id=f"faults-{os.getpid()}-role")
    try:
        for _ in range(4):  # the scheduler keeps firing; a halted vault does nothing
            rt.run_once("main")
    finally:
        rt.stop()
    assert "keeper role revoked" in rt.halted["main"]
    assert "AccessControlUnauthorizedAccount" in rt.halted["main"]
    assert [t[0] for t in ticks(env)] == ["halted"]
    alerts = [r for r in caplog.records if r.levelname == "ERROR" and "halted" in r.getMessage()]
    assert len(alerts) == 1
    assert txs(env) == [] and chain.sent_count(env.keeper) == 0 and epoch(env) == e0


def test_wrong_or_missing_passphrase_refuses_to_start(kit: Kit, chain: ChainCtl) -> None:
    env = kit.env
    push_out_of_band(env)
    (env.tmp / "passphrase.txt").write_text("not the passphrase\n")
    out = runner.invoke(app, ["rebalance", "--yes", "--config", str(env.config)])
    assert out.exit_code == 2 and "wrong passphrase" in out.stderr
    assert "not the passphrase" not in out.output
    (env.tmp / "passphrase.txt").unlink()
    out = runner.invoke(app, ["rebalance", "--yes", "--config", str(env.config)])
    assert out.exit_code == 2 and "passphrase.txt cannot be read" in " ".join(out.stderr.split())
    assert chain.sent_count(env.keeper) == 0
    if env.ledger.exists():  # no partial state: nothing was recorded or sent
        assert txs(env) == [] and ticks(env) == []


def test_node_on_the_wrong_chain_is_refused_before_signing(
    kit: Kit, chain: ChainCtl, anvil_url: str
) -> None:
    from keeper.chain.anvil import Anvil

    with Anvil(chain_id=5) as other:
        set_rpc_urls(kit.env, [other.url, anvil_url])
        keeper = kit.keeper()  # the chain-5 endpoint is dropped at start-up
        rpc_urls = [e.url for e in keeper.deps.w3.provider.endpoints]  # type: ignore[attr-defined]
        assert rpc_urls == [anvil_url]
        set_rpc_urls(kit.env, [other.url])
        out = runner.invoke(app, ["rebalance", "--yes", "--config", str(kit.env.config)])
    assert out.exit_code != 0 and "chain id 5, expected 31337" in out.stderr
    assert chain.sent_count(kit.env.keeper) == 0


def test_private_relay_gets_the_rebalance_then_public_fallback_after_n_blocks(
    kit: Kit, chain: ChainCtl, proxies: Callable[[], RpcProxy]
) -> None:
    relay = proxies()
    relay.mode = "blackhole_send"  # accepts, never includes (a relay that lost the bundle)
    network_line(kit.env, f'private_rpc_url: "{relay.url}"')
    network_line(kit.env, "private_fallback_blocks: 2")
    push_out_of_band(kit.env)
    keeper = kit.keeper(waiter=chain.waiter(), replace_after_blocks=10)
    chain.automine(False)
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "sent", r.reason
    assert relay.seen["eth_sendRawTransaction"] == 1
    ((tx_id, status, *_),) = txs(kit.env)
    kinds = [k for k, _ in keeper.deps.ledger.events(tx_id)]
    assert status == "confirmed" and kinds.index("public_fallback") < kinds.index("mined")
    assert chain.sent_count(kit.env.keeper) == 1


# ------------------------------------------------------------------ 30: the log scan


RPC_USER, RPC_SECRET, RPC_KEY = "keeperuser", "s3cret-rpc-pass", "APIKEYdeadbeef0123456789"


def _texts_of(db: Path) -> str:
    out = []
    with sqlite3.connect(db) as c:
        for (table,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in c.execute(f"SELECT * FROM {table}"):
                out.append(" ".join(str(v) for v in row if not isinstance(v, bytes)))
    return "\n".join(out)


def test_log_scan_after_a_demo_run_finds_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    port = free_port()
    proxy = RpcProxy(f"http://127.0.0.1:{port}")  # carries the credentialed URL to the demo's anvil
    host = proxy.url.removeprefix("http://")
    rpc = f"http://{RPC_USER}:{RPC_SECRET}@{host}/v2/{RPC_KEY}"
    cfg = tmp_path / "networks.yaml"
    cfg.write_text(local_config(rpc, tmp_path, state))
    monkeypatch.setattr(demo_mod, "project_root", lambda: tmp_path)  # deployments go to tmp
    original = replay_run_mod.setup_logging
    monkeypatch.setattr(
        replay_run_mod,
        "setup_logging",  # everything the keeper logs, at DEBUG
        lambda fmt, level=logging.INFO: original(fmt, level=logging.DEBUG),
    )
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    console_out = StringIO()
    catch = Keep()
    logging.getLogger().addHandler(catch)
    try:
        report = run_demo(
            demo_settings(cfg, hours=6, port=port, state_dir=state),
            Console(file=console_out, width=200),
        )
    finally:
        logging.getLogger().removeHandler(catch)
        proxy.close()
        logging.getLogger("keeper").handlers[:] = []
        logging.getLogger("keeper").propagate = True
    captured = capfd.readouterr()
    assert len(report.rows) == 6 and proxy.seen["eth_call"] > 0  # the keeper ran via the URL
    keystore = json.loads((state / "keeper-keystore.json").read_text())
    passphrase = (state / "keeper-passphrase.txt").read_text().strip()
    key = Account.decrypt(keystore, passphrase).hex().removeprefix("0x")
    haystack = "\n".join(
        [
            captured.out,
            captured.err,
            console_out.getvalue(),
            *records,
            _texts_of(state / "keeper.sqlite"),
        ]
    )
    assert len(haystack) > 200
    for secret in (key, passphrase, PASSPHRASE, RPC_SECRET, RPC_KEY, f"{RPC_USER}:"):
        assert secret.lower() not in haystack.lower(), "a secret leaked into logs or the ledger"


def test_redaction_covers_config_errors_naming_the_rpc(kit: Kit) -> None:
    edit_config(kit.env.config, "chain_id: 31337", "chain_id: 31337")  # keep the file
    set_rpc_urls(kit.env, [f"http://{RPC_USER}:{RPC_SECRET}@127.0.0.1:1/v2/{RPC_KEY}"])
    out = runner.invoke(app, ["check", "--config", str(kit.env.config)])
    assert out.exit_code != 0 and "127.0.0.1" in out.stderr
    for secret in (RPC_SECRET, RPC_KEY, RPC_USER):
        assert secret not in out.output
