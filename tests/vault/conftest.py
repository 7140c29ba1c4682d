"""Vault fixtures on the session's `market` fixture (tests/conftest.py); helpers are in vaultlib."""

from __future__ import annotations

from typing import Any

import pytest
from vaultlib import Env, deploy


@pytest.fixture
def env(market: Any) -> Env:
    """A fresh configured vault seeded with 1,000,000 USDC (ape's isolation reverts it)."""
    return deploy(market)


@pytest.fixture
def balanced(env: Env) -> Env:
    """The seeded vault after one rebalance into its targets, past the cooldown, feeds fresh."""
    env.rebalance(env.plan_to_target())
    env.warp(3601)
    return env


@pytest.fixture(autouse=True)
def _quiet_reverts(monkeypatch: pytest.MonkeyPatch) -> None:
    """ape-foundry prints a full enriched call trace on every revert (3-5 s each); these tests
    assert the custom error instead, so skip the printout (the error is still decoded)."""
    from ape.exceptions import ContractLogicError, TransactionError
    from ape_foundry.provider import FoundryProvider

    def quiet(self: Any, exception: Exception, revert_message: str | None = None, **kw: Any) -> Any:
        if revert_message in (None, "", "0x"):
            revert_message = TransactionError.DEFAULT_MESSAGE
        elif revert_message.startswith("revert: "):
            revert_message = revert_message[8:]
        err = ContractLogicError(base_err=exception, revert_message=revert_message, **kw)
        return self.compiler_manager.enrich_error(err)

    monkeypatch.setattr(FoundryProvider, "_handle_execution_reverted", quiet)
