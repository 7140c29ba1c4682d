"""Write the ABIs the keeper uses at run time into keeper/abi/ from the build and node_modules.

The keeper ships these files so that it runs without ape's .build/ or node_modules/.
Run after changing a contract's interface: `.venv/bin/python tools/export_abis.py`;
tests/unit/test_abi.py fails while a shipped ABI differs from the build.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keeper.abi import SHIPPED, abi_dir  # noqa: E402
from keeper.localnet.artifacts import load  # noqa: E402


def rendered(name: str) -> str:
    return json.dumps(load(name).abi, indent=1, sort_keys=True) + "\n"


def main() -> int:
    for name in SHIPPED:
        path = abi_dir() / f"{name}.json"
        path.write_text(rendered(name))
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
