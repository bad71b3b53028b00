# Corral: the two commands of the README are `make run` and `make test`.
CARGO ?= cargo
PROFILE_DIR := target/release

.PHONY: run build test deps-test lint fmt bench clean

## Install what is missing, build, and run the daemon with built-in defaults.
run:
	scripts/install-deps.sh run
	$(CARGO) build --release --bins
	$(PROFILE_DIR)/corrald

build:
	$(CARGO) build --release --bins

## Install test dependencies and run every test (unit and integration, as root).
test: deps-test
	$(CARGO) build --bins
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

deps-test:
	scripts/install-deps.sh test

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Benchmarks against containerd (installs it if missing); prints medians and ratios.
## BENCH_ARGS: --iterations N --exec-calls N --shim-pods N --daemon-pods N --runs N --forward-mib N --forward-rounds N --sections pulls,pods,exec,streaming,memory
bench:
	scripts/install-deps.sh bench
	$(CARGO) build --release --bins
	CORRALD_BIN=$${CARGO_TARGET_DIR:-$(CURDIR)/target}/release/corrald $(CARGO) run --release -p corral-tests --bin corral-bench -- $(BENCH_ARGS)

clean:
	$(CARGO) clean
