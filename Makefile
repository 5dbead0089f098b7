# streamd — common tasks. `make help` lists them.
GO       ?= go
PKGS     ?= ./...
BENCHTIME ?= 1x
FUZZTIME ?= 30s

.PHONY: help deps test test-short bench nexmark fuzz lint fmt vet golangci demo build clean dev-up dev-down

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

deps: ## install test dependencies: DuckDB reader, Prometheus, kcat, kinesis-local, MinIO
	bash scripts/install-test-deps.sh
	bash scripts/install-prometheus.sh
	bash scripts/install-kcat.sh
	bash scripts/install-kinesis-local.sh
	bash scripts/install-minio.sh

test: deps ## everything CI runs: vet, race tests (incl. fuzz seeds and golden scenarios), benchmarks once
	bash scripts/test.sh

test-short: ## race tests without installing anything (tests needing DuckDB/Prometheus skip outside CI)
	$(GO) test -race $(PKGS)

bench: ## run every benchmark (BENCHTIME=2s for figures)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

nexmark: ## Nexmark queries on one core over NEXMARK_EVENTS (default 1000000) JSON events, NEXMARK_COUNT (default 3) runs each: the table of events/s per core, CPU-seconds and peak RSS (3-4 min on the development machine; 20 min at most)
	NEXMARK_EVENTS=$${NEXMARK_EVENTS:-1000000} $(GO) test -run '^$$' -bench 'Nexmark' -benchtime 1x -cpu 1 -count $${NEXMARK_COUNT:-3} -timeout 20m ./examples/nexmark

fuzz: ## fuzz every decoder and parser for FUZZTIME each
	bash scripts/fuzz.sh $(FUZZTIME)

lint: fmt vet golangci ## gofmt, go vet and golangci-lint

golangci: ## golangci-lint (errorlint, revive, gosec, bodyclose, ...) at the pinned version, see .golangci.yml
	bash scripts/install-golangci-lint.sh
	.cache/bin/golangci-lint run $(PKGS)

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

dev-up: ## start local Kafka (kfake), kinesis-local and MinIO on fixed loopback ports
	bash scripts/kafka-dev.sh start
	bash scripts/kinesis-dev.sh start
	bash scripts/minio-dev.sh start

dev-down: ## stop the local servers started by dev-up (by PID)
	-bash scripts/minio-dev.sh stop
	-bash scripts/kinesis-dev.sh stop
	-bash scripts/kafka-dev.sh stop
