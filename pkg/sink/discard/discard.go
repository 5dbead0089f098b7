package discard

import (
	"context"
	"sync/atomic"

	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
)

// Sink drops rows. It is safe for concurrent use.
type Sink struct {
	rows atomic.Int64
}

var (
	_ sink.Sink   = (*Sink)(nil)
	_ sink.Writer = (*writer)(nil)
)

// New returns a discarding sink.
func New() *Sink { return &Sink{} }

// Rows returns how many rows all writers have dropped.
func (s *Sink) Rows() int64 { return s.rows.Load() }

// NewWriter returns a writer for one task.
func (s *Sink) NewWriter(string, *record.Schema) (sink.Writer, error) { return &writer{s: s}, nil }

// Close implements sink.Sink.
func (s *Sink) Close(context.Context) error { return nil }

type writer struct{ s *Sink }

// Write counts and drops the rows of b.
func (w *writer) Write(_ context.Context, b *record.Batch) error {
	w.s.rows.Add(int64(b.Len()))
	return nil
}

// Close implements sink.Writer.
func (w *writer) Close(context.Context) error { return nil }
