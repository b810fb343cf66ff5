# tandem — run `make help` for the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin/tandem
GOTEST_FLAGS ?= -race -timeout 40m

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install what the build and tests need: Debian packages (git) and Go modules
	@command -v git >/dev/null || { echo "installing git"; apt-get update -qq && apt-get install -y -qq git; }
	@command -v jq >/dev/null && command -v curl >/dev/null || { echo "installing jq and curl (the CI examples' scripts)"; apt-get update -qq && apt-get install -y -qq jq curl; }
	$(GO) mod download

.PHONY: build
build: deps ## Build bin/tandem, version stamped
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/tandem

.PHONY: lint
lint: ## gofmt check and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^hack/tools/')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: test
test: deps tools lint ## Run every test: unit tests and the tiers against real local clusters and a real git server
	$(GO) test $(GOTEST_FLAGS) ./...

.PHONY: test-short
test-short: ## Quick loop: unit tests only (-short skips the tiers that start processes)
	$(GO) test -short ./...

.PHONY: tidy
tidy: ## go mod tidy
	$(GO) mod tidy

DEMO_KUBECONFIG := $(CURDIR)/.cache/clusters/kubeconfig

.PHONY: demo
demo: build clusters-up ## Start local clusters blue and green and run tandem serve on examples/manifest: push a commit, signed webhook, both clusters updated
	$(BIN) validate --manifest-dir examples/manifest
	$(GO) run ./hack/demo --tandem $(BIN) --kubeconfig $(DEMO_KUBECONFIG) --manifest examples/manifest
	@echo
	@echo "The clusters keep running. Look around with:  export KUBECONFIG=$(DEMO_KUBECONFIG); kubectl --context green get deploy -A"
	@echo "Stop them with:  make clusters-down"

.PHONY: bench
bench: deps tools ## Benchmarks, tandem side by side with its baselines (see README, Performance); TANDEM_BENCH_RELEASES=N
	$(GO) test -run '^$$' -bench . -benchmem ./render/
	$(GO) test -run '^$$' -bench . -benchtime=1x -timeout 60m ./e2e/bench/

IMAGE ?= ghcr.io/tandem-gitops/tandem:$(VERSION)

.PHONY: image
image: ## Build the container image $(IMAGE) from Dockerfile (needs Docker; static binary, distroless, non-root)
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

.PHONY: clean
clean: ## Remove build output
	rm -rf bin

-include hack/clusters.mk
