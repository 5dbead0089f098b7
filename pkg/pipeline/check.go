package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamd/streamd/pkg/operator"
)

// checker is implemented by components that can verify before the pipeline
// starts that what they talk to is there: brokers and topics, streams,
// buckets and credentials, writable directories.
type checker interface {
	Check(ctx context.Context) error
}

// CheckConnectivity runs every component's startup check and returns one
// error naming each component that failed and why, or nil.
func CheckConnectivity(ctx context.Context, job operator.Job) error {
	var errs []error
	for _, s := range job.Sources {
		if c, ok := s.Source.(checker); ok {
			if err := c.Check(ctx); err != nil {
				errs = append(errs, fmt.Errorf("source %q: %w", s.Name, err))
			}
		}
	}
	for _, s := range job.Sinks {
		if c, ok := s.Sink.(checker); ok {
			if err := c.Check(ctx); err != nil {
				errs = append(errs, fmt.Errorf("sink %q: %w", s.Name, err))
			}
		}
	}
	if cp := job.Checkpoint; cp != nil {
		if c, ok := cp.Store.(checker); ok {
			if err := c.Check(ctx); err != nil {
				errs = append(errs, fmt.Errorf("checkpoint store: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}
