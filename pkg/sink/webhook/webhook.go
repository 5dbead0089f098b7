package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/streamd/streamd/internal/promreg"
	"github.com/streamd/streamd/internal/retry"
	"go.uber.org/zap"

	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
)

// Sink POSTs the rows of a stream to a webhook.
type Sink struct {
	cfg     Config
	url     string // redacted, for logs and errors
	header  http.Header
	client  *http.Client
	logger  *zap.Logger
	metrics *metrics
	// sleep waits between attempts; tests replace it to run without waiting.
	sleep func(ctx context.Context, d time.Duration) error
}

var (
	_ sink.Sink   = (*Sink)(nil)
	_ sink.Writer = (*Writer)(nil)
)

type metrics struct {
	requests *prometheus.CounterVec
	retries  prometheus.Counter
}

// New returns a webhook sink. A nil logger logs nothing; a nil reg
// registers no metrics.
func New(cfg Config, logger *zap.Logger, reg prometheus.Registerer) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new webhook sink: %w", err)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	header := make(http.Header, len(cfg.Headers)+1)
	for k, v := range cfg.Headers {
		header.Set(k, v)
	}
	header.Set("Content-Type", "application/json")
	f := promreg.With(reg)
	labels := prometheus.Labels{"sink": cfg.Name}
	return &Sink{
		cfg:    cfg,
		url:    redact(cfg.URL),
		header: header,
		client: &http.Client{Timeout: cfg.Timeout},
		logger: logger.With(zap.String("sink", cfg.Name)),
		metrics: &metrics{
			requests: f.NewCounterVec(prometheus.CounterOpts{
				Name:        "streamd_webhook_requests_total",
				Help:        "Webhook requests by HTTP status code, or \"error\" when no answer arrived.",
				ConstLabels: labels,
			}, []string{"code"}),
			retries: f.NewCounter(prometheus.CounterOpts{
				Name:        "streamd_webhook_retries_total",
				Help:        "Webhook requests sent again after a network error, 429 or 5xx.",
				ConstLabels: labels,
			}),
		},
		sleep: sleepCtx,
	}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// NewWriter returns the writer of one producing task.
func (s *Sink) NewWriter(_ string, schema *record.Schema) (sink.Writer, error) {
	if schema == nil {
		return nil, errors.New("new webhook writer: schema is nil")
	}
	return &Writer{sink: s, schema: schema}, nil
}

// Close releases idle connections.
func (s *Sink) Close(context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}

// Writer POSTs the batches of one producing task. Write returns when every
// row of the batch has been accepted by the webhook (2xx).
type Writer struct {
	sink   *Sink
	schema *record.Schema
	body   []byte // reused request body
}

// Write delivers b in requests of at most Config.MaxRows rows, retrying
// transient failures; a permanent failure returns an error and the rows of
// later requests of the batch are not sent.
func (w *Writer) Write(ctx context.Context, b *record.Batch) error {
	maxRows := w.sink.cfg.MaxRows
	for start := 0; start < b.Len(); start += maxRows {
		end := min(start+maxRows, b.Len())
		w.body = append(w.body[:0], '[')
		for i := start; i < end; i++ {
			if i > start {
				w.body = append(w.body, ',')
			}
			w.body = record.AppendJSON(w.body, w.schema, b.Row(i))
		}
		w.body = append(w.body, ']')
		if err := w.sink.deliver(ctx, w.body); err != nil {
			return fmt.Errorf("write webhook rows %d-%d: %w", start, end-1, err)
		}
	}
	return nil
}

// Close does nothing: Write delivers synchronously.
func (w *Writer) Close(context.Context) error { return nil }

// idempotencyKey is derived from the body only, so the same rows sent
// again, by a retry or after a restart, carry the same key.
func idempotencyKey(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:16])
}

// deliver POSTs one body until it is accepted, a permanent error occurs,
// attempts run out or ctx ends.
func (s *Sink) deliver(ctx context.Context, body []byte) error {
	key := idempotencyKey(body)
	loop := retry.Loop{
		Retries: s.cfg.MaxAttempts - 1,
		Backoff: retry.Exponential(s.cfg.InitialBackoff, s.cfg.MaxBackoff, 0.5),
		Pause:   s.sleep,
		OnRetry: func(n int, wait time.Duration, err error) {
			s.metrics.retries.Inc()
			s.logger.Warn("webhook request failed, retrying",
				zap.String("url", s.url), zap.Int("attempt", n), zap.Duration("wait", wait), zap.Error(err))
		},
	}
	err := loop.Run(ctx, func() error { return s.post(ctx, body, key) })
	var ex *retry.Exhausted
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ex):
		return fmt.Errorf("post to %s: gave up after %d attempts: %w", s.url, ex.Attempts, ex.Err)
	case ctx.Err() != nil:
		return fmt.Errorf("post to %s: %w", s.url, ctx.Err())
	}
	return err
}

// post sends one attempt. A retryable failure returns an error marked with
// the server's Retry-After (retry.After) when it sent one; a permanent one
// an error marked retry.Permanent.
func (s *Sink) post(ctx context.Context, body []byte, key string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return retry.Permanent(fmt.Errorf("build request for %s: %w", s.url, err))
	}
	for k, v := range s.header {
		req.Header[k] = v
	}
	req.Header.Set("Idempotency-Key", key)
	resp, err := s.client.Do(req)
	if err != nil {
		s.metrics.requests.WithLabelValues("error").Inc()
		// The client's error repeats the URL, whose query may hold a token.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post: %w", err)
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	_ = resp.Body.Close()
	s.metrics.requests.WithLabelValues(strconv.Itoa(resp.StatusCode)).Inc()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusTooManyRequests || code >= 500:
		err := fmt.Errorf("status %d: %s", code, snippet)
		if d := retryAfter(resp.Header.Get("Retry-After"), time.Now()); d > 0 {
			return retry.After(min(d, s.cfg.MaxRetryAfter), err)
		}
		return err
	default:
		return retry.Permanent(fmt.Errorf("post to %s: status %d: %s", s.url, code, snippet))
	}
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
