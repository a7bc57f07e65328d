# Weir build entry point. `make demo` and `make test` are the two commands in the README.
.PHONY: all plugins build demo test unit lint fmt bench bench-filter bench-runtime bench-proxy bench-tls bench-idle bench-standard bench-waf bench-redis bench-observability bench-cache clean

all: build

# Every standard filter and test fixture, as wasm32-wasip2 components (rustup's target, or
# the offline Debian route when rustup cannot provide it).
plugins:
	plugins/build.sh

# The proxy and the demo upstream, optimised.
build: plugins
	cargo build --release -p weir --bin weir --example echo_upstream

# Build everything and run the demo: echo upstreams, weir with examples/weir.toml, curl walkthrough.
demo: build
	examples/demo.sh

# Formatting, lints, then every unit and end-to-end test.
test: plugins lint
	cargo test --workspace

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p weir-sdk

fmt:
	cargo fmt --all

# Benchmarks (not part of `make test`): a pooled filter call; reload latency and idle
# memory; weir vs nginx under wrk.
bench: bench-filter bench-runtime bench-proxy bench-tls bench-idle bench-standard bench-waf bench-redis bench-observability bench-cache

bench-filter: plugins
	cargo bench -p weir --bench filter_call

bench-runtime: plugins
	cargo bench -p weir --bench reload_and_memory

bench-proxy: build
	host/benches/proxy_vs_nginx.sh

bench-tls: build
	host/benches/tls_vs_nginx.sh

bench-idle: build
	host/benches/idle_memory.sh

bench-standard: build plugins
	host/benches/standard_filters.sh

bench-waf: build plugins
	host/benches/waf_vs_modsecurity.sh

bench-redis: build plugins
	host/benches/redis_store.sh

bench-observability: build
	cargo bench -p weir --bench access_log
	host/benches/observability.sh

clean:
	cargo clean

bench-cache: build
	host/benches/cache_vs_nginx.sh
