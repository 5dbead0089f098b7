package record

import (
	"strings"
	"unsafe"
)

// Row is one record: a view of Schema.Len() values inside a Batch. It is valid
// only while the batch is.
type Row []Value

// Batch is a group of rows of one schema, the unit that moves between tasks.
//
// A batch is owned by one goroutine at a time: the sender must not touch it
// after sending. Strings in a batch may point into its arena; see package doc.
type Batch struct {
	// Width is the number of values per row (the schema length).
	Width int
	// Values holds the rows back to back.
	Values []Value
	// Times holds each row's event time in milliseconds since the epoch.
	Times []int64
	// Keys holds each row's key when the batch has crossed a keyBy exchange.
	Keys []string
	// KeyGroups holds each row's key group, parallel to Keys.
	KeyGroups []uint16
	// Hashes holds, parallel to Keys, each key's 64-bit xxhash when the
	// exchange computed it (the key group is derived from it), so that
	// keyed state finds the key without hashing it again. It is nil, or
	// shorter than Keys, when no hash travels with the rows.
	Hashes []uint64
	// Origin says where the rows were read, when a batch goes from a
	// source split straight to a sink; nil otherwise.
	Origin *Origin

	// arena is the chunk Intern fills; full holds the batch's earlier
	// chunks while Recycle may reuse them, spare the chunks Recycle gave
	// back (none of their strings is referenced).
	arena       []byte
	full, spare [][]byte
}

// NewBatch returns an empty batch for rows of width values, with room for capacity rows.
func NewBatch(width, capacity int) *Batch {
	return &Batch{
		Width:  width,
		Values: make([]Value, 0, width*capacity),
		Times:  make([]int64, 0, capacity),
	}
}

// Len is the number of rows.
func (b *Batch) Len() int { return len(b.Times) }

// Row returns row i.
func (b *Batch) Row(i int) Row { return Row(b.Values[i*b.Width : (i+1)*b.Width : (i+1)*b.Width]) }

// Time returns the event time of row i in milliseconds.
func (b *Batch) Time(i int) int64 { return b.Times[i] }

// AppendRow adds a row of nulls with event time t and returns it for filling.
func (b *Batch) AppendRow(t int64) Row {
	n := len(b.Values)
	if cap(b.Values)-n < b.Width {
		grown := make([]Value, n, 2*cap(b.Values)+b.Width)
		copy(grown, b.Values)
		b.Values = grown
	}
	b.Values = b.Values[:n+b.Width]
	row := Row(b.Values[n : n+b.Width : n+b.Width])
	clear(row)
	b.Times = append(b.Times, t)
	return row
}

// Grow makes room for n more rows without reallocating, when the caller
// knows how many are coming (a window firing its keys).
func (b *Batch) Grow(n int) {
	if need := len(b.Values) + n*b.Width; cap(b.Values) < need {
		grown := make([]Value, len(b.Values), need)
		copy(grown, b.Values)
		b.Values = grown
	}
	if need := len(b.Times) + n; cap(b.Times) < need {
		grown := make([]int64, len(b.Times), need)
		copy(grown, b.Times)
		b.Times = grown
	}
}

// AppendFrom copies row i of src (same width) into b, with its key if any.
func (b *Batch) AppendFrom(src *Batch, i int) {
	row := b.AppendRow(src.Times[i])
	copy(row, src.Row(i))
	if src.Keys != nil {
		b.Keys = append(b.Keys, src.Keys[i])
		b.KeyGroups = append(b.KeyGroups, src.KeyGroups[i])
		if len(src.Hashes) == len(src.Keys) && len(b.Hashes) == len(b.Keys)-1 {
			b.Hashes = append(b.Hashes, src.Hashes[i])
		}
	}
}

// TruncateLast removes the last row (used when a row fails half-way through decoding).
func (b *Batch) TruncateLast() {
	n := b.Len() - 1
	b.Values = b.Values[:n*b.Width]
	b.Times = b.Times[:n]
	if len(b.Keys) > n {
		b.Keys = b.Keys[:n]
		b.KeyGroups = b.KeyGroups[:n]
	}
	if len(b.Hashes) > n {
		b.Hashes = b.Hashes[:n]
	}
}

// Reset empties the batch, keeping its memory. Strings handed out by the old
// arena stay valid: the arena is replaced, not overwritten.
func (b *Batch) Reset() {
	b.Values = b.Values[:0]
	b.Times = b.Times[:0]
	b.Keys = b.Keys[:0]
	b.KeyGroups = b.KeyGroups[:0]
	b.Hashes = b.Hashes[:0]
	b.Origin = nil
	b.arena = nil
	clear(b.full)
	b.full = b.full[:0]
}

// Recycle empties the batch like Reset but also keeps its arena's chunks
// for the next Interns: only for a batch none of whose interned strings is
// referenced any more (their bytes are overwritten).
func (b *Batch) Recycle() {
	for _, c := range b.full {
		b.spare = append(b.spare, c[:0])
	}
	if b.arena != nil {
		b.spare = append(b.spare, b.arena[:0])
	}
	b.Reset()
}

// Origin is the split a batch's rows were read from and the positions of
// the first and last source records of the read (Kafka and file offsets,
// Kinesis sequence numbers, all decimal). Every row of the batch comes
// from a record between the two; not every record between them has a row
// (dead letters, filters).
type Origin struct {
	Source, Split string
	First, Last   string
}

const arenaChunk = 16 << 10

// Intern returns p as a string stored in the batch's arena, valid for as long
// as anything references it. It allocates one chunk per ~16 KiB of strings.
func (b *Batch) Intern(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	if len(p) > arenaChunk/4 {
		return string(p)
	}
	if cap(b.arena)-len(b.arena) < len(p) {
		if b.arena != nil {
			b.full = append(b.full, b.arena)
		}
		if n := len(b.spare); n > 0 {
			b.arena = b.spare[n-1]
			b.spare[n-1] = nil
			b.spare = b.spare[:n-1]
		} else {
			b.arena = make([]byte, 0, arenaChunk)
		}
	}
	start := len(b.arena)
	b.arena = append(b.arena, p...)
	s := b.arena[start:len(b.arena):len(b.arena)]
	return unsafe.String(unsafe.SliceData(s), len(s))
}

// InternString is Intern for a string built elsewhere.
func (b *Batch) InternString(s string) string {
	return b.Intern(unsafe.Slice(unsafe.StringData(s), len(s)))
}

func cloneString(s string) string { return strings.Clone(s) }
