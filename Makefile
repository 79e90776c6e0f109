# Two commands set up everything on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3

OLDEST_KUBE = $(shell awk '!/^\#/ && NF {v=$$1} END {print v}' tests/stack/kube-versions)

.PHONY: setup test test-oldest lint demo dev dev-rotate dev-down bench bench-peers schema

setup:  ## install Python deps, OpenBao, moto; build or reuse Kubernetes + etcd (tests/stack/kube-versions)
	bash .ci/setup

test: setup  ## the whole suite, integration tests on the real local stack (Kubernetes 1.37)
	$(PYTHON) -m pytest

test-oldest: setup  ## the integration tests on the oldest supported Kubernetes (not the benchmark)
	PSS_KUBE_VERSION=$(OLDEST_KUBE) $(PYTHON) -m pytest tests/contract tests/stack tests/integration \
		--ignore=tests/integration/test_benchmark_quick.py

lint:
	ruff check syncer backends tests benchmarks
	mypy
	lint-imports

schema:  ## regenerate config/schema.json from syncer/config.py
	$(PYTHON) -m syncer.config > config/schema.json
	$(PYTHON) tests/stack/helm.py values-schema  # the chart's copy of it

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

bench-peers: setup  ## ours vs External Secrets Operator (+ peers the module proxy serves), N=1000; ARGS=--quick for N=100
	$(PYTHON) benchmarks/peers/run.py $(ARGS)
