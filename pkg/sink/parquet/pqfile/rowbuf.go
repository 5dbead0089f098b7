package pqfile

import (
	"fmt"
	"unsafe"

	"github.com/parquet-go/parquet-go"
)

// valueSize is the in-memory size of one buffered value.
const valueSize = int64(unsafe.Sizeof(parquet.Value{}))

// Chunk sizes of a rowBuffer: values in chunks of valueChunk (192 KiB),
// byte array data in chunks of arenaChunk. Filling chunks instead of
// growing one array copies nothing as the buffer grows, and keeps no
// older, larger generations alive: a byte array value points into its
// chunk, which never moves.
const (
	valueChunk = 8 << 10
	arenaChunk = 256 << 10
)

// rowBuffer holds copies of rows in chunked arrays: the values and the
// bytes of their byte arrays. Appending allocates only when a new chunk is
// needed, and reset keeps the chunks, so a steady stream of rows allocates
// nothing.
//
// parquet.Buffer is not used because encoding it (to checkpoint the tail)
// and then appending to it corrupts its byte array columns in parquet-go
// v0.32.0.
type rowBuffer struct {
	leaves   int
	values   [][]parquet.Value // chunks; values[cur] is being filled
	cur      int
	arena    [][]byte // chunks; arena[curArena] is being filled
	curArena int
	views    []parquet.Row // one per buffered row, into the value chunks
	size     int64
}

// append copies rows, checking that each value names a column of the
// schema: a bad index would otherwise only fail when the row group is
// encoded, far from its cause.
func (b *rowBuffer) append(rows []parquet.Row) error {
	for _, row := range rows {
		b.reserve(len(row))
		chunk := b.values[b.cur]
		start, curArena, size := len(chunk), b.curArena, b.size
		var arenaLen int
		if len(b.arena) > 0 {
			arenaLen = len(b.arena[b.curArena])
		}
		for _, v := range row {
			if c := v.Column(); c < 0 || c >= b.leaves {
				// Drop the partial row; earlier rows stay buffered.
				b.values[b.cur] = chunk[:start]
				for i := curArena + 1; i <= b.curArena; i++ {
					b.arena[i] = b.arena[i][:0]
				}
				b.curArena = curArena
				if len(b.arena) > 0 {
					b.arena[curArena] = b.arena[curArena][:arenaLen]
				}
				b.size = size
				return fmt.Errorf("buffer parquet row: value for column %d, schema has %d columns", c, b.leaves)
			}
			switch v.Kind() {
			case parquet.ByteArray, parquet.FixedLenByteArray:
				if !v.IsNull() {
					data := b.copyBytes(v.ByteArray())
					nv := parquet.ByteArrayValue(data)
					if v.Kind() == parquet.FixedLenByteArray {
						nv = parquet.FixedLenByteArrayValue(data)
					}
					v = nv.Level(v.RepetitionLevel(), v.DefinitionLevel(), v.Column())
					b.size += int64(len(data))
				}
			}
			chunk = append(chunk, v)
		}
		b.values[b.cur] = chunk
		b.size += int64(len(row)) * valueSize
		b.views = append(b.views, chunk[start:len(chunk):len(chunk)])
	}
	return nil
}

// reserve makes room for n more values in the current value chunk,
// moving to the next chunk (allocated on first use) when they do not fit.
func (b *rowBuffer) reserve(n int) {
	if len(b.values) > 0 && cap(b.values[b.cur])-len(b.values[b.cur]) >= n {
		return
	}
	b.cur = nextChunk(&b.values, b.cur, n, valueChunk)
}

// copyBytes copies p into the arena and returns the copy, with its
// capacity at its length.
func (b *rowBuffer) copyBytes(p []byte) []byte {
	if len(b.arena) == 0 || cap(b.arena[b.curArena])-len(b.arena[b.curArena]) < len(p) {
		b.curArena = nextChunk(&b.arena, b.curArena, len(p), arenaChunk)
	}
	a := b.arena[b.curArena]
	start := len(a)
	a = append(a, p...)
	b.arena[b.curArena] = a
	return a[start:len(a):len(a)]
}

// nextChunk returns the index of an empty chunk of chunks with room for n
// elements after chunk cur (or cur itself if it is empty), allocating one
// of max(size, n) if the chunk there is missing or too small. Chunks after
// the current one are always empty.
func nextChunk[T any](chunks *[][]T, cur, n, size int) int {
	next := cur
	if len(*chunks) > 0 && len((*chunks)[cur]) > 0 {
		next = cur + 1
	}
	if next < len(*chunks) && cap((*chunks)[next]) >= n {
		return next
	}
	c := make([]T, 0, max(size, n))
	if next < len(*chunks) {
		(*chunks)[next] = c
	} else {
		*chunks = append(*chunks, c)
	}
	return next
}

// rows returns views of the buffered rows, valid until the next append or
// reset. Reordering the returned slice (sorting) reorders the buffer.
func (b *rowBuffer) rows() []parquet.Row { return b.views }

func (b *rowBuffer) numRows() int64 { return int64(len(b.views)) }

// reset drops the rows but keeps the memory. Earlier values may still point
// into the arena, so callers must be done with them.
func (b *rowBuffer) reset() {
	clear(b.views)
	b.views = b.views[:0]
	for i := range b.values {
		b.values[i] = b.values[i][:0]
	}
	for i := range b.arena {
		b.arena[i] = b.arena[i][:0]
	}
	b.cur, b.curArena = 0, 0
	b.size = 0
}
