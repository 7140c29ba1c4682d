"""Bad toolchain input gets one clear message naming the fix, never a stack trace."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from keeper.chain.anvil import Anvil
from keeper.errors import ToolchainError

ROOT = Path(__file__).resolve().parents[2]


def _setup(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "tools" / "setup.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_setup_names_the_fix_when_node_is_missing() -> None:
    out = _setup(NODE="/nonexistent/node")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "setup: node not found (needed for solc and anvil). "
        "Fix: install Node.js >= 18 (apt-get install nodejs npm)"
    ]


def test_setup_names_the_fix_when_python_311_is_missing() -> None:
    out = _setup(PYTHON="/nonexistent/python3.11")
    assert out.returncode == 1
    assert "Python 3.11 not found. Fix: install python3.11" in out.stderr
    assert "Traceback" not in out.stderr


def test_solc_wrapper_answers_like_native_solc() -> None:
    out = subprocess.run(
        [str(ROOT / ".tools" / "solcx" / "solc-v0.8.37"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.splitlines()[-1].startswith("Version: 0.8.37+commit.")


def test_solc_wrapper_rejects_unknown_flags_with_a_message() -> None:
    out = subprocess.run(
        ["node", str(ROOT / "tools" / "solc.js"), "--bin", "x.sol"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "unsupported argument --bin" in out.stderr


def test_anvil_refuses_a_port_in_use() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ToolchainError, match=rf"port {port} is already in use. Fix: stop"):
            Anvil(port=port).start()


def test_missing_anvil_binary_names_make_setup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VAULT_KEEPER_ROOT", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError, match=r"anvil not found. Fix: run `make setup`"):
        Anvil()
