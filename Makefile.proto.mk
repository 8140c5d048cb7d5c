# Makefile.proto.mk — Protobuf toolchain and code generation.
#
# Include from the main Makefile:   include Makefile.proto.mk
#
# Only Go is needed: buf, protoc-gen-go and protoc-gen-go-grpc are built from
# the `tool` directives in go.mod (so their versions are exactly the ones in
# go.mod/go.sum) into ./.bin, which is git-ignored.
#
# Targets:
#   tools           build buf + plugins into ./.bin
#   generate        regenerate proto/**/*.pb.go with buf (local plugins only)
#   lint-proto      buf lint
#   generate-check  regenerate, then fail if proto/ differs from git

# Directory of this fragment (the module root), independent of `make -C` or
# of where the including Makefile lives. Must be evaluated at include time.
PROTO_ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
PROTO_BIN  := $(PROTO_ROOT)/.bin
PROTO_GO   ?= go
PROTO_BUF  := $(PROTO_BIN)/buf
PROTO_TOOL_PKGS := \
	github.com/bufbuild/buf/cmd/buf \
	google.golang.org/protobuf/cmd/protoc-gen-go \
	google.golang.org/grpc/cmd/protoc-gen-go-grpc

.PHONY: tools generate lint-proto generate-check

# `go install` inside the module resolves each package at the version that
# go.mod selects; the Go build cache makes repeat runs cheap.
tools:
	cd "$(PROTO_ROOT)" && GOBIN="$(PROTO_BIN)" $(PROTO_GO) install $(PROTO_TOOL_PKGS)

# Old generated files are removed first so that a deleted or renamed .proto
# leaves no orphaned .pb.go behind (generate-check then reports it).
generate: tools
	cd "$(PROTO_ROOT)" && find proto -type f -name '*.pb.go' -delete
	cd "$(PROTO_ROOT)" && PATH="$(PROTO_BIN):$$PATH" "$(PROTO_BUF)" generate

lint-proto: tools
	cd "$(PROTO_ROOT)" && "$(PROTO_BUF)" lint

generate-check: generate
	@cd "$(PROTO_ROOT)" && \
	if ! git diff --exit-code --stat -- proto; then \
		echo "generate-check: generated code under proto/ is stale; run 'make generate' and commit the result" >&2; \
		exit 1; \
	fi; \
	untracked="$$(git ls-files --others --exclude-standard -- proto)"; \
	if [ -n "$$untracked" ]; then \
		echo "generate-check: untracked files under proto/ (generated but not committed):" >&2; \
		echo "$$untracked" >&2; \
		exit 1; \
	fi; \
	echo "generate-check: generated code is up to date"
