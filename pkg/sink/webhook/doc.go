// Package webhook is the HTTP webhook sink, used for alerts: every batch is
// POSTed to a URL as one JSON array of row objects (Content-Type
// application/json), split into requests of at most Config.MaxRows rows.
//
// Delivery is at-least-once. Network errors, 429 and 5xx answers are
// retried with jittered exponential backoff (a Retry-After header, in
// seconds or as an HTTP date, is honoured up to Config.MaxRetryAfter);
// any other 4xx is permanent and fails the write at once. Every request
// carries an Idempotency-Key header derived from the SHA-256 of its body,
// so a receiver can drop the duplicates that retries (or a replay after a
// restart) produce; alert rows carry deterministic ids for the same reason.
//
// Configured headers (typically Authorization) are sent with every request
// and never logged; log lines name the URL without user info or query.
package webhook
