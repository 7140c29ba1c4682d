"""Reading networks.yaml: the YAML itself, ${VAR} substitution, and pydantic's errors turned
into one ConfigError per file that names each key path and its problem."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from keeper.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def config_error(file: str, key: str, problem: str) -> ConfigError:
    """`<file>: <key path> <problem>`: the one shape of a config error."""
    return ConfigError(f"{file}: {key} {problem}")


# ---------------------------------------------------------------- error formatting

_BOUNDS = dict(greater_than=">", greater_than_equal=">=", less_than="<", less_than_equal="<=")
_SIMPLE = {
    "missing": "is required",
    "extra_forbidden": "is not a known key (check the spelling)",
    "too_short": "must not be empty",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "list_type": "must be a list",
}


def key_path(loc: tuple[str | int, ...]) -> str:
    """('vaults', 0, 'bands', 'inner_bps') -> 'vaults[0].bands.inner_bps'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problem(err: Mapping[str, Any]) -> tuple[tuple[str | int, ...], str]:
    loc, kind, ctx = tuple(err["loc"]), err["type"], err.get("ctx") or {}
    if kind == "keeper_field":
        return (*loc, ctx["field"]), ctx["problem"]
    if kind in _SIMPLE:
        return loc, _SIMPLE[kind]
    shown = f"({err.get('input')!r})"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return loc, f"{shown} must be {_BOUNDS[kind]} {bound}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return loc, f"{shown} must be an integer"
    if kind in ("float_parsing", "float_type"):
        return loc, f"{shown} must be a number"
    if kind == "literal_error":
        return loc, f"{shown} must be one of {ctx.get('expected')}"
    if kind.startswith("keeper_"):
        return loc, str(err["msg"])
    return loc, f"{shown}: {err['msg']}"


def validation_error(file: str, err: ValidationError) -> ConfigError:
    lines = []
    for e in err.errors():
        loc, problem = _problem(e)
        lines.append(f"{file}: {key_path(loc)} {problem}" if loc else f"{file}: {problem}")
    return ConfigError("\n".join(lines))


# ---------------------------------------------------------------- reading and substitution


def read_yaml(path: Path, shown: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(
            f"{shown} not found: create it (copy networks.yaml from the repository) "
            "or pass --config PATH"
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"{shown} cannot be read ({err.__class__.__name__}: {err}): "
            "check the path and its permissions"
        ) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{shown}: invalid YAML{where}: {problem}: fix the syntax") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{shown}: the top level must be a mapping with networks, gas, vaults")
    return data


def substitute(value: Any, file: str, path: tuple[str | int, ...] = ()) -> Any:
    """Replace ${VAR} (or ${VAR:-default}) in every string; a missing VAR is a ConfigError."""
    if isinstance(value, dict):
        return {k: substitute(v, file, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, file, (*path, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        var, default = m.group(1), m.group(2)
        got = os.environ.get(var)
        if got is None and default is None:
            raise config_error(
                file,
                key_path(path),
                f"uses ${{{var}}}, which is not set in the "
                f"environment: export {var}=... or edit the file",
            )
        return got if got is not None else str(default)

    return _VAR.sub(one, value)
