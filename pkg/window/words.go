package window

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/streamd/streamd/pkg/record"
)

// wordAgg is implemented by aggregates whose state is a few 64-bit words
// of plain numbers: a count is one word, a sum or an average two, a float
// min or max one. The operator keeps such state in one []uint64 per pane
// — 8 bytes a word, no pointers for the garbage collector to scan —
// instead of an Acc of 104 bytes per aggregate. The Acc methods stay for
// callers of the Aggregate interface and for snapshots of earlier
// versions; toAcc and fromAcc convert between the two.
type wordAgg interface {
	Aggregate
	// words is the number of words of the state; all zero is empty.
	words() int
	// addW, mergeW and resultW are Add, Merge and Result on words; w (and
	// dst, src) start at the aggregate's first word.
	addW(w []uint64, row record.Row, t int64)
	mergeW(dst, src []uint64)
	resultW(w []uint64) record.Value
	// toAcc and fromAcc convert the state to and from an Acc.
	toAcc(w []uint64, a *Acc)
	fromAcc(a *Acc, w []uint64)
	// appendW encodes the state for a snapshot; readW decodes it.
	appendW(dst []byte, w []uint64) []byte
	readW(src []byte, w []uint64) ([]byte, error)
}

// asWords returns agg as a wordAgg when its state fits words.
func asWords(agg Aggregate) (wordAgg, bool) {
	w, ok := agg.(wordAgg)
	if !ok || w.words() == 0 {
		return nil, false
	}
	if e, ok := agg.(*extreme); ok && e.typ == record.TypeFloat {
		// The most common min/max, without the type dispatch per record.
		return floatExtreme{e}, true
	}
	return w, true
}

// floatExtreme is min or max of a float field on words: extreme's word
// methods with the field type known.
type floatExtreme struct{ *extreme }

func (f floatExtreme) addW(w []uint64, row record.Row, _ int64) {
	v := row[f.field]
	if v.T == record.TypeNull {
		return
	}
	x := v.Float()
	if x != x {
		return
	}
	if w[0] == 0 || f.betterFloat(x, math.Float64frombits(w[0]^emptyFloat)) {
		w[0] = math.Float64bits(x) ^ emptyFloat
	}
}

// Snapshot encoding of word state: counts as uvarints, floats as their 8
// IEEE bytes little endian, other values as zigzag varints; an empty state
// is a single 0 (a zero count) where the count comes first.

func readUvarint(src []byte) (uint64, []byte, error) {
	v, k := binary.Uvarint(src)
	if k <= 0 {
		return 0, nil, uvarintErr(k)
	}
	return v, src[k:], nil
}

func readFixed(src []byte) (uint64, []byte, error) {
	if len(src) < 8 {
		return 0, nil, errTruncated
	}
	return binary.LittleEndian.Uint64(src), src[8:], nil
}

// appendCountAnd writes n and, when n > 0, the word x as 8 bytes.
func appendCountAnd(dst []byte, n, x uint64) []byte {
	dst = binary.AppendUvarint(dst, n)
	if n > 0 {
		dst = binary.LittleEndian.AppendUint64(dst, x)
	}
	return dst
}

func readCountAnd(src []byte) (n, x uint64, rest []byte, err error) {
	if n, src, err = readUvarint(src); err != nil || n == 0 {
		return n, 0, src, err
	}
	x, src, err = readFixed(src)
	return n, x, src, err
}

// Counts: one word, the count.

func (c *countRows) words() int                                   { return 1 }
func (c *countRows) addW(w []uint64, _ record.Row, _ int64)       { w[0]++ }
func (c *countRows) mergeW(dst, src []uint64)                     { dst[0] += src[0] }
func (c *countRows) resultW(w []uint64) record.Value              { return record.Int(int64(w[0])) }
func (c *countRows) toAcc(w []uint64, a *Acc)                     { *a = Acc{N: int64(w[0])} }
func (c *countRows) fromAcc(a *Acc, w []uint64)                   { w[0] = uint64(a.N) }
func (c *countRows) appendW(dst []byte, w []uint64) []byte        { return binary.AppendUvarint(dst, w[0]) }
func (c *countRows) readW(src []byte, w []uint64) ([]byte, error) { return readCount(src, w) }

func readCount(src []byte, w []uint64) ([]byte, error) {
	var err error
	w[0], src, err = readUvarint(src)
	return src, err
}

func (c *countValues) words() int { return 1 }
func (c *countValues) addW(w []uint64, row record.Row, _ int64) {
	if !row[c.field].IsNull() {
		w[0]++
	}
}
func (c *countValues) mergeW(dst, src []uint64)                     { dst[0] += src[0] }
func (c *countValues) resultW(w []uint64) record.Value              { return record.Int(int64(w[0])) }
func (c *countValues) toAcc(w []uint64, a *Acc)                     { *a = Acc{N: int64(w[0])} }
func (c *countValues) fromAcc(a *Acc, w []uint64)                   { w[0] = uint64(a.N) }
func (c *countValues) appendW(dst []byte, w []uint64) []byte        { return binary.AppendUvarint(dst, w[0]) }
func (c *countValues) readW(src []byte, w []uint64) ([]byte, error) { return readCount(src, w) }

// Sums and averages: two words, the count then the sum (int64 for an int
// sum, float64 bits otherwise).

func (s *sumInt) words() int { return 2 }
func (s *sumInt) addW(w []uint64, row record.Row, _ int64) {
	v := row[s.field]
	if v.IsNull() {
		return
	}
	w[0]++
	w[1] = uint64(int64(w[1]) + v.Int())
}
func (s *sumInt) mergeW(dst, src []uint64) {
	dst[0] += src[0]
	dst[1] = uint64(int64(dst[1]) + int64(src[1]))
}
func (s *sumInt) resultW(w []uint64) record.Value {
	if w[0] == 0 {
		return record.Null
	}
	return record.Int(int64(w[1]))
}
func (s *sumInt) toAcc(w []uint64, a *Acc) {
	*a = Acc{N: int64(w[0])}
	if w[0] > 0 {
		a.V = record.Int(int64(w[1]))
	}
}
func (s *sumInt) fromAcc(a *Acc, w []uint64) { w[0], w[1] = uint64(a.N), a.V.N }
func (s *sumInt) appendW(dst []byte, w []uint64) []byte {
	dst = binary.AppendUvarint(dst, w[0])
	if w[0] > 0 {
		dst = binary.AppendVarint(dst, int64(w[1]))
	}
	return dst
}
func (s *sumInt) readW(src []byte, w []uint64) ([]byte, error) {
	var err error
	if w[0], src, err = readUvarint(src); err != nil || w[0] == 0 {
		return src, err
	}
	var x int64
	x, src, err = readVarint(src)
	w[1] = uint64(x)
	return src, err
}

// floatSum is the state of sum (float) and avg: count, then the sum's bits.
type floatSum struct{}

func (floatSum) words() int { return 2 }
func (floatSum) add(w []uint64, v record.Value) {
	if v.IsNull() {
		return
	}
	w[0]++
	w[1] = math.Float64bits(math.Float64frombits(w[1]) + v.Float())
}
func (floatSum) mergeW(dst, src []uint64) {
	dst[0] += src[0]
	dst[1] = math.Float64bits(math.Float64frombits(dst[1]) + math.Float64frombits(src[1]))
}
func (floatSum) toAcc(w []uint64, a *Acc)   { *a = Acc{N: int64(w[0]), F: math.Float64frombits(w[1])} }
func (floatSum) fromAcc(a *Acc, w []uint64) { w[0], w[1] = uint64(a.N), math.Float64bits(a.F) }
func (floatSum) appendW(dst []byte, w []uint64) []byte {
	return appendCountAnd(dst, w[0], w[1])
}
func (floatSum) readW(src []byte, w []uint64) ([]byte, error) {
	var err error
	w[0], w[1], src, err = readCountAnd(src)
	return src, err
}

func (s *sumFloat) words() int                                   { return floatSum{}.words() }
func (s *sumFloat) addW(w []uint64, row record.Row, _ int64)     { floatSum{}.add(w, row[s.field]) }
func (s *sumFloat) mergeW(dst, src []uint64)                     { floatSum{}.mergeW(dst, src) }
func (s *sumFloat) toAcc(w []uint64, a *Acc)                     { floatSum{}.toAcc(w, a) }
func (s *sumFloat) fromAcc(a *Acc, w []uint64)                   { floatSum{}.fromAcc(a, w) }
func (s *sumFloat) appendW(dst []byte, w []uint64) []byte        { return floatSum{}.appendW(dst, w) }
func (s *sumFloat) readW(src []byte, w []uint64) ([]byte, error) { return floatSum{}.readW(src, w) }
func (s *sumFloat) resultW(w []uint64) record.Value {
	if w[0] == 0 {
		return record.Null
	}
	return record.Float(math.Float64frombits(w[1]))
}

func (s *avg) words() int                                   { return floatSum{}.words() }
func (s *avg) addW(w []uint64, row record.Row, _ int64)     { floatSum{}.add(w, row[s.field]) }
func (s *avg) mergeW(dst, src []uint64)                     { floatSum{}.mergeW(dst, src) }
func (s *avg) toAcc(w []uint64, a *Acc)                     { floatSum{}.toAcc(w, a) }
func (s *avg) fromAcc(a *Acc, w []uint64)                   { floatSum{}.fromAcc(a, w) }
func (s *avg) appendW(dst []byte, w []uint64) []byte        { return floatSum{}.appendW(dst, w) }
func (s *avg) readW(src []byte, w []uint64) ([]byte, error) { return floatSum{}.readW(src, w) }
func (s *avg) resultW(w []uint64) record.Value {
	if w[0] == 0 {
		return record.Null
	}
	return record.Float(math.Float64frombits(w[1]) / float64(w[0]))
}

// min and max. A float field keeps one word: the extreme's bits XOR a NaN
// pattern, so that all-zero is empty (a NaN is never kept: min and max
// skip NaN like null). Int, timestamp and bool fields keep two: whether a
// value was seen, then the value. Strings keep an Acc.

// emptyFloat is the NaN whose bits stand for "no value" once XORed.
const emptyFloat = 0x7ff8_0000_dead_beef

func (e *extreme) words() int {
	switch e.typ {
	case record.TypeFloat:
		return 1
	case record.TypeInt, record.TypeTimestamp, record.TypeBool:
		return 2
	}
	return 0
}

func (e *extreme) addW(w []uint64, row record.Row, _ int64) {
	v := row[e.field]
	if v.IsNull() {
		return
	}
	if e.typ == record.TypeFloat {
		f := v.Float()
		if f != f {
			return
		}
		if w[0] == 0 || e.betterFloat(f, math.Float64frombits(w[0]^emptyFloat)) {
			w[0] = math.Float64bits(f) ^ emptyFloat
		}
		return
	}
	x := int64(v.N)
	if w[0] == 0 || x != int64(w[1]) && (x > int64(w[1])) == (e.sign > 0) {
		w[0], w[1] = 1, uint64(x)
	}
}

func (e *extreme) betterFloat(v, cur float64) bool {
	if e.sign > 0 {
		return v > cur
	}
	return v < cur
}

func (e *extreme) mergeW(dst, src []uint64) {
	if e.typ == record.TypeFloat {
		if src[0] != 0 && (dst[0] == 0 || e.betterFloat(math.Float64frombits(src[0]^emptyFloat), math.Float64frombits(dst[0]^emptyFloat))) {
			dst[0] = src[0]
		}
		return
	}
	if src[0] != 0 && (dst[0] == 0 || src[1] != dst[1] && (int64(src[1]) > int64(dst[1])) == (e.sign > 0)) {
		dst[0], dst[1] = 1, src[1]
	}
}

func (e *extreme) resultW(w []uint64) record.Value {
	switch {
	case w[0] == 0:
		return record.Null
	case e.typ == record.TypeFloat:
		return record.Value{N: w[0] ^ emptyFloat, T: record.TypeFloat}
	}
	return record.Value{N: w[1], T: e.typ}
}

func (e *extreme) toAcc(w []uint64, a *Acc) {
	*a = Acc{}
	if v := e.resultW(w); !v.IsNull() {
		a.V, a.N = v, 1
	}
}

func (e *extreme) fromAcc(a *Acc, w []uint64) {
	clear(w[:e.words()])
	if a.N == 0 {
		return
	}
	if e.typ == record.TypeFloat {
		w[0] = math.Float64bits(a.V.Float()) ^ emptyFloat
		return
	}
	w[0], w[1] = 1, a.V.N
}

func (e *extreme) appendW(dst []byte, w []uint64) []byte {
	if e.typ == record.TypeFloat {
		return binary.LittleEndian.AppendUint64(dst, w[0])
	}
	return appendCountAnd(dst, w[0], w[1])
}

func (e *extreme) readW(src []byte, w []uint64) ([]byte, error) {
	var err error
	if e.typ == record.TypeFloat {
		if w[0], src, err = readFixed(src); err == nil && w[0] != 0 {
			if f := math.Float64frombits(w[0] ^ emptyFloat); f != f {
				return nil, fmt.Errorf("read %s: a NaN extreme", e.name)
			}
		}
		return src, err
	}
	if w[0], w[1], src, err = readCountAnd(src); err == nil && w[0] > 1 {
		return nil, fmt.Errorf("read %s: bad presence word %d", e.name, w[0])
	}
	return src, err
}

var (
	_ wordAgg = (*countRows)(nil)
	_ wordAgg = (*countValues)(nil)
	_ wordAgg = (*sumInt)(nil)
	_ wordAgg = (*sumFloat)(nil)
	_ wordAgg = (*avg)(nil)
	_ wordAgg = (*extreme)(nil) // numeric fields; strings keep an Acc
)
