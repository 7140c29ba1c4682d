"""Build a Keeper from a config: web3, ledger, history, policies, account and sender. No
decisions here, and nothing is sent or recovered: `Keeper.recover()` is a step of its own."""

from __future__ import annotations

import json
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3

from keeper.app import Keeper, KeeperDeps
from keeper.chain.chainid import without_chain_id_round_trips
from keeper.chain.rpc import RpcSettings, connect_urls
from keeper.config import AccountConfig, KeeperConfig, load_config
from keeper.config_file import config_error
from keeper.errors import ConfigError, RpcUnavailable, WrongChain
from keeper.forecast.live import Forecaster
from keeper.history import PriceHistory
from keeper.ledger import Ledger
from keeper.metrics import Metrics
from keeper.policy import Policy, make_policy
from keeper.send.keys import load_account
from keeper.send.sender import Sender, SenderSettings, private_endpoint
from keeper.store import parse_store


def load(path: str | Path, network: str | None = None) -> KeeperConfig:
    """`load_config` plus every vault's policy built once, so a bad policy name or parameter
    fails at load time, naming its key, rather than at the first tick."""
    cfg = load_config(path, network)
    policies_for(cfg)
    return cfg


def policies_for(cfg: KeeperConfig) -> dict[str, Policy]:
    """Each vault's policy by vault name; a bad one is a ConfigError naming file and key."""
    out: dict[str, Policy] = {}
    for i, v in enumerate(cfg.vaults):
        try:
            out[v.name] = make_policy(v.policy.name, v.policy.params)
        except ConfigError as err:
            raise config_error(str(cfg.source.name), f"vaults[{i}].policy", err.message) from err
    return out


def connect(cfg: KeeperConfig, rpc: RpcSettings | None = None) -> Web3:
    """A Web3 over every RPC URL of the network, with failover and retry (keeper.chain.rpc);
    URLs that answer with another chain id are dropped. web3.py's validation asks the chain id
    only for requests that declare one (keeper.chain.chainid)."""
    name = cfg.network.name
    try:
        w3 = connect_urls([str(u) for u in cfg.network.rpc_urls], cfg.network.chain_id, rpc)
        return without_chain_id_round_trips(w3)
    except WrongChain as err:
        raise WrongChain(
            f"network '{name}' expects chain id {cfg.network.chain_id}: {err.message}. Fix: "
            f"point networks.{name}.rpc_urls at a node of that chain, or correct "
            f"networks.{name}.chain_id"
        ) from err
    except RpcUnavailable as err:
        raise RpcUnavailable(
            f"no RPC of network '{name}' is usable: {err.message}. "
            "Fix: start the node (for local: `make demo` or `anvil`)"
        ) from err


def keeper_address(cfg: KeeperConfig) -> str:
    """The keeper's address, read from the keystore without decrypting it."""
    if cfg.account is None:
        raise ConfigError(
            f"{cfg.source.name}: account is not set: the keeper needs an address", key="account"
        )
    path = cfg.account.keystore_path
    try:
        address = json.loads(Path(path).read_text())["address"]
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(
            f"account.keystore: {path} has no readable address ({type(err).__name__}). "
            "Fix: run `make demo` once (it writes the local keystore) or fix the path",
            key="account.keystore",
        ) from err
    return Web3.to_checksum_address(address if str(address).startswith("0x") else "0x" + address)


def require_account(cfg: KeeperConfig) -> AccountConfig:
    """The signing account's settings; sending without them is a config error."""
    if cfg.account is None:
        raise ConfigError(
            f"{cfg.source.name}: account is not set, and sending needs a signing key. Fix: add "
            "account.keystore and account.passphrase_env (or passphrase_file) to the config",
            key="account",
        )
    return cfg.account


def unlock(cfg: KeeperConfig) -> LocalAccount:
    account = require_account(cfg)
    return load_account(
        account.keystore_path,
        passphrase_env=account.passphrase_env,
        passphrase_file=account.passphrase_file,
    )


def open_stores(cfg: KeeperConfig) -> tuple[Ledger, PriceHistory]:
    """The ledger and the price history: one PostgreSQL database, or a SQLite ledger file
    with its history file beside it."""
    store = parse_store(cfg.store_location)
    ledger = Ledger(store)
    if store.path is None:
        return ledger, PriceHistory(store)
    return ledger, PriceHistory(store.path.with_name(store.path.stem + "-history.sqlite"))


def build_keeper(
    cfg: KeeperConfig,
    *,
    can_send: bool,
    metrics: Metrics | None = None,
    fork_rpc: str | None = None,
    rpc: RpcSettings | None = None,
) -> Keeper:
    if can_send:
        require_account(cfg)  # a config problem is named before any node is asked
    w3 = connect(cfg, rpc)
    ledger, history = open_stores(cfg)
    if metrics is not None:
        metrics.names.update({str(v.address).lower(): v.name for v in cfg.vaults})
    sender = None
    if can_send:
        account = unlock(cfg)
        # Rebalances go to the private relay first (when configured) and fall back to the public
        # mempool after private_fallback_blocks: the vault's oracle floor bounds any sandwich.
        sender = Sender(
            w3,
            account,
            ledger,
            SenderSettings.from_config(cfg),
            broadcast_w3=private_endpoint(cfg),
            metrics=metrics,
        )
        address: str = account.address
    else:
        address = keeper_address(cfg)
    deps = KeeperDeps(
        w3=w3,
        ledger=ledger,
        history=history,
        keeper_address=address,
        policies=policies_for(cfg),
        forecaster=Forecaster(model=cfg.forecast.vol_model, refit_h=cfg.forecast.refit_h),
        sender=sender,
        metrics=metrics,
        fork_rpc=fork_rpc,
    )
    return Keeper(cfg, deps)
