// Package storetest is the conformance suite of store.Store: a table of
// behaviours that every backend (local directory, S3, in-process fake S3,
// MinIO) must show, so checkpoint code can rely on the contract and not on
// a backend.
package storetest
