# syntax=docker/dockerfile:1
#
# streamd container image: a static binary on distroless, running as the
# nonroot user (65532). The image writes nothing outside mounted volumes, so
# it runs with a read-only root filesystem; mount writable volumes for the
# data directory (/var/lib/streamd), /tmp and any local output directory.
#
#   docker build --build-arg VERSION=v0.1.0 --build-arg REVISION=$(git rev-parse HEAD) -t streamd .

# Base images are pinned by digest (the multi-platform index), so a build
# is repeatable and a retagged image cannot slip in. To update, resolve the
# tag again (`crane digest golang:1.26-bookworm`, `crane digest
# gcr.io/distroless/static-debian12:nonroot`, or docker-library/repo-info for
# the Go image) and replace both the tag comment and the digest.
# golang:1.26-bookworm (Go 1.26.5)
FROM golang:1.26-bookworm@sha256:551752d3ad9de9923190bf5280500617ed8fee287ffb4b0220e770ef89346258 AS build
WORKDIR /src

# Modules first: this layer is reused as long as go.mod and go.sum do not change.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/streamd/streamd/internal/version.Version=${VERSION} -X github.com/streamd/streamd/internal/version.Revision=${REVISION}" \
      -o /out/streamd ./cmd/streamd \
 && mkdir -p /out/data

# gcr.io/distroless/static-debian12:nonroot
FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="streamd" \
      org.opencontainers.image.description="Stream processor: Kafka/Kinesis in, event-time windows and rules, Parquet and alerts out" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/streamd /streamd
# The data directory exists and belongs to the nonroot user, so plain
# `docker run` works too; with --read-only (and on Kubernetes) mount a
# volume here.
COPY --from=build --chown=65532:65532 /out/data /var/lib/streamd
COPY examples/line-monitoring.yaml /etc/streamd/pipeline.yaml
# The example pipeline listens on ${STREAMD_LISTEN}, loopback by default for
# laptops; in a container it must be reachable for probes and scrapes.
# Its output goes under the data directory, not the (read-only) working dir.
ENV STREAMD_LISTEN=:9249 \
    DEMO_OUT=/var/lib/streamd/line-monitoring
USER 65532:65532
EXPOSE 9249
ENTRYPOINT ["/streamd"]
CMD ["run", "--config", "/etc/streamd/pipeline.yaml"]
