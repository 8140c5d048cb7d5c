# frostmint — the two commands of the README are `make demo` and `make test`.

GO        ?= go
BIN       := bin
GOFLAGS_T ?= -race -count=1
# Fuzzing (.ci/fuzz-all): each target alone for this long; make test fuzzes
# each for FUZZTIME_SHORT after the suite, make fuzz for FUZZTIME.
FUZZTIME       ?= 30s
FUZZTIME_SHORT ?= 2s

include Makefile.proto.mk

.PHONY: all build demo test test-short vet fmt-check lint bench fuzz clean helm

all: build

## build: the frostmint CLI and the two daemons into ./bin
build:
	$(GO) build -o $(BIN)/ ./services/...

## demo: start a local 2-of-3 cluster, mint, verify, print the claims, stop it
demo: build
	./$(BIN)/frostmint demo

## test: static checks and the whole test suite (unit, Rego, fuzz seeds, e2e with the real binaries),
## then every fuzz target for FUZZTIME_SHORT
test: fmt-check vet helm
	$(GO) test $(GOFLAGS_T) -timeout 20m ./...
	GO=$(GO) ./.ci/fuzz-all $(FUZZTIME_SHORT)

## fuzz: every fuzz target, one at a time, for FUZZTIME each (FUZZ_RUN=regexp picks targets);
## a crasher is written to the package's testdata/fuzz/<FuzzName>/: commit it with the fix
fuzz:
	GO=$(GO) ./.ci/fuzz-all $(FUZZTIME)

## helm: the helm binary the chart tests (k8s/) run, built from the Go module proxy into ./.bin
## (git-ignored) outside our module graph, only when missing or another version (cold: a few minutes)
HELM_VERSION ?= v3.22.0
helm:
	@if ! $(GO) version -m "$(PROTO_BIN)/helm" 2>/dev/null | grep -Eq '^\s+mod\s+helm.sh/helm/v3\s+$(HELM_VERSION)\s'; then \
		echo "building helm $(HELM_VERSION) into $(PROTO_BIN)"; \
		tmp="$$(mktemp -d)" && cd "$$tmp" && \
		GOBIN="$(PROTO_BIN)" GOFLAGS= $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION) && \
		rm -rf "$$tmp"; \
	fi

test-short:
	$(GO) test -short -count=1 ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## lint: proto lint and generated-code freshness (needs the buf toolchain, built on first use)
lint: lint-proto generate-check

## bench: Go benchmarks of the hot paths, then `frostmint bench` runs (2-of-3 sequential and 64 callers,
## 3-of-5 64 callers, distinct requests, audit on tmpfs); ends with NAME VALUE UNIT lines (.ci/bench)
bench: build
	GO=$(GO) FROSTMINT=./$(BIN)/frostmint ./.ci/bench

clean:
	rm -rf $(BIN) .bin
