// Package s3 implements store.Store on Amazon S3 and S3-compatible servers
// (MinIO) with aws-sdk-go-v2.
//
// Atomic creates use conditional writes (If-None-Match: *) on PutObject and
// CompleteMultipartUpload, so a manifest or a staged file is never replaced.
// Transient failures (throttling, 5xx, reset connections) are retried by the
// SDK's standard retryer up to Config.MaxAttempts with jittered exponential
// backoff, without the client-side retry quota: attempts are already
// bounded, and a quota shared by every call would turn a burst of
// throttling into failures of unrelated calls.
//
// Request bodies must be rewindable for signing and retries over plain
// HTTP, so readers that are not io.ReadSeeker are buffered in memory first;
// the Parquet sink hands over whole parts as byte slices anyway.
package s3
