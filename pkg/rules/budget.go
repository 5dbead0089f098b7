package rules

import (
	"unsafe"

	"github.com/streamd/streamd/pkg/record"
)

// State size estimate and budget. The engine keeps an estimate of what its
// keyed state takes up to date as keys and signal inputs come and go, so
// that reading it — for every new key under a budget — costs nothing. It
// counts, per (rule, key), its keyState, signal and group slices, key
// values, its map entry and a timer entry; per interned key its table
// entries and text; per windowed input its point.

const (
	// keyEntryBytes is a byID map entry and a timer heap entry.
	keyEntryBytes = 24 + 40
	// internBytes is an interned key's map entry and ID table slots.
	internBytes = 40 + 16 + 4
	pointBytes  = int64(unsafe.Sizeof(point{}))
)

// roundUp rounds an allocation to a multiple of 16 bytes, near enough to
// the allocator's size classes for an estimate.
func roundUp(n int64) int64 { return (n + 15) &^ 15 }

// keyCost is the fixed estimate of one key state of program p.
func keyCost(p *program) int64 {
	return keyEntryBytes + roundUp(int64(unsafe.Sizeof(keyState{}))) +
		roundUp(int64(len(p.signals))*int64(unsafe.Sizeof(sigState{}))) +
		roundUp(int64(len(p.groups))*int64(unsafe.Sizeof(groupState{}))) +
		roundUp(int64(len(p.keyIdx))*int64(unsafe.Sizeof(record.Value{})))
}

// live is the number of windowed inputs a signal holds.
func (st *sigState) live() int { return len(st.pts) - st.head }

// points is the number of windowed inputs a key holds.
func (ks *keyState) points() int64 {
	n := 0
	for i := range ks.sigs {
		n += ks.sigs[i].live()
	}
	return int64(n)
}

// StateBytes estimates the memory the engine's keyed state takes.
func (e *Engine) StateBytes() int64 { return e.stateBytes + e.points*pointBytes }

// RefusedRecords counts records refused because the state held its budget
// (Options.MaxStateBytes): they fed at least one rule that had no state
// for their key yet.
func (e *Engine) RefusedRecords() uint64 { return e.refused }

// overBudget reports whether a new key must be refused.
func (e *Engine) overBudget() bool {
	return e.opts.MaxStateBytes > 0 && e.StateBytes() >= e.opts.MaxStateBytes
}
