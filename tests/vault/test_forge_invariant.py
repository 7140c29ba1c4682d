"""The vault's ERC-4626 invariant campaign (tests/vault/forge, 500 runs x 30 calls, see
tests/vault/forge/foundry.toml) run by forge, so `make test` runs it; a failure shows forge's
counterexample."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORGE = ROOT / ".tools" / "bin" / "forge"


def test_erc4626_invariants_hold_over_500_runs_of_30_calls() -> None:
    if not FORGE.exists():
        pytest.fail("forge is missing. Fix: make setup (it links the npm forge into .tools/bin)")
    env = {**os.environ, "NO_COLOR": "1", "FOUNDRY_DISABLE_NIGHTLY_WARNING": "1"}
    root = ROOT / "tests" / "vault" / "forge"
    solc = ROOT / ".tools" / "solcx" / "solc-v0.8.37"
    proc = subprocess.run([str(FORGE), "test", "--root", str(root), "--use", str(solc)],
                          capture_output=True,
                          text=True, timeout=1800, env=env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"forge test failed:\n{out[-6000:]}"
    runs = re.search(r"invariant_erc4626\(\) \(runs: (\d+), calls: (\d+), reverts: (\d+)\)", out)
    assert runs, f"no invariant campaign in forge's output:\n{out[-3000:]}"
    assert int(runs.group(1)) >= 500 and int(runs.group(2)) >= 500 * 30, runs.group(0)
