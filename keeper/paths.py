"""Where the project's own files are: the checkout root, its tools and its state."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout root (override with VAULT_KEEPER_ROOT)."""
    env = os.environ.get("VAULT_KEEPER_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[1]
