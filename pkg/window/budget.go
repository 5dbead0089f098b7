package window

import (
	"unsafe"

	"github.com/streamd/streamd/pkg/record"
)

// stateStats estimates what an operator's state takes in memory, kept up
// to date as keys and panes come and go, so that reading it costs
// nothing: a state budget is checked for every new key.
//
// The estimate counts what the state is made of, Go objects at their
// allocation size classes: per key its key-table slot, its keyState in
// the slab, key text in the arena, key values and its timer entry; per
// pane the pane itself (with its words, up to inlineWords), its paneExt,
// more words and Accs; per changelog row its identity and
// values; per sketch a fixed share (see sketchShare). It is calibrated
// against the live heap by TestStateBytesEstimate.
type stateStats struct {
	perKey, perPane int64
	keys            int64
	keyBytes        int64
	panes           int64
	contribBytes    int64
	// oneField says the stage keys by one field.
	oneField bool
}

// Fixed costs, in bytes, of what every key and pane carries.
const (
	// tableSlotBytes is a key's share of the key table: an 8-byte slot at
	// a load between 3/8 and 3/4.
	tableSlotBytes = 14
	// timerEntryBytes is the key's pointer in a timer list, with the
	// lists' spare capacity.
	timerEntryBytes = 12
	// accBytes is one Acc.
	accBytes = int64(unsafe.Sizeof(Acc{}))
	// sketchShare is what a distinct-count or quantile sketch is counted
	// as: they start small and grow to about 16 KiB; a budget over
	// sketch-heavy stages is approximate.
	sketchShare = 2048
	// contribOverhead is a changelog row's map entry and slice header.
	contribOverhead = 80
	valueBytes      = int64(unsafe.Sizeof(record.Value{}))
)

// sizeClass rounds an allocation up to the Go allocator's size classes
// (the small ones; larger sizes are rounded to 256 bytes).
func sizeClass(n int64) int64 {
	for _, c := range [...]int64{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352, 384, 416, 448, 480, 512} {
		if n <= c {
			return c
		}
	}
	return (n + 255) &^ 255
}

func (st *stateStats) init(o *Operator) {
	st.perKey = tableSlotBytes + timerEntryBytes + int64(unsafe.Sizeof(keyState{}))
	if o.kind == Sliding {
		st.perKey += sizeClass(int64(unsafe.Sizeof(slidingKey{})))
	}
	if len(o.keyIdx) > 1 {
		st.perKey += sizeClass(int64(len(o.keyIdx)) * valueBytes)
	}
	st.oneField = len(o.keyIdx) == 1
	// A key keeps room for two panes once it had one after another (the
	// slot past the last keeps the storage of a removed one).
	st.perPane = int64(unsafe.Sizeof(pane{}))
	if o.nWords > inlineWords {
		st.perPane += sizeClass(int64(o.nWords) * 8)
	}
	if o.needsExt() {
		st.perPane += sizeClass(int64(unsafe.Sizeof(paneExt{})))
	}
	if o.nAccs > 0 {
		st.perPane += sizeClass(int64(o.nAccs) * accBytes)
	}
	for _, sl := range o.accs {
		switch sl.a.(type) {
		case *countDistinct, *quantile:
			st.perPane += sketchShare
		}
	}
}

func (st *stateStats) newKey(ks *keyState) {
	st.keys++
	st.keyBytes += int64(len(ks.key))
	if ks.vals != nil && st.oneField {
		st.keyBytes += valueBytes
	}
}

func (st *stateStats) dropKey(ks *keyState) {
	st.keys--
	st.keyBytes -= int64(len(ks.key))
	if ks.vals != nil && st.oneField {
		st.keyBytes -= valueBytes
	}
}

// contrib adds n bytes of changelog rows held by pane state x.
func (st *stateStats) contrib(x *paneExt, n int64) {
	x.bytes += n
	st.contribBytes += n
}

// contribBytes estimates one changelog row kept in a pane.
func contribBytes(id string, row record.Row) int64 {
	n := contribOverhead + sizeClass(int64(len(id))) + sizeClass(int64(len(row))*valueBytes)
	for _, v := range row {
		if v.T == record.TypeString {
			n += int64(len(v.S))
		}
	}
	return n
}

// bytes is the estimate.
func (st *stateStats) bytes() int64 {
	return st.keys*st.perKey + st.keyBytes + st.panes*st.perPane + st.contribBytes
}

// StateBytes estimates the memory the operator's state takes, in bytes:
// what a state budget (Config.MaxStateBytes) is checked against and what
// the runtime reports as streamd_state_bytes.
func (o *Operator) StateBytes() int64 { return o.stats.bytes() }

// reject refuses row i of in: the state holds its budget and the row's key
// has no state yet.
func (o *Operator) reject(in *record.Batch, i int, out *Output) {
	out.RefusedRecords++
	if out.Refused == nil {
		return
	}
	copy(out.Refused.AppendRow(in.Times[i]), in.Row(i))
}
