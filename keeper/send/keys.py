"""Keystore loading and secret redaction. No passphrase or key ever reaches a message.

`load_account()` decrypts an eth-account (web3 secret storage) keystore with a passphrase taken
from an environment variable or a file. `redact()` strips RPC credentials and secrets from any
text before it is logged; `RedactingFilter` applies it to every log record.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from keeper.errors import ConfigError

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()

_URL = re.compile(r"\b((?:https?|wss?)://)([^\s/?#'\"<>]+)([^\s'\"<>]*)", re.IGNORECASE)
_LABELLED = re.compile(
    r"(?i)\b(private[_ -]?key|secret|passphrase|password|api[_-]?key|token)(['\"]?\s*[:=]\s*)"
    r"(['\"]?)[^\s'\",}]+"
)
_HEX64 = re.compile(r"\b(0x)?[0-9a-fA-F]{64}\b")


def register_secret(value: str) -> None:
    """Remember a secret (key hex, passphrase) so redact() removes it wherever it appears."""
    if len(value) >= 6:
        with _SECRETS_LOCK:
            _SECRETS.add(value)
            if value.startswith("0x"):
                _SECRETS.add(value[2:])


def _redact_url(m: re.Match[str]) -> str:
    scheme, authority, rest = m.group(1), m.group(2), m.group(3)
    host = authority.rsplit("@", 1)[-1]
    user = "***@" if "@" in authority else ""
    tail = "/***" if rest.strip("/") else rest
    return f"{scheme}{user}{host}{tail}"


def redact(text: str, *, hex64: bool = False) -> str:
    """Remove secrets from `text`.

    - URLs keep scheme and host only: userinfo becomes `***@`, any path or query `/***`
      (providers put API keys there: /v2/<key>, ?apikey=).
    - `private_key=...`, `passphrase: ...`, `api_key=...` values become `***`.
    - registered secrets (the loaded key and passphrase) become `***`.
    - hex64=True also masks every bare 32-byte hex string. Off by default because tx and block
      hashes have the same shape and logs need them.
    """
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for s in secrets:
        text = text.replace(s, "***")
    text = _URL.sub(_redact_url, text)
    text = _LABELLED.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}***", text)
    if hex64:
        text = _HEX64.sub("0x***", text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


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
