"""No traceback reaches an operator: every `keeper` command runs inside `GuardedCommand`, which
turns an exception no command handled into one line naming the command, the vault and the likely
fix, and writes the redacted traceback to `keeper-errors.log` beside the ledger.

The commands still handle the errors they expect (`KeeperError`: config, data, chain) with their
own one-line messages; this is the net under them.
"""

from __future__ import annotations

import sqlite3
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperCommand
from typer.exceptions import TyperException

from keeper.errors import ConfigError, DataError, KeeperError
from keeper.redact import redact

if TYPE_CHECKING:  # keeps `keeper backtest` free of the config's imports
    from keeper.config import KeeperConfig

LOG_NAME = "keeper-errors.log"
DEFAULT_STATE = Path("state")
_loaded: dict[str, KeeperConfig] = {}  # the config the running command loaded, if any


def remember(cfg: KeeperConfig) -> None:
    """Note the command's config: its ledger folder holds the error log, its vaults name it."""
    _loaded["cfg"] = cfg


def log_path(params: dict[str, Any]) -> Path:
    """Beside the ledger when a config was loaded, else state/ beside the config file."""
    cfg = _loaded.get("cfg")
    if cfg is not None:
        return cfg.ledger.path.parent / LOG_NAME
    config = params.get("config")
    base = Path(config).parent if config else Path()
    return base / DEFAULT_STATE / LOG_NAME


def vault_of(params: dict[str, Any]) -> str:
    if params.get("vault"):
        return f"vault {params['vault']}"
    cfg = _loaded.get("cfg")
    if cfg is not None and cfg.vaults:
        return "vault " + ", ".join(v.name for v in cfg.vaults)
    return "no vault"


def likely_fix(err: BaseException) -> str:
    """What an operator can do about an error no command expected, by its kind."""
    name = type(err).__name__
    module = type(err).__module__
    if module.startswith("eth_abi") or name in ("BadFunctionCallOutput", "ContractLogicError"):
        return ("a contract answered with data the keeper cannot decode: check that every "
                "address in the config and its deployments file has that contract on this chain")
    if isinstance(err, ConnectionError) or "requests" in module or "urllib3" in module:
        return "the node did not answer: check the network's rpc_urls and that the node is running"
    if isinstance(err, sqlite3.Error):
        return "the ledger or history file is unusable: move it aside (it is never reset)"
    if isinstance(err, OSError):
        return "a file could not be read or written: check the paths in the config and their rights"
    return "this is a bug in vault-keeper: report it with the log file"


def write_log(path: Path, command: str, err: BaseException) -> Path | None:
    """Append the redacted traceback; None when even the log cannot be written."""
    text = "".join(traceback.format_exception(err))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    argv = " ".join(sys.argv[1:])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(redact(f"--- {stamp} keeper {command} ({argv})\n{text}\n", hex64=True))
    except OSError:
        return None
    return path


def report(command: str, params: dict[str, Any], err: BaseException) -> int:
    """Print the one line for `err` and log its traceback; returns the exit code."""
    console = Console(stderr=True)
    where = f" {command} [{vault_of(params)}]: "
    if isinstance(err, KeeperError):
        console.print(Text.assemble(("error:", "bold red"), where, redact(str(err))),
                      soft_wrap=True)
        return 2 if isinstance(err, ConfigError | DataError) else 1
    logged = write_log(log_path(params), command, err)
    first = (str(err).splitlines() or [""])[0]
    what = redact(f"unexpected {type(err).__name__}: {first}")[:300]
    tail = f"; the traceback is in {logged}" if logged else ""
    console.print(Text.assemble(("error:", "bold red"), where, f"{what} — {likely_fix(err)}{tail}"),
                  soft_wrap=True)
    return 1


class GuardedCommand(TyperCommand):
    """A typer command that never lets an unexpected exception print a traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click Context
        _loaded.clear()
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):  # exits and usage errors: typer's own
            raise
        except Exception as err:
            raise typer.Exit(report(ctx.info_name or "keeper", ctx.params, err)) from err
