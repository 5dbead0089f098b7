# streamd — common tasks. `make help` lists them.
GO       ?= go
PKGS     ?= ./...
BENCHTIME ?= 1x
FUZZTIME ?= 30s

.PHONY: help deps test test-short bench fuzz lint fmt vet demo build clean

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

deps: ## install test dependencies (Node.js + DuckDB reader, Prometheus + promtool)
	bash scripts/install-test-deps.sh
	bash scripts/install-prometheus.sh

test: deps ## everything CI runs: vet, race tests (incl. fuzz seeds and golden scenarios), benchmarks once
	bash scripts/test.sh

test-short: ## race tests without installing anything (tests needing DuckDB/Prometheus skip outside CI)
	$(GO) test -race $(PKGS)

bench: ## run every benchmark (BENCHTIME=2s for figures)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

fuzz: ## fuzz every decoder and parser for FUZZTIME each
	bash scripts/fuzz.sh $(FUZZTIME)

lint: fmt vet ## gofmt and go vet

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

build: ## build bin/streamd
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/streamd ./cmd/streamd

demo: ## run the line-monitoring demo (Ctrl-C to stop)
	$(GO) run ./cmd/streamd run --config examples/line-monitoring.yaml

clean:
	rm -rf bin out
