// Package admin serves streamd's HTTP endpoints: the probes and /metrics
// (always open, optionally on an address of their own) and the /v1 API.
// Read-only endpoints (/v1/status, GET /v1/rules, /v1/rulestats) and
// state-changing ones (PUT/DELETE /v1/rules/{id}, POST /v1/savepoint) each
// need a credential: a bearer token read from a file (a Kubernetes Secret,
// re-read when it changes, compared in constant time, never logged), or a
// client certificate verified by the listener (mTLS). A missing or invalid
// credential is 401, a read-only credential on a state change is 403, and
// a body over the limit is 413.
package admin
