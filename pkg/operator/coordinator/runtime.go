package coordinator

import (
	"time"

	"github.com/streamd/streamd/pkg/checkpoint"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/source"
)

// Runtime is what the coordinator needs of the dataflow runtime it
// checkpoints. The runtime (package operator) implements it; so do the
// tests of this package, without running a task. Methods may be called
// from any goroutine.
type Runtime interface {
	// Pipeline is the pipeline's name, recorded in every manifest.
	Pipeline() string
	// KeyGroups is the number of key groups state is kept in.
	KeyGroups() int
	// Stages names the keyed stages, in the order a manifest lists them.
	Stages() []string
	// Subtasks counts the subtasks of all stages: each acknowledges every
	// barrier (AtSubtask).
	Subtasks() int
	// Inject sends a barrier carrying req into every running split and
	// returns how many received it; counted, if not nil, is told that
	// number before any of them can see the barrier. Each of them
	// acknowledges it (AtSplit). It returns marker.ErrNotRunning when the
	// runtime has not started or has stopped.
	Inject(req *Request, counted func(splits int)) (int, error)
	// Sinks and Sources are the pipeline's connectors. The coordinator
	// tells sinks about checkpoints (sink.CheckpointAware), hands them
	// over and commits their output (sink.Transactional,
	// sink.CheckpointCommitter), and commits source offsets
	// (source.OffsetCommitter).
	Sinks() []Sink
	Sources() []Source
	// Failed reports whether the pipeline has failed: no checkpoint may
	// complete after that, as a task may be missing from it.
	Failed() bool
	// Outage returns the failures that sinks and the checkpoint store have
	// been retrying, by the runtime's clock, for at least minFor.
	Outage(minFor time.Duration) []error
	// Ended returns what a checkpoint carries for tasks that ended before
	// its barrier: the end positions of their splits and the final states
	// of their writers, leaving out the splits and writer states the
	// barrier collected itself (cut and seen).
	Ended(cut []checkpoint.SplitState, seen []checkpoint.SinkState) Ended
	// EndedCommitted tells the runtime that a checkpoint carrying e has
	// committed: the writers' final states in it are published.
	EndedCommitted(e Ended)
	// Restore hands the runtime the state of the checkpoint it is to start
	// from (see Coordinator.Restore): split positions, splits read to
	// their end, and state by stage and key group, which the runtime may
	// rewrite in place (state of an older layout). An error fails the
	// restore.
	Restore(rs *RestoreState) error
}

// Sink is a sink of the pipeline by name.
type Sink struct {
	Name string
	Sink sink.Sink
}

// Source is a source of the pipeline by name.
type Source struct {
	Name   string
	Source source.Source
}

// Ended is what a checkpoint carries for tasks that ended (Runtime.Ended).
type Ended struct {
	// Splits are the end positions of splits that ended.
	Splits []checkpoint.SplitState
	// Sinks are the final states of the ended tasks' writers.
	Sinks []checkpoint.SinkState
	// Tasks names the ended tasks whose final states are included, for
	// the runtime (Runtime.EndedCommitted).
	Tasks []string
}

// Part is one subtask's acknowledgement of a checkpoint: its state per
// key group and its watermark.
type Part struct {
	Index     int
	Watermark int64
	Groups    map[uint16][]byte
}
