package source

import (
	"context"
	"errors"
	"strconv"
)

// ErrEndOfSplit is returned by Reader.Read when a bounded split has no more
// messages (a file read once, a closed Kinesis shard read to its end).
var ErrEndOfSplit = errors.New("end of split")

// ErrUnavailable marks a Read error of a split that cannot be read now: its
// broker, shard or endpoint is unreachable, refuses or does not answer. A
// Read error wrapping it counts as a failure even when it also wraps
// context.DeadlineExceeded (a call that timed out on its own deadline is an
// outage, not a quiet split).
var ErrUnavailable = errors.New("split unavailable")

// Position is where a message sits in its split. Offset-based splits (Kafka,
// files, generators) use Offset; sequence-based splits (Kinesis) use Sequence.
// The position stored in a checkpoint is that of the next message to read.
type Position struct {
	Offset   int64  `json:"offset"`
	Sequence string `json:"sequence,omitempty"`
}

// String renders the position for logs and dead letters.
func (p Position) String() string {
	if p.Sequence != "" {
		return p.Sequence
	}
	return strconv.FormatInt(p.Offset, 10)
}

// Header is one Kafka-style message header.
type Header struct {
	Key   string
	Value []byte
}

// Message is one raw input record.
type Message struct {
	Value   []byte
	Key     []byte
	Headers []Header
	// Timestamp is the broker or producer timestamp in milliseconds since the
	// epoch, 0 if the source has none.
	Timestamp int64
	// Position is this message's own position.
	Position Position
}

// Batch is a reusable group of messages filled by Reader.Read.
type Batch struct {
	Messages []Message
}

// Reset empties the batch, keeping its memory.
func (b *Batch) Reset() { b.Messages = b.Messages[:0] }

// Split identifies one independently readable part of a source.
type Split struct {
	// ID is unique within the source and stable across restarts
	// ("topic/3", "shardId-000000000001", "events.jsonl").
	ID string
	// Parents lists splits that must be read to their end before this one
	// starts (Kinesis resharding). Empty for most sources.
	Parents []string
}

// Source discovers splits and opens readers for them.
type Source interface {
	// Splits returns the splits to read now. Sources whose splits change
	// while running also implement Dynamic.
	Splits(ctx context.Context) ([]Split, error)
	// Open returns a reader positioned at start, or at the source's
	// configured start position when start is nil.
	Open(ctx context.Context, split Split, start *Position) (Reader, error)
	// Close releases what the source holds. Readers are closed first.
	Close(ctx context.Context) error
}

// Reader reads one split. It is used by one goroutine.
type Reader interface {
	// Read appends up to max messages to b. It blocks until at least one
	// message is available, ctx is done, or the split ends. It returns
	// ErrEndOfSplit (with or without messages appended) at the end of a
	// bounded split. Message bytes stay valid until the next Read call.
	//
	// While the split cannot be read (its broker, shard or endpoint is
	// unreachable or refuses), Read returns an error — not ctx's error,
	// even when ctx ends while it waits — until it has seen the split
	// answer again: the runtime treats the split as failing, which holds
	// the watermark back, and retries with backoff. ctx's error alone
	// means a reachable split with no message, which may make it idle.
	// After a failure Read reconnects by itself; the runtime never reopens
	// a split because its reads fail.
	Read(ctx context.Context, b *Batch, max int) error
	// Close releases the split.
	Close() error
}

// Event is a change in the set of splits of a Dynamic source.
type Event struct {
	Split   Split
	Revoked bool
}

// Dynamic is implemented by sources whose splits change while running (Kafka
// consumer-group assignment, Kinesis resharding). Watch blocks until ctx is
// done, calling fn for every change; a revoked split must be drained and
// closed by the runtime before fn returns for the next event.
type Dynamic interface {
	Watch(ctx context.Context, fn func(Event) error) error
}

// Positioner is implemented by readers that know the position of the next
// message they will deliver — what a checkpoint records so a restored
// reader resumes exactly after the last message processed.
type Positioner interface {
	Position() Position
}

// OffsetCommitter is implemented by sources that record consumption in the
// broker (Kafka consumer-group offsets) so standard lag tooling sees it.
// The runtime calls it after a checkpoint completes, with the next offset
// of each split ("topic/partition" → offset).
type OffsetCommitter interface {
	Commit(ctx context.Context, offsets map[string]int64) error
}

// GroupPositioner is implemented by sources whose splits are shared by the
// members of a group (Kafka consumer groups): it returns the position the
// group last committed for a split now assigned to this member. A restored
// checkpoint's position older than that means another member read the
// split after the checkpoint was taken, and published what it read.
type GroupPositioner interface {
	GroupPosition(split string) (Position, bool)
}

// FinishedNotifier is implemented by sources that must know, when a
// pipeline is restored, which splits were already read to their end: a
// Kinesis parent shard is then not read again, and its children start.
// The runtime calls it before Splits and Watch.
type FinishedNotifier interface {
	SplitsFinished(ids []string)
}
