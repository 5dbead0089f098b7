#!/usr/bin/env bash
# Installs the MinIO server used by the S3 integration tests and by
# scripts/minio-dev.sh into .cache/bin, built from source with `go install`
# (MinIO publishes no semver tags, so a pseudo-version of a commit the Go
# module proxy serves is pinned). The build takes a few minutes.
#
# Idempotent: does nothing when .cache/bin/minio exists and the stamp file
# next to it records the pinned version.
#
# The pinned commit supports conditional writes (If-None-Match: * on
# PutObject and CompleteMultipartUpload), which the checkpoint store relies
# on for atomic manifest creation.
set -euo pipefail

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="$root/.cache/bin"
stamp="$bin/.minio.version"

if [ -x "$bin/minio" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$MINIO_VERSION" ]; then
	echo "minio $MINIO_VERSION already installed: $bin/minio"
	exit 0
fi

mkdir -p "$bin"
echo "building minio $MINIO_VERSION into $bin (takes a few minutes)"
# GOFLAGS from the environment (e.g. -mod=vendor) must not apply to a build
# outside this module; GOTOOLCHAIN=local keeps the installed Go.
GOFLAGS= GOTOOLCHAIN=local GOBIN="$bin" go install -trimpath "github.com/minio/minio@$MINIO_VERSION"
echo "$MINIO_VERSION" >"$stamp"
echo "installed: $("$bin/minio" --version 2>&1 | head -n1)"
