# rdev: `make run` starts the whole system, `make test` runs the suite.
# Needs only Python 3.11+, git and make: everything else is bootstrapped into .venv.

PYTHON ?= python3
UV := .uv/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced
MEMBERS := pyproject.toml uv.lock libs/common/pyproject.toml cli/pyproject.toml \
	services/api/pyproject.toml services/executor/pyproject.toml \
	services/webhooks/pyproject.toml services/audit/pyproject.toml

.PHONY: test-k8s-cluster run test lint fmt bench clean

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet uv

# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set, every
# service start would otherwise compile its imports from source (≈2.5 s of CPU
# for the api alone).
$(STAMP): $(UV) $(MEMBERS) Makefile
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --inexact --compile-bytecode --python $(PYTHON)
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/rdev up

# End-to-end tests spend most of their time waiting on subprocesses: three workers
# keep two cores busy. A file's tests stay on one worker (they share its systems).
# A failed test is run once more and reported as rerun, so a timing flake on a busy
# machine shows up in the summary without failing the run; a real failure fails twice.
PYTEST_WORKERS ?= 3

test: $(STAMP)
	$(VENV)/bin/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --reruns 1 $(PYTEST_ARGS)

# The Kubernetes tests that hold on any cluster, against a real one: set
# RDEV_K8S_TEST_KUBECONFIG (and optionally RDEV_K8S_TEST_NAMESPACE, _IMAGE, _SILENT_S;
# see deploy/README.md). Without it the same tests run against the API-server double.
test-k8s-cluster: $(STAMP)
	@test -n "$$RDEV_K8S_TEST_KUBECONFIG" || { echo "set RDEV_K8S_TEST_KUBECONFIG"; exit 2; }
	$(VENV)/bin/python -m pytest -n 0 -p no:cacheprovider tests/kubernetes/test_real_cluster.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .uv .rdev
