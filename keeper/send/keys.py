"""Keystore loading. No passphrase or key ever reaches a message.

`load_account()` decrypts an eth-account (web3 secret storage) keystore with a passphrase taken
from an environment variable or a file; the key and passphrase are registered with
`keeper.redact` so they are masked wherever they might appear.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from keeper.errors import ConfigError
from keeper.redact import register_secret


def read_passphrase(*, env: str | None = None, file: Path | None = None) -> str:
    """The passphrase from the named environment variable or the file (trailing newline
    stripped). Errors name the source, never the value."""
    if (env is None) == (file is None):
        raise ConfigError("set exactly one of account.passphrase_env or account.passphrase_file")
    if env is not None:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(
                f"account.passphrase_env: environment variable {env} is not set "
                f"or empty: export {env} before starting the keeper"
            )
        return value
    assert file is not None
    try:
        value = file.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"account.passphrase_file: {file} cannot be read "
            f"({err.__class__.__name__}): check the path and permissions"
        ) from err
    if not value:
        raise ConfigError(f"account.passphrase_file: {file} is empty")
    return value


def _read_keystore(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(
            f"account.keystore: {path} not found: create it (e.g. `ape accounts "
            "import keeper`) or fix the path"
        ) from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(
            f"account.keystore: {path} is not a readable keystore JSON ({err.__class__.__name__})"
        ) from err
    if not isinstance(data, dict) or "crypto" not in {k.lower() for k in data}:
        raise ConfigError(
            f"account.keystore: {path} is not an encrypted keystore (no crypto section)"
        )
    return data


def load_account(
    keystore: Path, *, passphrase_env: str | None = None, passphrase_file: Path | None = None
) -> LocalAccount:
    """Decrypt `keystore`; wrong or missing passphrase -> ConfigError (no secret in it)."""
    data = _read_keystore(keystore)
    passphrase = read_passphrase(env=passphrase_env, file=passphrase_file)
    register_secret(passphrase)
    try:
        key = Account.decrypt(data, passphrase)
    except ValueError as err:
        raise ConfigError(
            f"account.keystore: cannot decrypt {keystore}: wrong passphrase "
            "(MAC mismatch) or damaged keystore"
        ) from err
    except (KeyError, TypeError) as err:
        raise ConfigError(
            f"account.keystore: {keystore} is malformed ({err.__class__.__name__})"
        ) from err
    register_secret(key.hex())
    register_secret("0x" + key.hex().removeprefix("0x"))
    account: LocalAccount = Account.from_key(key)
    return account
