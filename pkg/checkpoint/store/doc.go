// Package store is the object-store contract that checkpoints and sinks
// share: checkpoint manifests (created atomically with PutIfAbsent), state
// blobs (Put/Get), and large staged files written through multipart uploads
// that stay open across checkpoints.
//
// Backends live in subpackages: local (a directory on disk, the embedded
// default) and s3 (Amazon S3 and compatible servers). storetest holds the
// conformance suite every backend passes. The package is a leaf: it imports
// nothing of the runtime.
package store
