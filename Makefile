# Switchboard. `make run` starts a node; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
GO ?= go
GOBIN := $(shell $(GO) env GOPATH)/bin
PROTOC_GEN_GO := $(GOBIN)/protoc-gen-go
STATICCHECK := $(GOBIN)/staticcheck
# Tests need a Go toolchain and nothing else; the race detector needs cgo.
export CGO_ENABLED := 1

.PHONY: run build test test-short bench lint tidy-check proto fuzz clean

build:
	$(GO) build -o bin/switchboard ./cmd/switchboard

run: build
	./bin/switchboard serve --listen 127.0.0.1:8080 --data ./data

# Every test, with the race detector, and a goroutine-leak check per package.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 14m ./...

test-short:
	$(GO) test -short -count=1 ./...

# Go benchmarks and short load-test runs against a node process; writes
# docs/benchmarks.md (about 8 minutes on 2 cores). BENCHFLAGS=-quick
# checks the tool in a minute; BENCHFLAGS="-only live" runs one part.
BENCHFLAGS ?=
bench: build
	mkdir -p docs
	$(GO) run ./cmd/benchreport -bin bin/switchboard $(BENCHFLAGS)

fuzz:
	$(GO) test ./protocol -run '^$$' -fuzz FuzzDecodeRequest -fuzztime 60s
	$(GO) test ./protocol -run '^$$' -fuzz FuzzHTTPArgs -fuzztime 60s
	$(GO) test ./protocol -run '^$$' -fuzz FuzzDecodeRecord -fuzztime 60s

lint: $(STATICCHECK)
	$(GO) vet ./...
	$(STATICCHECK) ./...

tidy-check:
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Regenerates cluster/clusterpb from its .proto (the generated code is
# committed; tests never need protoc).
proto: $(PROTOC_GEN_GO)
	@command -v protoc >/dev/null || (echo "installing protoc (Debian protobuf-compiler)"; \
		sudo -n apt-get install -y protobuf-compiler 2>/dev/null || apt-get install -y protobuf-compiler)
	cd cluster/clusterpb && PATH="$(GOBIN):$$PATH" protoc --go_out=. --go_opt=paths=source_relative cluster.proto

$(PROTOC_GEN_GO):
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12

clean:
	rm -rf bin data
