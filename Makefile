# Corral: the two commands of the README are `make run` and `make test`.
CARGO ?= cargo
PROFILE_DIR := target/release

.PHONY: run build test deps-test lint fmt bench fuzz fuzz-check clean install install-files

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

## Install the binaries, the systemd unit and (only if none exists) a config with the defaults.
## DESTDIR stages into a directory; BIN_DIR picks the binaries (default: the release build).
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
UNITDIR ?= $(SYSCONFDIR)/systemd/system
BIN_DIR ?= $${CARGO_TARGET_DIR:-$(CURDIR)/target}/release

install: build install-files
	@echo "installed; enable with: systemctl daemon-reload && systemctl enable --now corrald"

install-files:
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/corral
	install -m 0755 $(BIN_DIR)/corrald $(BIN_DIR)/corral-shim $(BIN_DIR)/corralctl $(DESTDIR)$(PREFIX)/bin/
	sed 's|/usr/local/bin/corrald|$(PREFIX)/bin/corrald|' contrib/corrald.service > $(DESTDIR)$(UNITDIR)/corrald.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/corrald.service
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/corral/corrald.toml ]; then \
		echo "keeping $(DESTDIR)$(SYSCONFDIR)/corral/corrald.toml"; \
	else \
		$(BIN_DIR)/corrald --config /dev/null --print-config > $(DESTDIR)$(SYSCONFDIR)/corral/corrald.toml; \
		chmod 0644 $(DESTDIR)$(SYSCONFDIR)/corral/corrald.toml; \
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

## Fuzz every parser of untrusted bytes (fuzz/, cargo-fuzz on nightly) for FUZZ_SECONDS each;
## FUZZ_TARGETS picks some. Starts from the seeds in fuzz/corpus/<target>/; what it learns goes
## to fuzz/work/<target>/ (not committed, kept between runs), findings to fuzz/artifacts/.
## As root: the unpacker's target sandboxes itself in a mount namespace.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= unpack_layer image_manifest hosts_toml registry_credentials spdy_frames \
	websocket_channels stream_protocols shim_proto cri_log kube_manifest kube_quantity \
	kube_selector cni_result
# One process: -jobs=1 also sends its log to ./fuzz-0.log. The replay runs in the foreground.
FUZZ_LIMITS := -rss_limit_mb=2048 -malloc_limit_mb=2048
FUZZ_FLAGS := $(FUZZ_LIMITS) -jobs=1 -workers=1

fuzz:
	scripts/install-deps.sh fuzz
	@for t in $(FUZZ_TARGETS); do \
		echo "== fuzzing $$t for $(FUZZ_SECONDS) s"; \
		mkdir -p fuzz/work/$$t; \
		$(CARGO) +nightly fuzz run $$t fuzz/work/$$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS) || exit 1; \
	done

## Regression mode (no fuzzing): replays each target's corpus and fuzz/regressions/<target>/ once.
fuzz-check:
	scripts/install-deps.sh fuzz
	$(CARGO) +nightly fuzz build
	@for t in $(FUZZ_TARGETS); do \
		dirs="fuzz/corpus/$$t"; [ -d fuzz/regressions/$$t ] && dirs="$$dirs fuzz/regressions/$$t"; \
		echo "== replaying $$dirs"; \
		$(CARGO) +nightly fuzz run $$t $$dirs -- -runs=0 $(FUZZ_LIMITS) || exit 1; \
	done

clean:
	$(CARGO) clean
