"""Session harness: our own anvil on a free port, ape attached to it, the market deployed once.

The market is deployed during pytest_configure, before ape connects and takes its isolation
snapshots, so every ape snapshot/restore keeps it. Tests then see a fresh copy of that state.
Works the same under `ape test` and plain `pytest` (ape registers its pytest plugin either way).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

try:
    from web3 import Web3
except ImportError as _err:  # a fresh machine that skipped setup
    raise SystemExit(f"missing Python dependency ({_err.name}). Fix: run `make setup`") from None

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools"
os.environ.setdefault("SOLCX_BINARY_PATH", str(TOOLS / "solcx"))
os.environ["PATH"] = f"{TOOLS / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"

from keeper.chain.anvil import Anvil  # noqa: E402
from keeper.errors import ToolchainError  # noqa: E402
from keeper.localnet.deploy import LocalMarket, deploy_market  # noqa: E402
from keeper.localnet.market import MoveResult, move_market, set_feed  # noqa: E402

_STATE: dict[str, object] = {}


def _compile_once() -> None:
    """Compile through ape (cached: a no-op when sources are unchanged)."""
    from ape import project

    project.load_contracts()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or "anvil" in _STATE:
        return
    try:
        anvil = Anvil(extra_args=("--base-fee", "1000000000")).start()
    except ToolchainError as err:
        pytest.exit(f"cannot start anvil: {err}", returncode=3)
    _STATE["anvil"] = anvil
    os.environ["APE_FOUNDRY_HOST"] = anvil.url
    _compile_once()
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    _STATE["market"] = deploy_market(w3, w3.eth.accounts[0])


# the team's study data (a user's machine has none): beside the checkout, or VAULT_SHARED_DATA
STUDY_DATA = Path(os.environ.get("VAULT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `realdata` read the study data. Where it is absent (a user's fresh clone)
    they are left out, and the run says how many; the product never needs it, so neither does
    `make test`. CI (CI=true) always has it, so there a missing folder fails them instead."""
    if STUDY_DATA.is_dir() or os.environ.get("CI") == "true":
        return
    left = [it for it in items if it.get_closest_marker("realdata")]
    if left:
        items[:] = [it for it in items if not it.get_closest_marker("realdata")]
        config.hook.pytest_deselected(items=left)
        _STATE["realdata_left_out"] = len(left)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    n = _STATE.get("realdata_left_out")
    if n:
        terminalreporter.write_line(
            f"{n} realdata test(s) left out: they read the study data in {STUDY_DATA}, which "
            "this machine does not have (CI has it and runs them all)")


def pytest_unconfigure(config: pytest.Config) -> None:
    anvil = _STATE.pop("anvil", None)
    if isinstance(anvil, Anvil):
        anvil.stop()


@pytest.fixture(scope="session")
def anvil_url() -> str:
    anvil = _STATE["anvil"]
    assert isinstance(anvil, Anvil)
    return anvil.url


@pytest.fixture(scope="session")
def w3(anvil_url: str) -> Web3:
    # eth_chainId answered once: web3 asks it before every call (a third of a market move's RPCs)
    return Web3(Web3.HTTPProvider(anvil_url, cache_allowed_requests=True))


@pytest.fixture(scope="session")
def market() -> LocalMarket:
    """The deployed local market (addresses); state is reset between tests by ape's isolation."""
    m = _STATE["market"]
    assert isinstance(m, LocalMarket)
    return m


@pytest.fixture
def push_price(w3: Web3, market: LocalMarket) -> Callable[[str, int], MoveResult]:
    """push_price("WETH", -1000): a -10% move in every WETH pool plus the matching feed update."""
    return lambda symbol, move_bps: move_market(w3, market, symbol, move_bps)


@pytest.fixture
def chain_snapshot(w3: Web3) -> Iterator[None]:
    """Raw evm snapshot/revert for tests that drive web3 directly (outside ape's isolation)."""
    snap = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    yield
    w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]


__all__ = ["move_market", "pg_server", "set_feed", "store_url"]


from tests.pgserver import pg_server, store_url  # noqa: E402 - fixtures for every test
