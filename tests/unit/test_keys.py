"""keeper.send.keys: keystore + passphrase loading, and redaction of secrets in text and logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from eth_account import Account

from keeper.errors import ConfigError
from keeper.redact import RedactingFilter, redact
from keeper.send.keys import load_account, read_passphrase

# a throwaway key made for this test file only
KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
ADDRESS = Account.from_key(KEY).address
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def keystore(tmp_path: Path) -> Path:
    data = Account.encrypt(KEY, PASSPHRASE, kdf="pbkdf2", iterations=2)  # fast for tests
    path = tmp_path / "keeper.json"
    path.write_text(json.dumps(data))
    return path


def message_of(err: pytest.ExceptionInfo[ConfigError]) -> str:
    text = err.value.message
    assert PASSPHRASE not in text and KEY[2:] not in text  # never in an error
    return text


def test_keystore_opens_with_passphrase_from_env(
    keystore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEPER_TEST_PASS", PASSPHRASE)
    assert load_account(keystore, passphrase_env="KEEPER_TEST_PASS").address == ADDRESS


def test_keystore_opens_with_passphrase_from_file(keystore: Path, tmp_path: Path) -> None:
    secret = tmp_path / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    assert load_account(keystore, passphrase_file=secret).address == ADDRESS


def test_wrong_passphrase_is_a_clear_error_without_secrets(
    keystore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEPER_TEST_PASS", "wrong " + PASSPHRASE)
    with pytest.raises(ConfigError) as info:
        load_account(keystore, passphrase_env="KEEPER_TEST_PASS")
    assert message_of(info) == (
        f"account.keystore: cannot decrypt {keystore}: wrong passphrase (MAC mismatch) or "
        "damaged keystore"
    )
    assert "wrong " + PASSPHRASE not in message_of(info)


def test_missing_passphrase_env_names_the_variable(
    keystore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEEPER_TEST_PASS", raising=False)
    with pytest.raises(ConfigError) as info:
        load_account(keystore, passphrase_env="KEEPER_TEST_PASS")
    assert message_of(info) == (
        "account.passphrase_env: environment variable KEEPER_TEST_PASS is not set or empty: "
        "export KEEPER_TEST_PASS before starting the keeper"
    )


def test_missing_keystore_and_passphrase_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_account(tmp_path / "nope.json", passphrase_env="X")
    assert message_of(info) == (
        f"account.keystore: {tmp_path / 'nope.json'} not found: create it (e.g. `ape accounts "
        "import keeper`) or fix the path"
    )
    with pytest.raises(ConfigError, match=r"passphrase_file: .*missing\.txt cannot be read"):
        read_passphrase(file=tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="set exactly one of"):
        read_passphrase()


def test_plain_json_is_not_a_keystore(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"address": "x"}))
    with pytest.raises(ConfigError) as info:
        load_account(path, passphrase_env="X")
    assert message_of(info) == (
        f"account.keystore: {path} is not an encrypted keystore (no crypto section)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rpc https://eth-mainnet.g.alchemy.com/v2/AbC123sEcReT down",
            "rpc https://eth-mainnet.g.alchemy.com/*** down",
        ),
        ("wss://mainnet.infura.io/ws/v3/0123456789abcdef", "wss://mainnet.infura.io/***"),
        ("https://user:pa55@node.example:8545/", "https://***@node.example:8545/"),
        ("https://rpc.example?apikey=SECRET", "https://rpc.example/***"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),  # nothing secret: unchanged
        ("private_key=0x" + "ab" * 32, "private_key=***"),
        ("passphrase: hunter2, next", "passphrase: ***, next"),
        ("{'api_key': 'k-123'}", "{'api_key': '***'}"),
        ("tx 0x" + "cd" * 32 + " mined", "tx 0x" + "cd" * 32 + " mined"),  # hashes stay
    ],
)
def test_redact_table(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_hex64_mode_masks_bare_keys() -> None:
    assert redact("key ab" + "cd" * 31 + " end", hex64=True) == "key 0x*** end"


def test_loaded_secrets_are_redacted_everywhere(
    keystore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEPER_TEST_PASS", PASSPHRASE)
    load_account(keystore, passphrase_env="KEEPER_TEST_PASS")
    assert redact(f"oops {KEY} and {KEY[2:]} and {PASSPHRASE}") == "oops *** and *** and ***"


def test_log_capture_contains_no_key_or_rpc_secret(
    caplog: pytest.LogCaptureFixture, keystore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEPER_TEST_PASS", PASSPHRASE)
    load_account(keystore, passphrase_env="KEEPER_TEST_PASS")
    log = logging.getLogger("keeper.test_keys")
    log.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="keeper.test_keys"):
        log.info("signing with %s via %s", KEY, "https://x.example/v2/SECRETKEY")
        log.info("passphrase=%s", PASSPHRASE)
    text = caplog.text
    assert KEY[2:] not in text and "SECRETKEY" not in text and PASSPHRASE not in text
    assert "signing with *** via https://x.example/***" in text
