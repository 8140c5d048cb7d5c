# frostmint — the two commands of the README are `make demo` and `make test`.

GO        ?= go
BIN       := bin
GOFLAGS_T ?= -race -count=1

include Makefile.proto.mk

.PHONY: all build demo test test-short vet fmt-check lint bench clean

all: build

## build: the frostmint CLI and the two daemons into ./bin
build:
	$(GO) build -o $(BIN)/ ./services/...

## demo: start a local 2-of-3 cluster, mint, verify, print the claims, stop it
demo: build
	./$(BIN)/frostmint demo

## test: static checks and the whole test suite (unit, Rego, fuzz seeds, e2e with the real binaries)
test: fmt-check vet
	$(GO) test $(GOFLAGS_T) -timeout 20m ./...

test-short:
	$(GO) test -short -count=1 ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## lint: proto lint and generated-code freshness (needs the buf toolchain, built on first use)
lint: lint-proto generate-check

## bench: Go benchmarks of the hot paths
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./signer/frost/ ./signer/keystore/ ./coordinator/ ./verifier/... ./policy/

clean:
	rm -rf $(BIN) .bin
