package marker

import (
	"errors"

	"github.com/streamd/streamd/pkg/checkpoint"
	"github.com/streamd/streamd/pkg/keyed"
	"github.com/streamd/streamd/pkg/source"
)

// Marker is a control element that flows in-band with the records:
// checkpoint barriers and broadcast updates (rule changes). The runtime
// injects it into every split between two reads; every subtask handles it
// only once all its inputs have delivered it (alignment), holding back the
// records of inputs that are already past it. So every subtask sees a
// marker at the same logical point of every input — the Chandy–Lamport cut
// that aligned checkpoints rely on, and the "same point everywhere" that
// broadcast rule updates need.
type Marker struct {
	// ID increases with every injected marker; markers arrive in ID order.
	ID int64
	// Payload is what the marker carries (a checkpoint request, a rule
	// update); handlers switch on its type.
	Payload any
}

// SplitCut is what a split task reports when a marker passes it.
type SplitCut struct {
	Source, Split string
	// Next is the position of the first message not yet read: where a
	// reader restored at this marker resumes.
	Next source.Position
	// Watermark is the split's watermark when the marker passed.
	Watermark int64
	// Sinks holds the prepared states of the split's sink writers, for
	// checkpoint barriers.
	Sinks []checkpoint.SinkState
}

// Handler receives markers as they pass tasks. Methods are called from
// task goroutines and must be safe for concurrent use.
type Handler interface {
	// AtSplit is called when a marker passes a split task, before anything
	// read after it is emitted.
	AtSplit(m Marker, cut SplitCut)
	// AtSubtask is called on the subtask's goroutine once the marker is
	// aligned, before any record after it is processed. The subtask's
	// state may be read (and changed) here.
	AtSubtask(m Marker, st *SubtaskContext)
}

// SubtaskContext exposes a subtask to marker handlers.
type SubtaskContext struct {
	Stage string
	Index int
	// Operator is the stage's state owner: a window operator or a rule
	// engine, seen through the keyed-operator contract.
	Operator keyed.Operator
	// Records is how many records the subtask has processed so far.
	Records int64
	// Sinks holds the prepared states of the subtask's sink writers, for
	// checkpoint barriers.
	Sinks []checkpoint.SinkState
	// Async runs background work for the marker: start is called on the
	// subtask's goroutine and returns a channel closed when the background
	// work is done and a finish func the subtask then calls on its own
	// goroutine, between records. At most one is pending per subtask;
	// a new one first completes the previous.
	Async func(start func() (done <-chan struct{}, finish func()))
}

// ErrNotRunning is returned when markers are injected into a runtime that
// has not started or has stopped.
var ErrNotRunning = errors.New("runtime is not running")
