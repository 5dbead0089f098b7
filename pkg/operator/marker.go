package operator

import (
	"sync"

	"github.com/streamd/streamd/pkg/operator/marker"
)

// The marker types live in package marker, so that marker handlers (the
// checkpoint coordinator) need not import the runtime; these names keep
// the runtime's API as it was.
type (
	// Marker is a control element that flows in-band with the records
	// (see marker.Marker).
	Marker = marker.Marker
	// SplitCut is what a split task reports when a marker passes it.
	SplitCut = marker.SplitCut
	// MarkerHandler receives markers as they pass tasks.
	MarkerHandler = marker.Handler
	// SubtaskContext exposes a subtask to marker handlers.
	SubtaskContext = marker.SubtaskContext
)

// ErrNotRunning is returned when markers are injected into a runtime that
// has not started or has stopped.
var ErrNotRunning = marker.ErrNotRunning

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
