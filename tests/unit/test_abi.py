"""The ABIs the keeper ships must be the build's: a changed contract interface without a
regenerated keeper/abi/ would encode calls the vault no longer has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keeper.abi import SHIPPED, abi_dir, load_abi
from keeper.chain.contracts import encode_call
from keeper.errors import ToolchainError
from keeper.localnet.artifacts import load
from keeper.paths import project_root


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_abi_equals_the_build(name: str) -> None:
    shipped = json.loads((abi_dir() / f"{name}.json").read_text())
    assert shipped == load(name).abi, (
        f"keeper/abi/{name}.json differs from the build: run tools/export_abis.py"
    )


def test_unknown_abi_is_a_clear_error() -> None:
    with pytest.raises(ToolchainError, match="no shipped ABI for Nope"):
        load_abi("Nope")


def test_keeper_encodes_without_the_build_tree(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The runtime path reads only keeper/abi: point the project root at an empty folder."""
    monkeypatch.setenv("VAULT_KEEPER_ROOT", str(tmp_path))
    data = encode_call("RebalancingVault", "keeperView")
    assert len(data) == 4
    assert project_root() == tmp_path
    assert not (tmp_path / ".build").exists()


def test_multicall_targets_encode_as_their_checked_bytes() -> None:
    """A batch encodes each target's 20 bytes, checked once: the same calldata as the hex
    string, and what is not an address is refused."""
    import pytest
    from eth_utils.address import to_checksum_address

    from keeper.chain.contracts import address_bytes, encode_call

    good = to_checksum_address("0x" + "ab" * 20)
    calls = [(good, True, b"\x01\x02")]
    assert encode_call("Multicall3", "aggregate3", ([(address_bytes(good), True, b"\x01\x02")],)
                       ) == encode_call("Multicall3", "aggregate3", (calls,))
    for bad in (good[:-2], good + "00", "0x" + "zz" * 20):
        with pytest.raises(ValueError, match="not an address"):
            address_bytes(bad)
