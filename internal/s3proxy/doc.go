// Package s3proxy is a fault-injecting reverse proxy for tests that put it
// between an S3 client and an S3-compatible server. With configurable
// probabilities it answers 503 SlowDown, delays a request, resets the
// connection before forwarding, or forwards and then resets instead of
// answering (the server acted, the client never learns it). Decisions come
// from a seeded generator, so a test sees the same faults in the same order
// of requests, and every injected fault is counted.
package s3proxy
