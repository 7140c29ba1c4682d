#!/usr/bin/env bash
# One idempotent setup step: Python env, pinned node packages, the solc wrapper, anvil and forge on PATH,
# and the compiled contracts. A second run only compares stamps and returns in about a second.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS="$ROOT/.tools"
VENV="$ROOT/.venv"
SOLC_VERSION="0.8.37"
PY="${PYTHON:-python3.11}"
NODE="${NODE:-node}"
NPM="${NPM:-npm}"

die() { echo "setup: $*" >&2; exit 1; }
say() { [[ -n "${QUIET:-}" ]] || echo "setup: $*"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

need_tools() {
  [[ -n "${PYTHON:-}" ]] || command -v "$PY" >/dev/null 2>&1 || PY=python3
  command -v "$PY" >/dev/null 2>&1 || die "Python 3.11 not found. Fix: install python3.11 (apt-get install python3.11 python3.11-venv) or set PYTHON=/path/to/python3.11"
  "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || die "$("$PY" --version) found, but vault-keeper needs Python 3.11. Fix: install python3.11 or set PYTHON=/path/to/python3.11"
  "$PY" -c 'import venv' 2>/dev/null || die "Python venv module missing. Fix: apt-get install python3.11-venv"
  command -v "$NODE" >/dev/null 2>&1 || die "node not found (needed for solc and anvil). Fix: install Node.js >= 18 (apt-get install nodejs npm)"
  command -v "$NPM" >/dev/null 2>&1 || die "npm not found. Fix: apt-get install npm"
}

setup_python() {
  local stamp="$VENV/.vk-stamp" want
  want="$(hash_of pyproject.toml)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return; fi
  say "creating the Python environment in .venv"
  [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -m pip install -q -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c 'import keeper, web3, ape, ape_foundry, ape_solidity, scipy' \
    || die "Python packages did not install. Fix: check the pip output above, then rerun make setup"
  echo "$want" > "$stamp"
}

setup_node() {
  local stamp="node_modules/.vk-stamp" want
  want="$(hash_of package-lock.json)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return; fi
  say "installing pinned node packages (npm ci)"
  "$NPM" ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
}

setup_bins() {
  mkdir -p "$TOOLS/bin" "$TOOLS/solcx"
  local wrapper="$TOOLS/solcx/solc-v$SOLC_VERSION"
  printf '#!/bin/sh\nexec node "%s/tools/solc.js" "$@"\n' "$ROOT" > "$wrapper"
  chmod +x "$wrapper"
  ln -sf "$wrapper" "$TOOLS/bin/solc"
  ln -sf "$ROOT/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil" "$TOOLS/bin/anvil"
  ln -sf "$ROOT/node_modules/@foundry-rs/cast-linux-amd64/bin/cast" "$TOOLS/bin/cast"
  ln -sf "$ROOT/node_modules/@foundry-rs/forge-linux-amd64/bin/forge" "$TOOLS/bin/forge"
  cat > "$TOOLS/env.sh" <<EOF
# source this file to use the project's tools by hand (ape, anvil, keeper)
export PATH="$TOOLS/bin:$VENV/bin:\$PATH"
export SOLCX_BINARY_PATH="$TOOLS/solcx"
EOF
  "$TOOLS/bin/anvil" --version >/dev/null || die "anvil does not run. Fix: rm -rf node_modules && make setup"
  "$TOOLS/bin/forge" --version >/dev/null || die "forge does not run. Fix: rm -rf node_modules && make setup"
  "$wrapper" --version | grep -q "$SOLC_VERSION+commit" || die "solc wrapper broken. Fix: rm -rf node_modules && make setup"
}

compile_contracts() {
  local stamp="$TOOLS/compile-stamp" want
  want="$(find contracts tools/solc.js ape-config.yaml -type f | sort | xargs cat | sha256sum | cut -c1-16)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -d .build ]]; then return; fi
  say "compiling contracts (ape compile, solc $SOLC_VERSION via solcjs)"
  # shellcheck disable=SC1091
  source "$TOOLS/env.sh"
  # --force: ape recompiles changed files only, not the contracts that import a changed library
  ape compile --force >/dev/null || die "ape compile failed. Fix: run 'source .tools/env.sh && ape compile -v DEBUG' to see why"
  echo "$want" > "$stamp"
}

compile_bytecode() {
  # The keeper's own bytecode (pip's editable install leaves it uncompiled), so every one-shot
  # command starts without compiling its sources, also where PYTHONDONTWRITEBYTECODE is set, as
  # in many containers. Only changed files are recompiled.
  "$VENV/bin/python" -m compileall -q -j 0 keeper >/dev/null \
    || die "compiling the keeper's Python sources failed. Fix: run '.venv/bin/python -m compileall keeper' to see why"
}

need_tools
setup_python
setup_node
setup_bins
compile_contracts
compile_bytecode
say "ready (source .tools/env.sh to use ape, anvil and keeper by hand)"
