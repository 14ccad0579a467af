# Switchboard. `make run` starts a node; `make test` runs every check and test.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
GO ?= go
GOBIN := $(shell $(GO) env GOPATH)/bin
PROTOC_GEN_GO := $(GOBIN)/protoc-gen-go
STATICCHECK := $(GOBIN)/staticcheck
# Tests need a Go toolchain (the race detector needs cgo); make test also
# installs protoc when it is missing.
export CGO_ENABLED := 1

.PHONY: run build test test-go test-short bench lint modcheck tidy-check proto proto-check protoc fuzz clean web test-js test-sdk test-web

build:
	$(GO) build -o bin/switchboard ./cmd/switchboard

run: build
	./bin/switchboard serve --listen 127.0.0.1:8080 --data ./data

# Everything CI checks (.ci/run runs it), cheapest first: vet,
# staticcheck, the module zip, go.mod tidiness, the generated protobuf
# code against its .proto, then every test with the race detector and a
# goroutine-leak check per package, then the TypeScript SDK's and the web
# app's tests (test-js, below).
test: lint tidy-check proto-check test-go test-js

test-go:
	$(GO) test -race -count=1 -timeout 18m ./...

test-short:
	$(GO) test -short -count=1 ./...

# Go benchmarks and short load-test runs against a node process; writes
# docs/benchmarks.md (about 15 minutes on 2 cores). BENCHFLAGS=-quick
# checks the tool in a minute; BENCHFLAGS="-only live" runs one part.
# The live room's runs alternate with a reference build of BENCH_REF (the
# commit before the live-room fan-out work), built from git into bin/, so
# the report's ratios are of one sitting; BENCH_REF= leaves it out.
BENCHFLAGS ?=
BENCH_REF ?= 2d49395
bench: build $(if $(BENCH_REF),bin/switchboard-ref-$(BENCH_REF))
	mkdir -p docs
	$(GO) run ./cmd/benchreport -bin bin/switchboard $(if $(BENCH_REF),-ref-bin bin/switchboard-ref-$(BENCH_REF) -ref-name $(BENCH_REF)) $(BENCHFLAGS)

bin/switchboard-ref-%:
	src=$$(mktemp -d) && trap 'rm -rf "$$src"' EXIT && \
	git archive $* | tar -x -C "$$src" && \
	(cd "$$src" && $(GO) build -o $(CURDIR)/$@ ./cmd/switchboard)

# Each fuzz target for FUZZTIME (default 60s).
FUZZTIME ?= 60s
fuzz:
	$(GO) test ./protocol -run '^$$' -fuzz FuzzDecodeRequest -fuzztime $(FUZZTIME)
	$(GO) test ./protocol -run '^$$' -fuzz FuzzHTTPArgs -fuzztime $(FUZZTIME)
	$(GO) test ./protocol -run '^$$' -fuzz FuzzCheckJSON -fuzztime $(FUZZTIME)
	$(GO) test ./actors/channel -run '^$$' -fuzz FuzzObjectValidation -fuzztime $(FUZZTIME)
	$(GO) test ./protocol -run '^$$' -fuzz FuzzDecodeRecord -fuzztime $(FUZZTIME)
	$(GO) test ./protocol -run '^$$' -fuzz FuzzEventMessage -fuzztime $(FUZZTIME)
	$(GO) test ./protocol -run '^$$' -fuzz FuzzAppendMessage -fuzztime $(FUZZTIME)

# vet and staticcheck, also over the files only test builds compile
# (the testhooks tag: cmd/switchboard/testhooks.go), and modcheck.
TESTHOOK_PKGS := ./cluster/... ./cmd/switchboard/...
lint: $(STATICCHECK) modcheck
	$(GO) vet ./...
	$(GO) vet -tags testhooks $(TESTHOOK_PKGS)
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags testhooks $(TESTHOOK_PKGS)

# The module zip `go get` builds must be valid: no path Windows reserves
# (aux.go), no two paths that differ only in case, no oversized file.
modcheck:
	$(GO) run ./cmd/modcheck

# go.mod and go.sum are what `go mod tidy` makes of them (changes nothing).
tidy-check:
	$(GO) mod tidy -diff

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Regenerates cluster/clusterpb from its .proto (the generated code is
# committed; building and testing never need protoc).
proto: $(PROTOC_GEN_GO) protoc
	cd cluster/clusterpb && PATH="$(GOBIN):$$PATH" protoc --go_out=. --go_opt=paths=source_relative cluster.proto

# The committed cluster.pb.go is what cluster.proto generates: regenerate
# into a temporary directory and compare. The line naming protoc's own
# version is left out (protoc-gen-go writes the code; protoc only parses).
proto-check: $(PROTOC_GEN_GO) protoc
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	(cd cluster/clusterpb && PATH="$(GOBIN):$$PATH" protoc --go_out="$$tmp" --go_opt=paths=source_relative cluster.proto); \
	diff -u <(grep -v '^// 	protoc  ' cluster/clusterpb/cluster.pb.go) <(grep -v '^// 	protoc  ' "$$tmp/cluster.pb.go") \
		|| { echo "cluster/clusterpb/cluster.pb.go does not match cluster.proto: run make proto"; exit 1; }

# protoc is Debian's protobuf-compiler, installed when missing (as root;
# apt-get update first if the package lists are stale or empty).
protoc:
	@command -v protoc >/dev/null && exit 0; \
	if [ "$$(id -u)" != 0 ]; then echo "protoc is missing: install Debian's protobuf-compiler (as root)"; exit 1; fi; \
	echo "installing protoc (Debian protobuf-compiler)"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y -q protobuf-compiler >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q protobuf-compiler; }

$(PROTOC_GEN_GO):
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12

clean:
	rm -rf bin data

# ---- TypeScript SDK (sdk/typescript), web app and console (web/) ----
# npm packages come from the committed package-lock.json files (npm ci);
# the end-to-end tests drive Debian's chromium (installed when missing),
# never a downloaded browser. `make run` needs none of this: web/dist is
# committed and embedded in the binary.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM

sdk/typescript/node_modules/.package-lock.json: sdk/typescript/package-lock.json
	cd sdk/typescript && npm ci --no-audit --no-fund
web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund

$(CHROMIUM):
	@echo "installing Debian's chromium (and an emoji font, for readable screenshots)"
	if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium fonts-noto-color-emoji; \
	else sudo -n apt-get update -qq && sudo -n apt-get install -y -qq chromium fonts-noto-color-emoji; fi

# Rebuilds web/dist from web/src and the SDK: commit the result.
web: web/node_modules/.package-lock.json
	cd web && node scripts/build.mjs

# SDK: strict type check, unit tests, the package build, integration tests
# against real nodes of bin/switchboard.
test-sdk: build sdk/typescript/node_modules/.package-lock.json
	cd sdk/typescript && npm run -s typecheck
	cd sdk/typescript && node scripts/test.mjs unit
	cd sdk/typescript && npm run -s build
	cd sdk/typescript && SWITCHBOARD_BIN=$(CURDIR)/bin/switchboard node scripts/test.mjs integration

# Web: type check, web/dist up to date with its sources, then Chromium
# end to end against bin/switchboard (screenshots in web/test-artifacts/).
test-web: build web/node_modules/.package-lock.json $(CHROMIUM)
	cd web && npm run -s typecheck
	cd web && node scripts/build.mjs --check
	cd web && SWITCHBOARD_BIN=$(CURDIR)/bin/switchboard node scripts/e2e.mjs

test-js: test-sdk test-web
