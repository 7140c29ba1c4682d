"""Start and stop local node processes: anvil (the local chain, and forks for simulation) and,
through the same base class, Hardhat Network (keeper.localnet.hardhat)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import requests

from keeper.errors import ToolchainError
from keeper.paths import project_root

READY_TIMEOUT_S = 20.0
READY_POLL_S = 0.01  # anvil answers within about 0.1 s of its start: poll finely
KEPT_STATES = 256  # recent block states anvil keeps (eth_call at a pinned block needs them)


def anvil_binary() -> str:
    """Path of the anvil binary: the project's .tools/bin first, then PATH."""
    local = project_root() / ".tools" / "bin" / "anvil"
    if local.exists():
        return str(local)
    found = shutil.which("anvil")
    if found:
        return found
    raise ToolchainError("anvil not found. Fix: run `make setup` (installs anvil from npm)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class NodeProcess:
    """A local node child process answering JSON-RPC on 127.0.0.1; a context manager that
    always stops it. Subclasses set `name` and `args`."""

    name = "node"

    def __init__(self, port: int | None, log_path: Path | None) -> None:
        self.port = port if port is not None else free_port()
        self.log_path = log_path
        self.args: list[str] = []
        self.cwd: Path | None = None
        self.env: dict[str, str] | None = None
        self.ready_timeout_s = READY_TIMEOUT_S
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        if port_in_use(self.port):
            raise ToolchainError(
                f"port {self.port} is already in use. Fix: stop the process on it "
                f"(`lsof -i :{self.port}`) or choose another port (--port)"
            )
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.args, stdout=out, stderr=subprocess.STDOUT, cwd=self.cwd, env=self.env
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ToolchainError(
                    f"{self.name} exited with code {self.proc.returncode} at start"
                )
            try:
                if requests.post(self.url, json=body, timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(READY_POLL_S)
        self.stop()
        raise ToolchainError(
            f"{self.name} did not answer on {self.url} within {self.ready_timeout_s:.0f} s"
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Anvil(NodeProcess):
    """An anvil child process."""

    name = "anvil"

    def __init__(
        self,
        port: int | None = None,
        *,
        fork_url: str | None = None,
        fork_block: int | None = None,
        block_time_s: int | None = None,
        chain_id: int | None = None,
        extra_args: tuple[str, ...] = (),
        log_path: Path | None = None,
    ) -> None:
        super().__init__(port, log_path)
        self.args = self._args(fork_url, fork_block, block_time_s, chain_id, extra_args)

    def _args(
        self,
        fork_url: str | None,
        fork_block: int | None,
        block_time_s: int | None,
        chain_id: int | None,
        extra: tuple[str, ...],
    ) -> list[str]:
        args = [anvil_binary(), "--port", str(self.port), "--host", "127.0.0.1", "--silent"]
        # keep recent states in memory only: by default anvil spills old states to
        # ~/.foundry/anvil/tmp and never removes them when stopped (GBs per long test run)
        args += ["--prune-history", str(KEPT_STATES)]
        if fork_url:
            args += ["--fork-url", fork_url]
            if fork_block is not None:
                args += ["--fork-block-number", str(fork_block)]
        if block_time_s:
            args += ["--block-time", str(block_time_s)]
        if chain_id is not None:
            args += ["--chain-id", str(chain_id)]
        return args + list(extra)
