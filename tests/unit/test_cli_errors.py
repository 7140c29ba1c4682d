"""No traceback reaches an operator: every broken config gives every command one line, an empty
account gives `rebalance` a specific one, and an unexpected exception becomes one line naming the
command, the vault and the likely fix, with the redacted traceback in the log beside the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import keeper.wiring
from keeper.cli import app
from tests.unit.test_config import BROKEN, edited, folder, write  # noqa: F401 (fixture)

runner = CliRunner()
COMMANDS = (["check"], ["simulate"], ["rebalance", "--yes"], ["status"], ["run", "--dry"])


def _one_line_error(out: Any) -> str:
    text = out.output
    assert "Traceback" not in text and 'File "' not in text, text
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), text
    return str(lines[0])


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
@pytest.mark.parametrize(("changes", "message"), [(c, m) for _, c, m in BROKEN],
                         ids=[n for n, _, _ in BROKEN])
def test_no_command_prints_a_traceback_for_a_broken_config(
    folder: Path, command: list[str], changes: dict[str, Any], message: str  # noqa: F811
) -> None:
    path = write(folder, edited(**changes))
    out = runner.invoke(app, [*command, "--config", path])
    assert out.exit_code == 2
    assert message in _one_line_error(out)


def test_rebalance_with_an_empty_account_section_says_what_to_add(folder: Path) -> None:  # noqa: F811
    path = write(folder, edited(account=None) | {"account": None})
    for command in (["rebalance", "--yes"], ["run"]):
        out = runner.invoke(app, [*command, "--config", path])
        assert out.exit_code == 2, out.output
        line = _one_line_error(out)
        assert "account is not set, and sending needs a signing key" in line
        assert "account.keystore" in line


def test_an_unexpected_exception_is_one_line_and_a_redacted_log(
    folder: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    secret_url = "https://keeperuser:s3cret-pass@rpc.example/v2/APIKEY0123456789"

    def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeError(f"boom while talking to {secret_url} with passphrase=hunter2")

    monkeypatch.setattr(keeper.wiring, "build_keeper", boom)
    path = write(folder, edited())
    out = runner.invoke(app, ["check", "--config", path])
    assert out.exit_code == 1
    line = _one_line_error(out)
    assert line.startswith("error: check [vault main]: unexpected RuntimeError: boom")
    assert "this is a bug in vault-keeper: report it with the log file" in line
    log = folder / "state" / "keeper-errors.log"
    assert str(log) in line
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: boom" in text
    assert "keeper check" in text
    for secret in ("s3cret-pass", "APIKEY0123456789", "hunter2", "keeperuser:"):
        assert secret not in text and secret not in out.output


def test_a_decoding_error_names_the_addresses_as_the_likely_fix(
    folder: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    from eth_abi.exceptions import InsufficientDataBytes

    def short(*_a: Any, **_k: Any) -> None:
        raise InsufficientDataBytes("Tried to read 32 bytes, only got 0 bytes.")

    monkeypatch.setattr(keeper.wiring, "build_keeper", short)
    out = runner.invoke(app, ["simulate", "--vault", "main", "--config", write(folder, edited())])
    line = _one_line_error(out)
    assert line.startswith("error: simulate [vault main]: unexpected InsufficientDataBytes")
    assert "check that every address in the config and its deployments file" in line
