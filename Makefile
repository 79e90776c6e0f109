# Two commands set up everything on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3
IMAGE ?= pullsecret-syncer:dev

OLDEST_KUBE = $(shell awk '!/^\#/ && NF {v=$$1} END {print v}' tests/stack/kube-versions)

.PHONY: setup test test-unit test-oldest test-kind lint demo image dev dev-rotate dev-down bench bench-peers schema

setup:  ## what `make test` needs: Python deps, Kubernetes 1.37 + etcd, helm, a Docker engine
	bash .ci/setup python kube helm docker

test: setup  ## the whole suite, integration tests on the real local stack (Kubernetes 1.37)
	$(PYTHON) -m pytest

# The fast loop spreads the tests over the cores (pytest-xdist, from `.[test]`; one process
# where it is not installed) and draws a quarter of each property test's examples; `make test`
# runs them all in full.
test-unit:  ## the seconds-fast loop: unit tests only, no stack and no set-up
	PSS_EXAMPLES=quick $(PYTHON) -m pytest -q \
		$$($(PYTHON) -c 'import xdist' 2>/dev/null && printf '%s' '-n auto') tests/unit

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

schema:  ## regenerate config/schema.json from the models of syncer/config/ (python -m syncer.config)
	$(PYTHON) -m syncer.config > config/schema.json
	$(PYTHON) tests/stack/helm.py values-schema  # the chart's copy of it

demo:  ## run the daemon against the local real stack (Kubernetes 1.37 only) and narrate it
	bash .ci/setup python kube
	$(PYTHON) deploy/demo/demo.py

# The kind environment (deploy/kind/, docs/install.md "Try it locally"): a kind cluster, a dev
# Vault (OpenBao), a private registry and the syncer installed by its Helm chart; ends with the
# proof that a Pod pulls the private image through the Secret it wrote.
dev:  ## kind cluster + dev Vault + private registry + the syncer (Helm), then the pull proof
	bash .ci/setup python helm docker
	$(MAKE) image
	bash deploy/kind/dev-up.sh

dev-rotate:  ## new registry password in the registry and Vault; a new Pod pulls with it
	bash deploy/kind/dev-rotate.sh

dev-down:  ## delete the kind cluster, the registry and their network
	bash deploy/kind/dev-down.sh

# Where Docker cannot run, the image is not built and every test of the layer skips with the
# reason (fails under PSS_REQUIRE_STACK=1, when `.ci/setup docker` already fails).
test-kind:  ## the kind layer (tests/kind): make dev's environment, every proof asserted, then down
	bash .ci/setup python helm docker
	if bash tests/stack/docker.sh status >/dev/null; then $(MAKE) image; fi
	$(PYTHON) -m pytest tests/kind -p no:randomly --timeout=5400 -s

bench:
	bash .ci/setup python kube
	$(PYTHON) benchmarks/run.py

bench-peers:  ## ours vs External Secrets Operator (+ peers the module proxy serves), N=1000; ARGS=--quick for N=100
	bash .ci/setup python kube
	$(PYTHON) benchmarks/peers/run.py $(ARGS)
