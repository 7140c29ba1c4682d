"""Secret redaction for every message the keeper writes: RPC credentials, keys, passphrases.

`redact()` strips RPC credentials and registered secrets from any text before it is logged or
printed; `RedactingFilter` applies it to every log record. A ground-floor service: any layer may
use it, and it imports nothing of the keeper's.
"""

from __future__ import annotations

import logging
import re
import threading

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
