# Two commands set up everything on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3
IMAGE ?= pullsecret-syncer:dev

OLDEST_KUBE = $(shell awk '!/^\#/ && NF {v=$$1} END {print v}' tests/stack/kube-versions)

.PHONY: setup test test-unit test-oldest lint demo image dev dev-rotate dev-down bench bench-peers schema

setup:  ## what `make test` needs: Python deps, Kubernetes 1.37 + etcd, helm, a Docker engine
	bash .ci/setup python kube helm docker

test: setup  ## the whole suite, integration tests on the real local stack (Kubernetes 1.37)
	$(PYTHON) -m pytest

test-unit:  ## the seconds-fast loop: unit tests only, no stack and no set-up
	$(PYTHON) -m pytest -q tests/unit

test-oldest:  ## the integration tests on the oldest supported Kubernetes (not the benchmark)
	bash .ci/setup python kube-oldest
	PSS_KUBE_VERSION=$(OLDEST_KUBE) $(PYTHON) -m pytest tests/contract tests/stack tests/integration \
		--ignore=tests/integration/test_benchmark_quick.py

image:  ## pullsecret-syncer:dev from deploy/Dockerfile (local Debian 12 bases where none can be pulled)
	bash tests/stack/docker.sh up
	bash deploy/image/build.sh $(IMAGE)

lint:
	ruff check syncer backends tests benchmarks
	mypy
	lint-imports

schema:  ## regenerate config/schema.json from syncer/config.py
	$(PYTHON) -m syncer.config > config/schema.json
	$(PYTHON) tests/stack/helm.py values-schema  # the chart's copy of it

demo:  ## run the daemon against the local real stack (Kubernetes 1.37 only) and narrate it
	bash .ci/setup python kube
	$(PYTHON) deploy/demo/demo.py

dev:  ## kind cluster + dev Vault + the syncer (needs Docker and kind)
	bash deploy/kind/dev-up.sh

dev-rotate:
	bash deploy/kind/dev-rotate.sh

dev-down:
	bash deploy/kind/dev-down.sh

bench:
	bash .ci/setup python kube
	$(PYTHON) benchmarks/run.py

bench-peers:  ## ours vs External Secrets Operator (+ peers the module proxy serves), N=1000; ARGS=--quick for N=100
	bash .ci/setup python kube
	$(PYTHON) benchmarks/peers/run.py $(ARGS)
