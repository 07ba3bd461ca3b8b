# gist: the two commands.
#   make serve   prepare everything (libtorch, default models, grpcurl), build, serve gRPC on
#                127.0.0.1:50051 and the HTTP/JSON API on 127.0.0.1:8080
#   make test    prepare everything, then run the whole test suite
# And: make bench (the benchmark suite, writes BENCHMARKS.md), make bench-quick (its smoke test).
# Both are idempotent; downloads are cached in ~/.cache/gist.

CARGO ?= cargo
LISTEN ?= 127.0.0.1:50051
HTTP_LISTEN ?= 127.0.0.1:8080

.PHONY: serve test setup build lint bench bench-quick

serve: setup
	$(CARGO) build --release --locked
	./target/release/gist serve --listen $(LISTEN) --http-listen $(HTTP_LISTEN) --models models

# The tests build with the release profile: the dependencies `make serve` built are reused
# (one build, not two), and the model tests run at release speed.
test: setup
	scripts/layers.sh
	bash scripts/deploy-venv.sh
	bash scripts/api-clients.sh
	$(CARGO) test --release --locked

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release --locked

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

bench:
	bench/run.sh

bench-quick:
	bench/run.sh --quick
