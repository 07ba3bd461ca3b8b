# gist: the two commands.
#   make serve   prepare everything (libtorch, default models, grpcurl), build, serve gRPC on
#                127.0.0.1:50051 and the HTTP/JSON API on 127.0.0.1:8080
#   make test    prepare everything, then run the whole test suite
# And: make bench (the benchmark suite, writes BENCHMARKS.md), make bench-quick (its smoke test).
# Both are idempotent; downloads are cached in ~/.cache/gist.

CARGO ?= cargo
LISTEN ?= 127.0.0.1:50051
HTTP_LISTEN ?= 127.0.0.1:8080

# The libtorch-free build (README, "Runtimes"): ONNX Runtime only, what the image ships.
ONNX_ONLY = --no-default-features --features onnx

.PHONY: serve test setup build build-onnx lint bench bench-quick fuzz

serve: setup
	$(CARGO) build --release --locked
	./target/release/gist serve --listen $(LISTEN) --http-listen $(HTTP_LISTEN) --models models

# The tests build with the release profile: the dependencies `make serve` built are reused
# (one build, not two), and the model tests run at release speed. Both builds are tested:
# the default one (ONNX Runtime and libtorch) and the ONNX-only one.
test: setup
	scripts/layers.sh
	bash scripts/deploy-venv.sh
	bash scripts/api-clients.sh
	$(CARGO) test --release --locked
	$(CARGO) test --release --locked $(ONNX_ONLY)
	bash scripts/fuzz.sh 5

# The fuzz targets of the text functions, FUZZ_SECONDS each (README, "Tests"): make fuzz FUZZ_SECONDS=60
FUZZ_SECONDS ?= 600
fuzz:
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release --locked

build-onnx: setup
	$(CARGO) build --release --locked $(ONNX_ONLY)

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings
	$(CARGO) clippy --all-targets --locked $(ONNX_ONLY) -- -D warnings

bench:
	bench/run.sh

bench-quick:
	bench/run.sh --quick
