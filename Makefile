# Two commands set up everything on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3

.PHONY: setup test lint demo dev dev-rotate dev-down bench schema

setup:  ## install Python deps, etcd, OpenBao, moto; build or reuse kube-apiserver v1.20.2
	bash .ci/setup

test: setup  ## the whole suite, integration tests on the real local stack
	$(PYTHON) -m pytest

lint:
	ruff check syncer backends tests benchmarks
	mypy
	lint-imports

schema:  ## regenerate config/schema.json from syncer/config.py
	$(PYTHON) -m syncer.config > config/schema.json

demo: setup  ## run the daemon against the local real stack and narrate what it does
	$(PYTHON) deploy/demo/demo.py

dev:  ## kind cluster + dev Vault + the syncer (needs Docker and kind)
	bash deploy/kind/dev-up.sh

dev-rotate:
	bash deploy/kind/dev-rotate.sh

dev-down:
	bash deploy/kind/dev-down.sh

bench: setup
	$(PYTHON) benchmarks/run.py
