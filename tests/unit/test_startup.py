"""A one-shot command (`keeper check`, `keeper simulate`) starts fast: the keeper's modules
import scipy only where a volatility fit needs it (scipy was about half of the start-up time),
and the gas outlook's EWMA runs without it, bit for bit as scipy's lfilter."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import signal

from keeper.forecast import gas


def test_the_keepers_commands_start_without_scipy() -> None:
    code = (
        "import sys, keeper.cli, keeper.wiring, keeper.app, keeper.runtime; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("n", [1, 2, 24, 2_160, gas.LOOP_MAX, gas.LOOP_MAX + 1, 43_800])
@pytest.mark.parametrize("half_life", [1.0, 14.0, 72.0])
def test_the_gas_outlook_ewma_is_scipys_lfilter_bit_for_bit(n: int, half_life: float) -> None:
    x = np.random.default_rng(n).normal(3.4, 0.6, size=n)  # log gwei
    lam = 0.5 ** (1.0 / half_life)
    want, _ = signal.lfilter([1.0 - lam], [1.0, -lam], x, zi=np.array([lam * x[0]]))
    assert np.array_equal(gas._ewma(x, half_life), want)
