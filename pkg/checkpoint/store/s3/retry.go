package s3

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/middleware"

	"github.com/streamd/streamd/pkg/checkpoint/store"
)

// budgetRetryer is the SDK's standard retryer (jittered exponential backoff
// up to MaxBackoff, the same errors retried) with a time budget per
// request on top of its attempts: a request is retried until it has made
// MaxAttempts attempts and has been failing for RetryFor, so an endpoint
// that answers 503 for a few minutes delays a sink instead of failing it.
// It also tells Retrying which requests are being retried now.
type budgetRetryer struct {
	aws.RetryerV2
	budget   time.Duration // 0: the standard retryer's MaxAttempts only
	requests *retrying
}

// MaxAttempts implements aws.Retryer: with a budget GetRetryToken decides
// (0 is no limit for the SDK's retry loop).
func (r budgetRetryer) MaxAttempts() int {
	if r.budget > 0 {
		return 0
	}
	return r.RetryerV2.MaxAttempts()
}

// GetRetryToken implements aws.Retryer. It is called after each failed
// attempt that may be retried, with the request's context: the request
// counts as retrying from its first failure, and gets no more retries once
// it has made its attempts and been failing for the budget. That error
// wraps store.ErrRetryLimit.
func (r budgetRetryer) GetRetryToken(ctx context.Context, opErr error) (func(error) error, error) {
	if op, ok := ctx.Value(requestKey{}).(*request); ok {
		attempts := r.requests.failed(op, opErr)
		if r.budget > 0 && attempts >= r.RetryerV2.MaxAttempts() {
			if d := time.Since(op.firstFailure()); d >= r.budget {
				return nil, fmt.Errorf("%w: retried %d times for %s (s3.retryFor %s)", store.ErrRetryLimit, attempts, d.Round(time.Second), r.budget)
			}
		}
	}
	return r.RetryerV2.GetRetryToken(ctx, opErr)
}

// requestKey keys the *request of one S3 call in its context.
type requestKey struct{}

// request is one S3 call, across its attempts.
type request struct {
	mu       sync.Mutex
	first    time.Time // first failed attempt, zero before
	failures int       // failed attempts
}

func (q *request) firstFailure() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.first
}

// retrying tracks the requests of a client that are being retried.
type retrying struct {
	mu      sync.Mutex
	n       int // requests past a failed attempt, not yet done
	since   time.Time
	lastErr error
}

// failed records a failed attempt of q and returns q's failed attempts.
func (t *retrying) failed(q *request, err error) int {
	q.mu.Lock()
	first := q.first.IsZero()
	if first {
		q.first = time.Now()
	}
	q.failures++
	at, n := q.first, q.failures
	q.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if first {
		if t.n == 0 || at.Before(t.since) {
			t.since = at
		}
		t.n++
	}
	t.lastErr = err
	return n
}

func (t *retrying) done(q *request) {
	if q.firstFailure().IsZero() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 {
		t.lastErr = nil
	}
}

// err returns the failure being retried, nil when no request is.
func (t *retrying) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		return nil
	}
	return &store.RetryError{Requests: t.n, Since: t.since, Err: t.lastErr}
}

// track is an SDK middleware that gives every call its *request, so the
// retryer can tell how long the call has been failing.
func (t *retrying) track(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("streamdRetryBudget",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			q := &request{}
			defer t.done(q)
			return next.HandleInitialize(context.WithValue(ctx, requestKey{}, q), in)
		}), middleware.Before)
}
