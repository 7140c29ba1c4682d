"""networks.yaml -> KeeperConfig: pydantic v2 models, ${VAR} substitution, deployments merge.

Every problem becomes one ConfigError naming the file, the key path and the fix, e.g.
`networks.yaml: vaults[0].bands.inner_bps (600) must be < outer_bps (500)`.
Gas prices are gwei in the file only; the loaded config exposes wei (`GasConfig.max_fee_wei`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from keeper.config_file import config_error, read_yaml, substitute, validation_error
from keeper.costs import PoolCost
from keeper.errors import ConfigError
from keeper.models import DEFAULT_VOL_MODEL, VolModel
from keeper.units import BPS, Wei, gwei

DEPLOY_HINT = "run the deploy step (make demo or ape run deploy_local)"
MAX_GAS = 3_000_000  # no rebalance transaction may plan more gas than this
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_FORBIDDEN_SECRETS = ("passphrase", "password", "private_key")
_SECRET_HINT = (
    "must not be in the file: set account.passphrase_env (an environment variable name) or "
    "account.passphrase_file (a file path)"
)


def _fail(field: str, problem: str) -> PydanticCustomError:
    """An error reported at `<model path>.<field> <problem>`."""
    return PydanticCustomError("keeper_field", "{problem}", {"field": field, "problem": problem})


def _address(value: str) -> str:
    if not _ADDRESS.match(value):
        raise PydanticCustomError("keeper_address", "({v}) is not a 0x address", {"v": repr(value)})
    from eth_utils.address import to_checksum_address

    return str(to_checksum_address(value))


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://", "ws://", "wss://")):
        raise PydanticCustomError(
            "keeper_url", "({v}) must start with http(s):// or ws(s)://", {"v": repr(value)}
        )
    return value


Address = Annotated[str, AfterValidator(_address)]
Url = Annotated[str, AfterValidator(_url)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- networks


class NetworkConfig(_Model):
    name: str = ""
    rpc_urls: list[Url] = Field(min_length=1)
    chain_id: int = Field(gt=0)
    fork_source: str | None = None
    confirmations: int = Field(default=1, ge=1)
    block_time_s: float = Field(default=12.0, gt=0)
    private_rpc_url: str | None = None
    private_fallback_blocks: int = Field(default=25, ge=1)
    deployments: Path | None = None
    contracts: ContractsSpec | None = None
    # the cost model's pool per asset symbol (default: keeper.costs.MAINNET_POOL_COSTS)
    pool_costs: dict[str, PoolCostConfig] = Field(default_factory=dict)


# ---------------------------------------------------------------- contracts


class PoolCostConfig(_Model):
    """Where the cost model prices a trade of one asset against the cash asset."""

    fee_ppm: int = Field(gt=0, lt=1_000_000)  # the route's fee, e.g. 3500 for 0.3% + 0.05%
    depth_usd: float = Field(gt=0)  # effective depth: a trade of q moves the price ~ q / depth
    hops: int = Field(default=1, ge=1, le=3)  # swaps on the route to the cash asset

    def as_pool_cost(self) -> PoolCost:
        return PoolCost(fee_ppm=self.fee_ppm, depth_e18=int(self.depth_usd) * 10**18,
                        hops=self.hops)


class ContractsSpec(_Model):
    """Contract addresses as written in the file; every field may come from deployments."""

    multicall3: Address | None = None
    routers: list[Address] | None = None
    quoter: Address | None = None
    factory: Address | None = None
    lending_pool: Address | None = None
    feeds: dict[str, Address] = Field(default_factory=dict)


class TokenInfo(_Model):
    address: Address
    decimals: int = Field(ge=0, le=36)


class Contracts(_Model):
    """Resolved contract addresses for the selected network (checksummed)."""

    multicall3: str
    routers: tuple[str, ...]
    quoter: str | None = None
    factory: str | None = None
    lending_pool: str | None = None
    feeds: dict[str, str] = Field(default_factory=dict)
    tokens: dict[str, TokenInfo] = Field(default_factory=dict)
    pools: dict[str, str] = Field(default_factory=dict)


# ---------------------------------------------------------------- vaults


class AssetConfig(_Model):
    symbol: str = Field(min_length=1)
    target_bps: int = Field(ge=0, le=BPS)


class BandsConfig(_Model):
    inner_bps: int = Field(gt=0, lt=BPS)
    outer_bps: int = Field(gt=0, lt=BPS)

    @model_validator(mode="after")
    def _ordered(self) -> BandsConfig:
        if self.inner_bps >= self.outer_bps:
            raise _fail("inner_bps", f"({self.inner_bps}) must be < outer_bps ({self.outer_bps})")
        return self


class PolicyConfig(_Model):
    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class CollateralBandConfig(_Model):
    min_ltv_bps: int = Field(ge=0, lt=BPS)
    target_ltv_bps: int = Field(ge=0, lt=BPS)
    max_ltv_bps: int = Field(ge=0, lt=BPS)
    ripcord_ltv_bps: int | None = Field(default=None, ge=0, lt=BPS)

    @model_validator(mode="after")
    def _ordered(self) -> CollateralBandConfig:
        lo, mid, hi = self.min_ltv_bps, self.target_ltv_bps, self.max_ltv_bps
        if not lo <= mid <= hi:
            raise _fail(
                "target_ltv_bps", f"({mid}) must be within [min_ltv_bps ({lo}), max_ltv_bps ({hi})]"
            )
        if self.ripcord_ltv_bps is not None and self.ripcord_ltv_bps < hi:
            raise _fail(
                "ripcord_ltv_bps", f"({self.ripcord_ltv_bps}) must be >= max_ltv_bps ({hi})"
            )
        return self


class ScheduleConfig(_Model):
    interval_s: int | None = Field(default=None, gt=0)
    cron: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ScheduleConfig:
        if (self.interval_s is None) == (self.cron is None):
            raise _fail("interval_s", "set exactly one of interval_s or cron")
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron)
            except ValueError as err:
                raise _fail(
                    "cron", f"({self.cron!r}) is not a valid cron expression: {err}"
                ) from err
        return self


class VaultConfig(_Model):
    name: str = ""
    address: Address | None = None
    from_deployments: str | None = None
    assets: list[AssetConfig] = Field(min_length=1)
    bands: BandsConfig
    policy: PolicyConfig
    collateral: CollateralBandConfig | None = None
    schedule: ScheduleConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_source(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and ("address" in data) == ("from_deployments" in data):
            raise _fail("address", "set exactly one of address or from_deployments")
        return data

    @model_validator(mode="after")
    def _check(self) -> VaultConfig:
        total = sum(a.target_bps for a in self.assets)
        if total != BPS:
            raise _fail("assets", f"target_bps must sum to {BPS}, got {total}")
        symbols = [a.symbol for a in self.assets]
        dup = sorted({s for s in symbols if symbols.count(s) > 1})
        if dup:
            raise _fail("assets", f"symbol {dup[0]!r} is listed twice")
        return self


# ---------------------------------------------------------------- gas, account, rest


class GasConfig(_Model):
    max_fee_gwei: float = Field(gt=0)
    priority_fee_percentile: float = Field(default=50.0, ge=0, le=100)
    per_rebalance_budget_gwei: float | None = Field(default=None, gt=0)
    per_rebalance_budget_wei: int | None = Field(default=None, gt=0)
    bump_percent: float = Field(default=12.5, ge=12.5, le=100)
    replace_after_blocks: int = Field(default=3, ge=1)
    emergency_max_fee_gwei: float | None = Field(default=None, gt=0)
    # the least tip any attempt pays: on an idle chain the fee history's tips are 0, and a
    # replacement must raise the tip too (0 x 1.125 is still 0)
    min_tip_gwei: float = Field(default=0.01, ge=0)

    @model_validator(mode="after")
    def _check(self) -> GasConfig:
        if self.per_rebalance_budget_gwei is not None and self.per_rebalance_budget_wei is not None:
            raise _fail(
                "per_rebalance_budget_wei",
                "set only one of per_rebalance_budget_gwei or per_rebalance_budget_wei",
            )
        em = self.emergency_max_fee_gwei
        if em is not None and em < self.max_fee_gwei:
            raise _fail(
                "emergency_max_fee_gwei", f"({em}) must be >= max_fee_gwei ({self.max_fee_gwei})"
            )
        return self

    @property
    def max_fee_wei(self) -> Wei:
        return gwei(self.max_fee_gwei)

    @property
    def emergency_max_fee_wei(self) -> Wei:
        return gwei(self.emergency_max_fee_gwei or self.max_fee_gwei)

    @property
    def min_tip_wei(self) -> Wei:
        return gwei(self.min_tip_gwei)

    @property
    def budget_wei(self) -> Wei | None:
        gw, wei = self.per_rebalance_budget_gwei, self.per_rebalance_budget_wei
        return Wei(wei) if wei is not None else (None if gw is None else gwei(gw))

    def budget_units(self, gas_price_wei: int | None = None) -> int:
        """Gas units one rebalance may use: the wei budget at this price, at most MAX_GAS."""
        if not self.budget_wei:
            return MAX_GAS
        price = max(gas_price_wei or int(self.max_fee_wei), 1)
        return min(int(self.budget_wei // price), MAX_GAS)


class ForecastConfig(_Model):
    """The volatility model the forecast stage fits (the backtester's default is the same)."""

    vol_model: VolModel = DEFAULT_VOL_MODEL
    refit_h: int = Field(default=168, ge=1)  # refit the model after this many new hours


class AccountConfig(_Model):
    keystore: Path | None = None
    ape_alias: str | None = None
    passphrase_env: str | None = None
    passphrase_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        for key in _FORBIDDEN_SECRETS:
            if isinstance(data, Mapping) and key in data:
                raise _fail(key, _SECRET_HINT)
        return data

    @model_validator(mode="after")
    def _check(self) -> AccountConfig:
        if (self.keystore is None) == (self.ape_alias is None):
            raise _fail("keystore", "set exactly one of keystore or ape_alias")
        if (self.passphrase_env is None) == (self.passphrase_file is None):
            raise _fail("passphrase_env", "set exactly one of passphrase_env or passphrase_file")
        return self

    @property
    def keystore_path(self) -> Path:
        """The keystore file; an ape alias lives at $APE_DATA_FOLDER (or ~/.ape)/accounts/."""
        if self.keystore is not None:
            return self.keystore
        root = Path(os.environ.get("APE_DATA_FOLDER", Path.home() / ".ape"))
        return root / "accounts" / f"{self.ape_alias}.json"


class LedgerConfig(_Model):
    path: Path = Path("state/keeper.sqlite")


def _store(value: str) -> str:
    if "://" in value and not value.startswith(
        ("postgresql://", "postgres://", "postgresql+psycopg://", "sqlite:///")
    ):
        raise PydanticCustomError(
            "keeper_store",
            "({v}) must be postgresql://user@host:port/database or a SQLite file path",
            {"v": repr(value.split("://")[0] + "://...")},
        )
    return value


StoreValue = Annotated[str, AfterValidator(_store)]


class FileModel(_Model):
    """The file as written, after ${VAR} substitution and network selection."""

    network: str | None = None
    networks: dict[str, NetworkConfig] = Field(min_length=1)
    contracts: ContractsSpec | None = None
    vaults: list[VaultConfig] = Field(default_factory=list)
    gas: GasConfig
    account: AccountConfig | None = None
    schedule: ScheduleConfig | None = None
    ledger: LedgerConfig = LedgerConfig()
    forecast: ForecastConfig = ForecastConfig()
    # where the ledger, leases and history live: a SQLite file (default: ledger.path) or
    # postgresql://... shared by keepers on several machines
    store: StoreValue | None = None
    lease_s: float | None = Field(default=None, gt=0, le=3600)
    metrics_port: int = Field(default=9108, ge=0, le=65535)
    log_format: Literal["text", "json"] = "text"

    @model_validator(mode="after")
    def _unique_names(self) -> FileModel:
        names = [v.name or v.from_deployments or v.address for v in self.vaults]
        dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if dup is not None:
            raise _fail("vaults", f"name {dup!r} is used twice: give each vault a unique name")
        return self


class KeeperConfig(_Model):
    """The loaded, resolved config for one network. Paths are absolute."""

    source: Path
    network: NetworkConfig
    network_names: tuple[str, ...]
    contracts: Contracts
    vaults: tuple[VaultConfig, ...]
    gas: GasConfig
    account: AccountConfig | None
    schedule: ScheduleConfig | None
    ledger: LedgerConfig
    forecast: ForecastConfig = ForecastConfig()
    metrics_port: int
    log_format: Literal["text", "json"]
    store: str = ""  # a postgresql:// URL or an absolute SQLite path
    lease_s: float = 30.0  # an epoch lease lasts this long unless renewed

    def schedule_for(self, vault: VaultConfig) -> ScheduleConfig | None:
        return vault.schedule or self.schedule

    @property
    def store_location(self) -> str:
        return self.store or str(self.ledger.path)


NetworkConfig.model_rebuild()


class _Deployments(BaseModel):
    """The JSON the local deploy script writes (extra keys are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    chain_id: int
    contracts: dict[str, Address] = Field(default_factory=dict)
    tokens: dict[str, TokenInfo] = Field(default_factory=dict)
    feeds: dict[str, Address] = Field(default_factory=dict)
    pools: dict[str, Address] = Field(default_factory=dict)
    vaults: dict[str, Address] = Field(default_factory=dict)


def _select_network(data: dict[str, Any], file: str, wanted: str | None) -> str:
    networks = data.get("networks")
    if not isinstance(networks, dict) or not networks:
        raise config_error(file, "networks", "is required (a mapping of name -> network)")
    name = wanted or data.get("network") or ("local" if "local" in networks else None)
    if name is None and len(networks) == 1:
        name = next(iter(networks))
    if name is None:
        raise config_error(file, "network", f"is required: choose one of {', '.join(networks)}")
    if name not in networks:
        known = ", ".join(map(str, networks))
        raise config_error(file, "network", f"({name!r}) is not defined under networks ({known})")
    return str(name)


# ---------------------------------------------------------------- resolution


def _resolve(base: Path, p: Path | None) -> Path | None:
    if p is None or p.expanduser().is_absolute():
        return None if p is None else p.expanduser()
    return (base / p).resolve()


def _load_deployments(net: NetworkConfig, written: str, path: Path) -> _Deployments:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"{written} not found: {DEPLOY_HINT}") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(
            f"{written}: unreadable deployments file ({err}): {DEPLOY_HINT} again"
        ) from err
    try:
        dep = _Deployments.model_validate(raw)
    except ValidationError as err:
        raise validation_error(written, err) from err
    if dep.chain_id != net.chain_id:
        raise config_error(
            written,
            "chain_id",
            f"({dep.chain_id}) does not match networks.{net.name}"
            f".chain_id ({net.chain_id}): {DEPLOY_HINT} for this network",
        )
    return dep


def _merge_contracts(
    file: str, net: NetworkConfig, top: ContractsSpec | None, dep: _Deployments | None
) -> Contracts:
    c = dep.contracts if dep else {}
    base: dict[str, Any] = {
        "multicall3": c.get("multicall3"),
        "routers": [c["router"]] if "router" in c else None,
        "quoter": c.get("quoter"),
        "factory": c.get("factory"),
        "lending_pool": c.get("lending_pool"),
        "feeds": dict(dep.feeds) if dep else {},
    }
    for spec in (top, net.contracts):  # explicit addresses win over generated ones
        if spec is not None:
            set_ = spec.model_dump(exclude_none=True, exclude={"feeds"})
            base.update(set_)
            base["feeds"] = {**base["feeds"], **spec.feeds}
    for key in ("multicall3", "routers"):
        if not base[key]:
            raise config_error(
                file,
                f"contracts.{key}",
                f"is required: set it, or set networks.{net.name}.deployments",
            )
    base["routers"] = tuple(base["routers"])
    return Contracts(
        **base, tokens=dict(dep.tokens) if dep else {}, pools=dict(dep.pools) if dep else {}
    )


def _resolve_vault(
    file: str, i: int, v: VaultConfig, dep: _Deployments | None, dep_name: str, contracts: Contracts
) -> VaultConfig:
    where, fd = f"vaults[{i}]", f"vaults[{i}].from_deployments"
    address = v.address
    if v.from_deployments is not None:
        if dep is None:
            raise config_error(
                file, fd, "needs a deployments file: set networks.<name>.deployments"
            )
        if v.from_deployments not in dep.vaults:
            known = ", ".join(dep.vaults) or "none"
            raise config_error(
                file, fd, f"({v.from_deployments!r}) is not in {dep_name} vaults ({known})"
            )
        address = dep.vaults[v.from_deployments]
    if contracts.feeds:
        for j, a in enumerate(v.assets):
            if a.symbol not in contracts.feeds:
                known = ", ".join(sorted(contracts.feeds))
                raise config_error(
                    file,
                    f"{where}.assets[{j}].symbol",
                    f"({a.symbol!r}) has no feed in contracts.feeds (known: {known})",
                )
    name = v.name or v.from_deployments or f"vault{i}"
    return v.model_copy(update={"address": address, "name": name})


def _resolve_paths(
    base: Path, model: FileModel, net: NetworkConfig
) -> tuple[NetworkConfig, AccountConfig | None, LedgerConfig]:
    net = net.model_copy(update={"deployments": _resolve(base, net.deployments)})
    acct = model.account
    if acct is not None:
        paths = {"keystore": acct.keystore, "passphrase_file": acct.passphrase_file}
        acct = acct.model_copy(update={k: _resolve(base, p) for k, p in paths.items()})
    ledger = LedgerConfig(path=_resolve(base, model.ledger.path) or model.ledger.path)
    return net, acct, ledger


def load_config(path: str | Path, network: str | None = None) -> KeeperConfig:
    """Load, substitute, validate and resolve `path` for `network` (default: the file's
    `network:` key, else `local`, else the only network)."""
    shown = str(path)
    src = Path(path).expanduser()
    data = read_yaml(src, shown)
    name = _select_network(data, shown, network)
    names = tuple(str(n) for n in data["networks"])
    data = {**data, "networks": {name: data["networks"][name]}}  # others may use unset vars
    data = substitute(data, shown)
    try:
        model = FileModel.model_validate(data)
    except ValidationError as err:
        raise validation_error(shown, err) from err
    base = src.resolve().parent
    net = model.networks[name].model_copy(update={"name": name})
    net, account, ledger = _resolve_paths(base, model, net)
    written = str(model.networks[name].deployments) if net.deployments else ""
    dep = _load_deployments(net, written, net.deployments) if net.deployments else None
    contracts = _merge_contracts(shown, net, model.contracts, dep)
    vaults = tuple(
        _resolve_vault(shown, i, v, dep, written, contracts) for i, v in enumerate(model.vaults)
    )
    return KeeperConfig(
        source=src.resolve(),
        network=net,
        network_names=names,
        contracts=contracts,
        vaults=vaults,
        gas=model.gas,
        account=account,
        schedule=model.schedule,
        ledger=ledger,
        forecast=model.forecast,
        metrics_port=model.metrics_port,
        log_format=model.log_format,
        store=_resolve_store(base, model.store, ledger),
        lease_s=model.lease_s or _default_lease_s(model),
    )


def _resolve_store(base: Path, store: str | None, ledger: LedgerConfig) -> str:
    if store is None:
        return str(ledger.path)
    if store.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return store
    return str(_resolve(base, Path(store.removeprefix("sqlite:///"))))


def _default_lease_s(model: FileModel) -> float:
    """Three quarters of the shortest interval, 5 s to 300 s: a dead keeper's lease has expired
    by the time its peers tick twice. Renewed every third of it while held."""
    intervals = [
        s.interval_s
        for s in (model.schedule, *(v.schedule for v in model.vaults))
        if s is not None and s.interval_s
    ]
    return min(max(0.75 * min(intervals, default=60), 5.0), 300.0)
