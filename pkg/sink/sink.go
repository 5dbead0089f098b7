package sink

import (
	"context"

	"github.com/streamd/streamd/pkg/record"
)

// Sink makes writers for one output stream. Sink methods may be called from
// several goroutines.
type Sink interface {
	// NewWriter returns the writer for one producing task. task is a short
	// stable name ("window-0", "split-points-3") that implementations may
	// use in file names so parallel writers never collide.
	NewWriter(task string, schema *record.Schema) (Writer, error)
	// Close flushes and releases what the sink itself holds, after every
	// writer has been closed.
	Close(ctx context.Context) error
}

// Writer receives the rows of one producing task. It is used by one
// goroutine and must not retain b or its strings after Write returns.
type Writer interface {
	Write(ctx context.Context, b *record.Batch) error
	// Close flushes and closes open files; rows written before Close are
	// durable when it returns nil.
	Close(ctx context.Context) error
}

// Ticker is implemented by writers that act on time without data, such as
// rolling files by age. The runtime calls Tick at least once a second with
// the wall clock (ms) and the producing task's current watermark (ms).
type Ticker interface {
	Tick(ctx context.Context, nowMillis, watermark int64) error
}
