# vault-keeper: the two commands a fresh machine needs are `make demo` and `make test`.
SHELL := /bin/bash
ENV := source .tools/env.sh &&

.PHONY: setup test demo lint bench clean

setup:            ## install everything (idempotent; a second run takes about a second)
	@bash tools/setup.sh

test: setup       ## the whole test suite (starts and stops its own anvil)
	@$(ENV) .venv/bin/pytest -q $(PYTEST_ARGS)

demo: setup       ## 72 real hours of June 2022 through the keeper on a local chain (state/demo.png)
	@$(ENV) .venv/bin/keeper demo $(DEMO_ARGS)

lint: setup      ## ruff, mypy strict, the import-linter contracts, solhint
	@$(ENV) .venv/bin/ruff check keeper tests scripts benchmarks
	@$(ENV) .venv/bin/mypy
	@$(ENV) .venv/bin/lint-imports --no-cache
	@$(ENV) tools/solhint.sh

bench: setup      ## every benchmark; results land in benchmarks/results/*.md
	@$(ENV) for b in benchmarks/bench_*.py; do .venv/bin/python -m benchmarks.$$(basename $$b .py) || exit 1; done
	@$(ENV) VAULT_GAS_REPORT=1 .venv/bin/pytest -q tests/vault/test_gas.py

clean:
	rm -rf .venv node_modules .tools .build
