package keyed

import (
	"math"

	"github.com/streamd/streamd/pkg/record"
)

// MinWatermark is the watermark before any event time is known.
const MinWatermark = math.MinInt64

// MaxWatermark ends event time: every window fires (end of input).
const MaxWatermark = math.MaxInt64

// Output receives what an operator emits. Results rows follow the
// operator's ResultSchema, Late rows its LateSchema.
type Output struct {
	Results *record.Batch
	Late    *record.Batch
	// Refused receives, when set, the records refused because the state
	// holds its budget; they follow the input schema.
	Refused *record.Batch
	// Firings counts results emitted on time (window results, rule
	// alerts); Updates counts results re-emitted because of late records
	// within allowed lateness; Retractions counts rows that withdraw an
	// earlier result; RefusedRecords counts records the state budget
	// refused.
	Firings, Updates, Retractions, LateRecords, RefusedRecords int64
}

// Operator is what a keyed subtask runs. One goroutine owns it: no method
// is called concurrently with another, except that the background work of
// a PendingSnapshot runs while the owner goes on.
type Operator interface {
	// Process applies a batch of records routed to the subtask. Their
	// Keys, Hashes and KeyGroups are set by the keyBy exchange.
	Process(in *record.Batch, out *Output)
	// Advance moves event time to wm, emitting what becomes due.
	Advance(wm int64, out *Output)
	// Watermark is the event time the operator has reached.
	Watermark() int64
	// SetWatermark sets the event time a restored operator resumes from:
	// the most advanced watermark of the subtasks that wrote the restored
	// key groups, or of the stage. Operators whose snapshots carry their
	// event time may keep that instead.
	SetWatermark(wm int64)

	// ResultSchema and LateSchema are the schemas of Output.Results and
	// Output.Late.
	ResultSchema() *record.Schema
	LateSchema() *record.Schema

	// Keys counts the keys holding state; it may walk the state and is
	// called once per tick, not per record.
	Keys() int
	// StateBytes estimates the state's size.
	StateBytes() int64
	// ExpiredKeys counts the keys the state TTL let go.
	ExpiredKeys() int64

	// Snapshot encodes the state per key group. A key group absent from
	// the result holds nothing to restore. An operator that keeps
	// broadcast state beside its keys (a rule set) writes it into every
	// key group it owns, empty or not, so that any subset of a
	// checkpoint's key groups restores it.
	Snapshot() map[uint16][]byte
	// BeginSnapshot starts the same snapshot without stopping the
	// subtask: the result is collected with Finish, on the owner's
	// goroutine, once Done is closed. At most one is in progress. An
	// operator without background encoding may take the snapshot at once
	// and return Taken.
	BeginSnapshot() PendingSnapshot

	// Restore adds the snapshot of one key group the subtask owns. It is
	// called on a new operator, before any record, once per key group
	// of the checkpoint that the subtask owns, in no particular order.
	Restore(kg uint16, data []byte) error
	// FinishRestore is called once after the last Restore of a restore,
	// also when the checkpoint held no key group the subtask owns. An
	// operator that must see every restored key group at once (to take
	// their shared broadcast state once and check it agrees) does its
	// work here.
	FinishRestore() error
}

// PendingSnapshot is a snapshot in progress (Operator.BeginSnapshot).
type PendingSnapshot interface {
	// Done is closed when the background work has finished.
	Done() <-chan struct{}
	// Finish returns the snapshot per key group, as Operator.Snapshot
	// does. It is called on the operator's goroutine, after which a new
	// snapshot may begin.
	Finish() map[uint16][]byte
}

// Taken returns a PendingSnapshot of a snapshot already taken.
func Taken(groups map[uint16][]byte) PendingSnapshot {
	return taken(groups)
}

type taken map[uint16][]byte

var closed = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (t taken) Done() <-chan struct{}     { return closed }
func (t taken) Finish() map[uint16][]byte { return t }
