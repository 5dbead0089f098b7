package operator

import (
	"errors"
	"sync"

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

// MarkerHandler receives markers as they pass tasks. Methods are called
// from task goroutines and must be safe for concurrent use.
type MarkerHandler interface {
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

// Inject sends a marker into every running split and returns its ID.
func (r *Runtime) Inject(payload any) (int64, error) {
	id, _, err := r.inject(payload, nil)
	return id, err
}

// inject sends a marker into every running split; counted, if not nil, is
// told how many splits receive it before any of them can see it.
func (r *Runtime) inject(payload any, counted func(int)) (int64, int, error) {
	r.markerMu.Lock()
	defer r.markerMu.Unlock()
	if !r.started() {
		return 0, 0, ErrNotRunning
	}
	r.lastMarker++
	m := Marker{ID: r.lastMarker, Payload: payload}
	if counted != nil {
		counted(len(r.running))
	}
	for t := range r.running {
		t.ctrl.put(m)
	}
	return m.ID, len(r.running), nil
}

// mailbox is a split task's queue of injected markers. It never fills, so
// injecting (under markerMu) never waits on a split — which may itself be
// waiting for markerMu to leave. Markers are few (checkpoints and batched
// rule changes), so the queue stays short.
type mailbox struct {
	mu sync.Mutex
	ms []Marker
}

func (b *mailbox) put(m Marker) {
	b.mu.Lock()
	b.ms = append(b.ms, m)
	b.mu.Unlock()
}

// take returns the oldest queued marker.
func (b *mailbox) take() (Marker, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.ms) == 0 {
		return Marker{}, false
	}
	m := b.ms[0]
	b.ms[0] = Marker{}
	b.ms = b.ms[1:]
	return m, true
}

// alignment tracks which inputs of a subtask have delivered which markers.
type alignment struct {
	inputs  []alignInput
	aligned int64 // last marker handled
	queue   []event
	pending map[int64]Marker
}

type alignInput struct {
	last   int64 // last marker delivered by this input
	joined bool
	done   bool
}

func (a *alignment) input(id int) *alignInput {
	for id >= len(a.inputs) {
		a.inputs = append(a.inputs, alignInput{})
	}
	return &a.inputs[id]
}

// blocked reports whether an input's events must wait: it has delivered a
// marker the subtask is still aligning.
func (a *alignment) blocked(id int) bool {
	return a.input(id).last > a.aligned
}

// complete returns the marker ready to be handled, if every open input has
// delivered it.
func (a *alignment) complete() (int64, bool) {
	next := a.aligned + 1
	found := false
	for i := range a.inputs {
		in := &a.inputs[i]
		if !in.joined || in.done {
			continue
		}
		if in.last < next {
			return 0, false
		}
		found = true
	}
	return next, found
}
