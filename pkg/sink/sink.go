package sink

import (
	"context"
	"time"

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

// Preparer is implemented by writers that take part in exactly-once
// checkpoints. Prepare is called on the writer's goroutine when a
// checkpoint barrier passes its task: it makes everything written so far
// recoverable (durable, but not yet visible to readers) and returns the
// state that Commit and Recover need — files completed since the last
// checkpoint, waiting to be published, and the files still open with what
// it takes to resume them. It must be quick: it is part of the task's pause.
type Preparer interface {
	Prepare(ctx context.Context, checkpointID int64) ([]byte, error)
}

// Transactional is implemented by sinks whose output is published only
// once the checkpoint that covers it is complete.
type Transactional interface {
	Sink
	// Commit publishes what a prepared state lists as completed (rename a
	// staged file, complete a multipart upload). It is called from the
	// checkpoint coordinator after the manifest is durable, and again on
	// recovery, so it must be idempotent. It may run concurrently with the
	// sink's writers.
	Commit(ctx context.Context, task string, state []byte) error
	// Recover is called once at start, before any NewWriter, with the
	// prepared states of the checkpoint being restored, by task. It commits
	// (idempotently) what they list as completed, discards output staged
	// after that checkpoint, and keeps the open files so that NewWriter for
	// the same task resumes them; files of tasks that no longer exist are
	// finished and committed.
	Recover(ctx context.Context, states map[string][]byte) error
}

// CheckpointCommitter is implemented by transactional sinks whose commit
// must know the checkpoint it belongs to. The runtime calls CommitCheckpoint
// instead of Commit, and RecoverCheckpoint instead of Recover when the
// restored checkpoint's commit is not known to have completed.
type CheckpointCommitter interface {
	// HandoverMark is called before the manifest of checkpoint
	// checkpointID is written; what it returns (nil for nothing) is stored
	// in the manifest and given back to RecoverCheckpoint when that
	// checkpoint is restored. It says where in the sink's output the
	// hand-over of the checkpoint's rows begins at the earliest.
	HandoverMark(ctx context.Context, checkpointID int64) []byte
	CommitCheckpoint(ctx context.Context, checkpointID int64, task string, state []byte) error
	RecoverCheckpoint(ctx context.Context, checkpointID int64, states map[string][]byte, mark []byte) error
}

// RowID names a row an exactly-once sink held, across restarts: the task
// that produced it, the checkpoint that closed it (its segment) and its
// place among that task's rows of the segment. Nonce tells apart the
// lineages of hand-overs (two processes of one pipeline, a fresh start):
// the same ID under another nonce is another row.
type RowID struct {
	Nonce   uint64
	Task    string
	Segment int64
	Index   int
}

// IdentifiedWriter is implemented by writers that carry each row's RowID
// into the output (a Kafka message header), so that the sink's ReadBacker
// finds what an interrupted hand-over already delivered.
type IdentifiedWriter interface {
	// WriteIdentified is Write, with row i of b named ids[i].
	WriteIdentified(ctx context.Context, b *record.Batch, ids []RowID) error
}

// ReadBacker is implemented by sinks that cannot take output back but can
// read it (a Kafka topic): a hand-over a crash interrupted is done again
// without the rows already there, so nothing is delivered twice.
type ReadBacker interface {
	// Position returns where the output ends now: every row written after
	// it returns is found by Delivered from it.
	Position(ctx context.Context) ([]byte, error)
	// Delivered calls fn with the RowID of every identified row with this
	// nonce in the output from pos on (from the beginning when pos is nil).
	Delivered(ctx context.Context, pos []byte, nonce uint64, fn func(RowID)) error
}

// Rewinder is implemented by sinks that can undo an interrupted hand-over
// of a checkpoint's rows (an append-only file: cut it back), so handing
// them over again after a crash repeats nothing.
type Rewinder interface {
	// BeginHandover records durably, once per checkpoint, where the
	// hand-over of that checkpoint's rows starts.
	BeginHandover(ctx context.Context, checkpointID int64) error
	// RewindHandover undoes what the hand-over of checkpointID wrote, if
	// it began; other checkpoints' hand-overs are left alone.
	RewindHandover(ctx context.Context, checkpointID int64) error
}

// CommittedRecoverer is implemented by transactional sinks whose Commit is
// not idempotent by itself (rows handed to another system). When the
// restored checkpoint is known to have been committed completely, the
// runtime calls RecoverCommitted instead of Recover, and nothing is
// delivered twice.
type CommittedRecoverer interface {
	RecoverCommitted(ctx context.Context, states map[string][]byte) error
}

// CheckpointAware is implemented by sinks whose writers hold output until
// a checkpoint completes and bound what they hold by making their task
// wait (see package hold). The checkpoint coordinator binds them before
// the pipeline runs and tells them about checkpoints that will not
// complete, so a writer never waits for one.
type CheckpointAware interface {
	// BindCheckpoints gives the sink a function that asks for a
	// checkpoint as soon as possible. It returns at once and may be called
	// from any goroutine.
	BindCheckpoints(request func())
	// CheckpointStarted says the barriers of checkpoint id are on their
	// way to every task. It must not block.
	CheckpointStarted(id int64)
	// CheckpointAcknowledged says every task has acknowledged checkpoint
	// id: it completes (or fails) without any task's further work. It
	// must not block.
	CheckpointAcknowledged(id int64)
	// CheckpointAborted says checkpoint id failed or could not start:
	// what writers prepared for it travels in a later checkpoint.
	// math.MaxInt64 says no checkpoint will come any more (the
	// coordinator stopped). It must not block.
	CheckpointAborted(id int64)
}

// RoomWaiter is implemented by writers of a CheckpointAware sink: what
// they hold is bounded by making the producing task wait. The runtime
// calls AwaitRoom on the task's goroutine before it queues a write; it
// returns at once while the writer has room, and otherwise waits for a
// checkpoint to release what the writer holds, or for ctx. It returns how
// long it waited (backpressure). Write itself never waits for a
// checkpoint: it runs on the writer's goroutine behind the task's queued
// writes, and the Prepare of the barrier that would release it may be
// queued behind it.
type RoomWaiter interface {
	AwaitRoom(ctx context.Context) time.Duration
}

// Retrier is implemented by sinks that retry failed writes and commits for
// a while (an object store answering 503, a lost connection) before they
// fail. Retrying returns the failure being retried, nil when the sink can
// write; the runtime reports the pipeline not ready meanwhile. It may be
// called from any goroutine.
type Retrier interface {
	Retrying() error
}
