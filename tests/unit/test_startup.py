"""A one-shot command (`keeper check`, `keeper simulate`) starts fast: the keeper's modules
import scipy only where a volatility fit needs it (scipy was about half of the start-up time);
the filters run on keeper.forecast.vol.iir1, checked against scipy in test_forecast.py."""

from __future__ import annotations

import subprocess
import sys


def test_the_keepers_commands_start_without_scipy() -> None:
    code = (
        "import sys, keeper.cli, keeper.wiring, keeper.app, keeper.runtime; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
