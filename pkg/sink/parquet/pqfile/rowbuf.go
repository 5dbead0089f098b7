package pqfile

import (
	"fmt"
	"unsafe"

	"github.com/parquet-go/parquet-go"
)

// valueSize is the in-memory size of one buffered value.
const valueSize = int64(unsafe.Sizeof(parquet.Value{}))

// rowBuffer holds copies of rows in two flat arrays: the values and the
// bytes of their byte arrays. Appending allocates only when an array grows,
// and reset keeps the capacity, so a steady stream of rows allocates
// nothing.
//
// parquet.Buffer is not used because encoding it (to checkpoint the tail)
// and then appending to it corrupts its byte array columns in parquet-go
// v0.32.0.
type rowBuffer struct {
	leaves int
	values []parquet.Value
	arena  []byte
	ends   []int // ends[i] is the end of row i in values
	views  []parquet.Row
	size   int64
}

// append copies rows, checking that each value names a column of the
// schema: a bad index would otherwise only fail when the row group is
// encoded, far from its cause.
func (b *rowBuffer) append(rows []parquet.Row) error {
	for _, row := range rows {
		arena, size := len(b.arena), b.size
		for _, v := range row {
			if c := v.Column(); c < 0 || c >= b.leaves {
				// Drop the partial row; earlier rows stay buffered.
				b.values, b.arena, b.size = b.values[:b.end()], b.arena[:arena], size
				return fmt.Errorf("buffer parquet row: value for column %d, schema has %d columns", c, b.leaves)
			}
			switch v.Kind() {
			case parquet.ByteArray, parquet.FixedLenByteArray:
				if !v.IsNull() {
					start := len(b.arena)
					b.arena = append(b.arena, v.ByteArray()...)
					data := b.arena[start:len(b.arena):len(b.arena)]
					nv := parquet.ByteArrayValue(data)
					if v.Kind() == parquet.FixedLenByteArray {
						nv = parquet.FixedLenByteArrayValue(data)
					}
					v = nv.Level(v.RepetitionLevel(), v.DefinitionLevel(), v.Column())
					b.size += int64(len(data))
				}
			}
			b.values = append(b.values, v)
		}
		b.size += int64(len(row)) * valueSize
		b.ends = append(b.ends, len(b.values))
	}
	return nil
}

func (b *rowBuffer) end() int {
	if len(b.ends) == 0 {
		return 0
	}
	return b.ends[len(b.ends)-1]
}

// rows returns views of the buffered rows, valid until the next append or
// reset.
func (b *rowBuffer) rows() []parquet.Row {
	b.views = b.views[:0]
	start := 0
	for _, end := range b.ends {
		b.views = append(b.views, b.values[start:end:end])
		start = end
	}
	return b.views
}

func (b *rowBuffer) numRows() int64 { return int64(len(b.ends)) }

// reset drops the rows but keeps the memory. Earlier values may still point
// into the arena, so callers must be done with them.
func (b *rowBuffer) reset() {
	clear(b.views)
	b.values = b.values[:0]
	b.arena = b.arena[:0]
	b.ends = b.ends[:0]
	b.views = b.views[:0]
	b.size = 0
}
