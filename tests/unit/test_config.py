"""keeper.config: each broken file gives one ConfigError with the exact message; valid ones load."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from eth_utils import to_checksum_address

from keeper.config import load_config
from keeper.errors import ConfigError
from keeper.wiring import load

ROOT = Path(__file__).resolve().parents[2]
A = {k: to_checksum_address("0x" + k * 40) for k in "123456789abcdef"}  # distinct addresses

DEPLOYMENTS: dict[str, Any] = {
    "chain_id": 31337,
    "contracts": {
        "multicall3": A["1"],
        "router": A["2"],
        "quoter": A["3"],
        "factory": A["4"],
        "lending_pool": A["5"],
    },
    "tokens": {
        "USDC": {"address": A["6"], "decimals": 6},
        "WETH": {"address": A["7"], "decimals": 18},
        "WBTC": {"address": A["8"], "decimals": 8},
    },
    "feeds": {"USDC": A["9"], "WETH": A["a"], "WBTC": A["b"]},
    "pools": {"WETH/USDC/500": A["c"]},
    "vaults": {"main": A["d"]},
}

BASE: dict[str, Any] = {
    "networks": {
        "local": {
            "rpc_urls": ["http://127.0.0.1:8545"],
            "chain_id": 31337,
            "deployments": "deployments/local.json",
            "confirmations": 1,
            "block_time_s": 1,
        }
    },
    "vaults": [
        {
            "from_deployments": "main",
            "assets": [
                {"symbol": "WETH", "target_bps": 5000},
                {"symbol": "USDC", "target_bps": 5000},
            ],
            "bands": {"inner_bps": 200, "outer_bps": 500},
            "policy": {"name": "band", "params": {"width_bps": 300}},
        }
    ],
    "gas": {"max_fee_gwei": 100},
    "account": {"keystore": "keys/keeper.json", "passphrase_env": "KEEPER_PASSPHRASE"},
}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deployments").mkdir()
    (tmp_path / "deployments" / "local.json").write_text(json.dumps(DEPLOYMENTS))
    return tmp_path


def write(folder: Path, data: dict[str, Any] | str) -> str:
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    (folder / "networks.yaml").write_text(text)
    return "networks.yaml"


def edited(**changes: Any) -> dict[str, Any]:
    """BASE with dotted-path edits: edited(**{"gas.bump_percent": 10}); None deletes."""
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]
        node: Any = data
        for p in parents:
            node = node[p]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return data


def error_of(path: str, network: str | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(path, network)
    assert str(info.value) == info.value.message  # one line per problem, no context suffix
    return info.value.message


# ---------------------------------------------------------------- broken files: exact messages


BROKEN = [
    (
        "bands_inverted",
        {"vaults.0.bands": {"inner_bps": 600, "outer_bps": 500}},
        "networks.yaml: vaults[0].bands.inner_bps (600) must be < outer_bps (500)",
    ),
    (
        "bump_below_12_5",
        {"gas.bump_percent": 10},
        "networks.yaml: gas.bump_percent (10) must be >= 12.5",
    ),
    (
        "weights_not_10000",
        {"vaults.0.assets.1.target_bps": 4000},
        "networks.yaml: vaults[0].assets target_bps must sum to 10000, got 9000",
    ),
    (
        "passphrase_literal",
        {"account.passphrase": "hunter2"},
        "networks.yaml: account.passphrase must not be in the file: set account.passphrase_env "
        "(an environment variable name) or account.passphrase_file (a file path)",
    ),
    (
        "unknown_key",
        {"gas.bumps": 3},
        "networks.yaml: gas.bumps is not a known key (check the spelling)",
    ),
    (
        "chain_id_not_int",
        {"networks.local.chain_id": "abc"},
        "networks.yaml: networks.local.chain_id ('abc') must be an integer",
    ),
    ("gas_missing", {"gas": None}, "networks.yaml: gas is required"),
    (
        "rpc_without_scheme",
        {"networks.local.rpc_urls": ["127.0.0.1:8545"]},
        "networks.yaml: networks.local.rpc_urls[0] ('127.0.0.1:8545') must start with "
        "http(s):// or ws(s)://",
    ),
    (
        "rpc_list_empty",
        {"networks.local.rpc_urls": []},
        "networks.yaml: networks.local.rpc_urls must not be empty",
    ),
    (
        "emergency_below_cap",
        {"gas.emergency_max_fee_gwei": 50},
        "networks.yaml: gas.emergency_max_fee_gwei (50.0) must be >= max_fee_gwei (100.0)",
    ),
    (
        "bad_vault_address",
        {"vaults.0.from_deployments": None, "vaults.0.address": "0x123"},
        "networks.yaml: vaults[0].address ('0x123') is not a 0x address",
    ),
    (
        "address_and_deployments",
        {"vaults.0.address": A["e"]},
        "networks.yaml: vaults[0].address set exactly one of address or from_deployments",
    ),
    (
        "schedule_both",
        {"schedule": {"interval_s": 10, "cron": "* * * * *"}},
        "networks.yaml: schedule.interval_s set exactly one of interval_s or cron",
    ),
    (
        "cron_fields",
        {"schedule": {"cron": "* * *"}},
        "networks.yaml: schedule.cron ('* * *') is not a valid cron expression: Wrong number "
        "of fields; got 3, expected 5",
    ),
    (
        "two_keystores",
        {"account.ape_alias": "keeper"},
        "networks.yaml: account.keystore set exactly one of keystore or ape_alias",
    ),
    (
        "cron_value",
        {"schedule": {"cron": "61 * * * *"}},
        "networks.yaml: schedule.cron ('61 * * * *') is not a valid cron expression: Error "
        "validating expression '61': the last value (61) is higher than the maximum value (59)",
    ),
    (
        "duplicate_vault",
        {"vaults": [BASE["vaults"][0], BASE["vaults"][0]]},
        "networks.yaml: vaults name 'main' is used twice: give each vault a unique name",
    ),
    (
        "unknown_policy",
        {"vaults.0.policy.name": "bogus"},
        "networks.yaml: vaults[0].policy unknown policy 'bogus'; choose one of ['band', "
        "'calendar', 'preventative', 'threshold']",
    ),
    (
        "log_format",
        {"log_format": "xml"},
        "networks.yaml: log_format ('xml') must be one of 'text' or 'json'",
    ),
    (
        "negative_confirmations",
        {"networks.local.confirmations": 0},
        "networks.yaml: networks.local.confirmations (0) must be >= 1",
    ),
    (
        "unknown_vault_in_deployments",
        {"vaults.0.from_deployments": "other"},
        "networks.yaml: vaults[0].from_deployments ('other') is not in deployments/local.json "
        "vaults (main)",
    ),
    (
        "asset_without_feed",
        {"vaults.0.assets.1.symbol": "LINK"},
        "networks.yaml: vaults[0].assets[1].symbol ('LINK') has no feed in contracts.feeds "
        "(known: USDC, WBTC, WETH)",
    ),
    (
        "pool_cost_without_fee",
        {"networks.local.pool_costs": {"WETH": {"fee_ppm": 0, "depth_usd": 1e8}}},
        "networks.yaml: networks.local.pool_costs.WETH.fee_ppm (0) must be > 0",
    ),
    (
        "store_of_unknown_kind",
        {"store": "mysql://keeper@db/keeper"},
        "networks.yaml: store ('mysql://...') must be postgresql://user@host:port/database or "
        "a SQLite file path",
    ),
    (
        "negative_min_tip",
        {"gas.min_tip_gwei": -1},
        "networks.yaml: gas.min_tip_gwei (-1) must be >= 0.0",
    ),
    (
        "unknown_network_default",
        {"network": "mainnet"},
        "networks.yaml: network ('mainnet') is not defined under networks (local)",
    ),
]


@pytest.mark.parametrize(
    ("changes", "message"), [(c, m) for _, c, m in BROKEN], ids=[n for n, _, _ in BROKEN]
)
def test_broken_config_names_file_key_and_problem(
    folder: Path, changes: dict[str, Any], message: str
) -> None:
    assert error_of(write(folder, edited(**changes))) == message


def test_missing_file_names_the_fix(folder: Path) -> None:
    assert error_of("nope.yaml") == (
        "nope.yaml not found: create it (copy networks.yaml from the repository) "
        "or pass --config PATH"
    )


def test_bad_yaml_names_line_and_column(folder: Path) -> None:
    path = write(folder, "networks:\n  local: [1, 2\ngas: {}\n")
    assert error_of(path) == (
        "networks.yaml: invalid YAML at line 3, column 4: expected ',' or ']', but got "
        "':': fix the syntax"
    )


def test_top_level_must_be_a_mapping(folder: Path) -> None:
    assert error_of(write(folder, "- 1\n- 2\n")) == (
        "networks.yaml: the top level must be a mapping with networks, gas, vaults"
    )


def test_unreadable_file_is_one_clear_error(folder: Path) -> None:
    (folder / "dir.yaml").mkdir()
    assert re.fullmatch(
        r"dir\.yaml cannot be read \(IsADirectoryError: .*\): check the path "
        r"and its permissions",
        error_of("dir.yaml"),
    )


def test_missing_deployments_file_says_run_the_deploy_step(folder: Path) -> None:
    (folder / "deployments" / "local.json").unlink()
    with pytest.raises(ConfigError) as info:
        load_config(write(folder, BASE))
    assert str(info.value) == (
        "deployments/local.json not found: run the deploy step (make demo or ape run deploy_local)"
    )


def test_deployments_for_another_chain_is_rejected(folder: Path) -> None:
    (folder / "deployments" / "local.json").write_text(json.dumps({**DEPLOYMENTS, "chain_id": 1}))
    assert error_of(write(folder, BASE)) == (
        "deployments/local.json: chain_id (1) does not match networks.local.chain_id (31337): "
        "run the deploy step (make demo or ape run deploy_local) for this network"
    )


def test_bad_address_in_deployments_names_that_file(folder: Path) -> None:
    bad = {**DEPLOYMENTS, "vaults": {"main": "0xnope"}}
    (folder / "deployments" / "local.json").write_text(json.dumps(bad))
    assert error_of(write(folder, BASE)) == (
        "deployments/local.json: vaults.main ('0xnope') is not a 0x address"
    )


def test_missing_env_var_names_key_and_var(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEPER_TEST_RPC", raising=False)
    path = write(folder, edited(**{"networks.local.rpc_urls": ["${KEEPER_TEST_RPC}"]}))
    assert error_of(path) == (
        "networks.yaml: networks.local.rpc_urls[0] uses ${KEEPER_TEST_RPC}, which is not set in "
        "the environment: export KEEPER_TEST_RPC=... or edit the file"
    )


def test_several_problems_are_reported_in_one_error(folder: Path) -> None:
    path = write(folder, edited(**{"gas.bump_percent": 1, "gas.replace_after_blocks": 0}))
    assert error_of(path).splitlines() == [
        "networks.yaml: gas.bump_percent (1) must be >= 12.5",
        "networks.yaml: gas.replace_after_blocks (0) must be >= 1",
    ]


# ---------------------------------------------------------------- valid files


def test_env_substitution_and_defaults(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEPER_TEST_RPC", "http://10.0.0.1:8545")
    monkeypatch.delenv("KEEPER_TEST_BACKUP", raising=False)
    urls = ["${KEEPER_TEST_RPC}", "${KEEPER_TEST_BACKUP:-http://127.0.0.1:9545}"]
    cfg = load_config(write(folder, edited(**{"networks.local.rpc_urls": urls})))
    assert cfg.network.rpc_urls == ["http://10.0.0.1:8545", "http://127.0.0.1:9545"]


def test_valid_config_resolves_deployments_paths_and_units(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(folder, edited(**{"gas.max_fee_gwei": 1.5, "gas.per_rebalance_budget_gwei": 2}))
    monkeypatch.chdir("/")
    cfg = load_config(folder / path)
    assert cfg.network.name == "local" and cfg.network.chain_id == 31337
    assert cfg.network.deployments == folder / "deployments" / "local.json"
    assert cfg.contracts.multicall3 == A["1"] and cfg.contracts.routers == (A["2"],)
    assert cfg.contracts.tokens["USDC"].decimals == 6
    assert cfg.contracts.pools == {"WETH/USDC/500": A["c"]}
    (vault,) = cfg.vaults
    assert vault.name == "main" and vault.address == A["d"]
    assert cfg.gas.max_fee_wei == 1_500_000_000 and cfg.gas.budget_wei == 2_000_000_000
    assert cfg.gas.bump_percent == 12.5 and cfg.gas.replace_after_blocks == 3
    assert cfg.account is not None and cfg.account.keystore == folder / "keys" / "keeper.json"
    assert cfg.ledger.path == folder / "state" / "keeper.sqlite"
    assert cfg.metrics_port == 9108 and cfg.log_format == "text"


def test_explicit_contracts_override_deployments(folder: Path) -> None:
    data = edited(
        **{"networks.local.contracts": {"routers": [A["e"], A["f"]], "feeds": {"WETH": A["f"]}}}
    )
    cfg = load_config(write(folder, data))
    assert cfg.contracts.routers == (A["e"], A["f"])
    assert cfg.contracts.feeds["WETH"] == A["f"] and cfg.contracts.feeds["USDC"] == A["9"]


def test_repo_networks_yaml_loads_with_its_local_and_mainnet_fork_networks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (ROOT / "networks.yaml").read_text()
    (tmp_path / "deployments").mkdir()
    dep = {**DEPLOYMENTS, "feeds": {**DEPLOYMENTS["feeds"], "LINK": A["e"]}}
    (tmp_path / "deployments" / "local.json").write_text(json.dumps(dep))
    (tmp_path / "networks.yaml").write_text(text)
    cfg = load_config(tmp_path / "networks.yaml")
    assert cfg.network.chain_id == 31337 and cfg.network.block_time_s == 1
    assert cfg.vaults[0].address == A["d"]
    # the mainnet-fork network, as committed (tests/e2e/test_mainnet_replica.py runs it)
    (tmp_path / "deployments" / "mainnet-fork.json").write_text(
        json.dumps({"chain_id": 1, "vaults": {"main": A["f"]}})
    )
    monkeypatch.delenv("MAINNET_FORK_RPC", raising=False)
    cfg = load_config(tmp_path / "networks.yaml", "mainnet-fork")
    assert cfg.network.chain_id == 1 and cfg.network.rpc_urls == ["http://127.0.0.1:8546"]
    # simulations fork the fork (the vault lives there), and nothing goes to a real relay
    assert cfg.network.fork_source is None and cfg.network.private_rpc_url is None
    assert cfg.contracts.multicall3 == "0xcA11bde05977b3631167028862bE2a173976CA11"
    assert cfg.contracts.routers == ("0xE592427A0AEce92De3Edee1F18E0157C05861564",)
    assert cfg.contracts.feeds["WBTC"] == "0xF4030086522a5bEEa4988F8cA5B36dbC97BeE88c"
    assert cfg.network_names == ("local", "mainnet-fork")
    monkeypatch.setenv("MAINNET_FORK_RPC", "http://127.0.0.1:9999")
    assert load_config(tmp_path / "networks.yaml", "mainnet-fork").network.rpc_urls == [
        "http://127.0.0.1:9999"
    ]


def test_other_networks_may_use_unset_variables(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEEPER_TEST_UNSET", raising=False)
    data = edited(**{"networks.remote": {"rpc_urls": ["${KEEPER_TEST_UNSET}"], "chain_id": 1}})
    assert load_config(write(folder, data), "local").network.name == "local"
    assert "KEEPER_TEST_UNSET" in error_of("networks.yaml", "remote")


def test_pool_costs_override_the_mainnet_cost_model_per_network(folder: Path) -> None:
    from keeper.costs import MAINNET_POOL_COSTS, UNKNOWN_POOL_COST, PoolCost, cost_model_for
    from keeper.units import ONE_E18

    def model_of(cfg: Any) -> tuple[PoolCost | None, ...]:
        over = {s: pc.as_pool_cost() for s, pc in cfg.network.pool_costs.items()}
        return cost_model_for(["WETH", "WBTC", "UNI", "USDC"], over).pools

    plain = load_config(write(folder, edited()))
    assert model_of(plain) == (MAINNET_POOL_COSTS["WETH"], MAINNET_POOL_COSTS["WBTC"],
                               UNKNOWN_POOL_COST, None)
    thin = {"WETH": {"fee_ppm": 3000, "depth_usd": 5e6}}
    cfg = load_config(write(folder, edited(**{"networks.local.pool_costs": thin})))
    assert model_of(cfg)[0] == PoolCost(fee_ppm=3000, depth_e18=5_000_000 * ONE_E18)
    assert model_of(cfg)[1] == MAINNET_POOL_COSTS["WBTC"]


def test_store_key_switches_backend_and_min_tip_reaches_the_sender(folder: Path) -> None:
    from keeper.send.types import SenderSettings

    cfg = load_config(write(folder, edited()))
    assert cfg.store_location == str(folder / "state" / "keeper.sqlite")  # the SQLite default
    assert cfg.lease_s == 45.0  # 0.75 x the 60 s schedule: a dead keeper's lease expires first
    url = "postgresql://keeper:${KEEPER_TEST_PG_PASS:-pw}@db.internal:5432/keeper"
    data = edited(**{"store": url, "gas.min_tip_gwei": 0.5, "lease_s": 12})
    cfg = load_config(write(folder, data))
    assert cfg.store_location == "postgresql://keeper:pw@db.internal:5432/keeper"
    assert cfg.lease_s == 12
    settings = SenderSettings.from_config(cfg)
    assert settings.min_tip_wei == 500_000_000 and settings.epoch_lock_ttl_s == 12
    cfg = load_config(write(folder, edited(**{"store": "state/shared.sqlite"})))
    assert cfg.store_location == str(folder / "state" / "shared.sqlite")
