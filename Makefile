# Two commands set up everything on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3

OLDEST_KUBE = $(shell awk '!/^\#/ && NF {v=$$1} END {print v}' tests/stack/kube-versions)

.PHONY: setup test test-oldest test-kind lint demo dev dev-rotate dev-down bench bench-peers schema

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

# The kind environment (deploy/kind/, docs/install.md "Try it locally"): a kind cluster, a dev
# Vault (OpenBao), a private registry and the syncer installed by its Helm chart; ends with the
# proof that a Pod pulls the private image through the Secret it wrote.
dev:  ## kind cluster + dev Vault + private registry + the syncer (Helm), then the pull proof
	bash tests/stack/docker.sh up
	bash deploy/kind/dev-up.sh

dev-rotate:  ## new registry password in the registry and Vault; a new Pod pulls with it
	bash deploy/kind/dev-rotate.sh

dev-down:  ## delete the kind cluster, the registry and their network
	bash deploy/kind/dev-down.sh

test-kind: setup  ## the kind layer (tests/kind): make dev's environment, every proof asserted, then down
	$(PYTHON) -m pytest tests/kind -p no:randomly --timeout=5400 -s

bench: setup
	$(PYTHON) benchmarks/run.py

bench-peers: setup  ## ours vs External Secrets Operator (+ peers the module proxy serves), N=1000; ARGS=--quick for N=100
	$(PYTHON) benchmarks/peers/run.py $(ARGS)
