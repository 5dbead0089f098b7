package window

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
	enc "github.com/DataDog/sketches-go/ddsketch/encoding"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
	"github.com/axiomhq/hyperloglog"

	"github.com/streamd/streamd/pkg/record"
)

// Accumulator encoding, used in checkpoints. One flags byte says which fields
// follow, so the common accumulator (a count, or a sum and a count) takes a
// few bytes:
//
//	flags  bit 0 N, bit 1 F, bit 2 V, bit 3 T, bit 4 X, bits 5-6 sketch kind,
//	       bit 7 reserved (must be 0)
//	N      zigzag varint
//	F      8 bytes, IEEE 754 bits little endian
//	V      value (see record.AppendValue)
//	T      zigzag varint
//	X      value
//	sketch 4-byte little-endian length, then the library's own encoding:
//	       HyperLogLog MarshalBinary, or DDSketch Encode without its index
//	       mapping (always the one quantile uses).
const (
	accN = 1 << iota
	accF
	accV
	accT
	accX
	accSketchShift = 5
	accSketchMask  = 3 << accSketchShift
	accReserved    = 1 << 7
)

// Sketch kinds in the flags byte.
const (
	sketchNone = iota
	sketchHLL
	sketchDD
)

// errTruncated reports input that ends inside a field.
var errTruncated = errors.New("truncated input")

// errSketchMapping reports a quantile sketch built with another accuracy,
// which cannot be merged with this package's sketches.
var errSketchMapping = errors.New("index mapping mismatch")

// errVarintOverflow reports a varint longer than 64 bits.
var errVarintOverflow = errors.New("varint overflows 64 bits")

// AppendAcc appends the encoding of a to dst. It does not modify a. It panics
// if a.Sketch holds a type no aggregate in this package creates, which is a
// programming error rather than bad input.
func AppendAcc(dst []byte, a *Acc) []byte {
	if small, ok := a.Sketch.(*smallDistinct); ok {
		// Stored as the sketch it would become: one format to read.
		c := *a
		c.Sketch = small.sketch(false)
		a = &c
	}
	var flags byte
	if a.N != 0 {
		flags |= accN
	}
	// Compare bits, not values, so -0 survives a round trip.
	if math.Float64bits(a.F) != 0 {
		flags |= accF
	}
	if !a.V.IsNull() {
		flags |= accV
	}
	if a.T != 0 {
		flags |= accT
	}
	if !a.X.IsNull() {
		flags |= accX
	}
	kind := sketchNone
	switch sk := a.Sketch.(type) {
	case nil:
	case *hyperloglog.Sketch:
		if sk != nil {
			kind = sketchHLL
		}
	case *ddsketch.DDSketch:
		if sk != nil {
			kind = sketchDD
		}
	default:
		panic(fmt.Sprintf("append acc: unsupported sketch type %T", a.Sketch))
	}
	flags |= byte(kind) << accSketchShift

	start := len(dst)
	dst = append(dst, flags)
	if flags&accN != 0 {
		dst = binary.AppendVarint(dst, a.N)
	}
	if flags&accF != 0 {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(a.F))
	}
	if flags&accV != 0 {
		dst = record.AppendValue(dst, a.V)
	}
	if flags&accT != 0 {
		dst = binary.AppendVarint(dst, a.T)
	}
	if flags&accX != 0 {
		dst = record.AppendValue(dst, a.X)
	}
	if kind == sketchNone {
		return dst
	}

	lenAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	switch sk := a.Sketch.(type) {
	case *hyperloglog.Sketch:
		out, err := sk.AppendBinary(dst)
		if err != nil {
			// Only a never-used zero Sketch has no encoding; it holds
			// nothing, so the accumulator is written without it.
			dst = dst[:lenAt]
			dst[start] &^= accSketchMask
			return dst
		}
		dst = out
	case *ddsketch.DDSketch:
		sk.Encode(&dst, true)
	}
	binary.LittleEndian.PutUint32(dst[lenAt:], uint32(len(dst)-lenAt-4))
	return dst
}

// ReadAcc decodes one accumulator from the front of src into a, replacing
// everything a held, and returns the bytes after it. Decoded strings and
// sketches do not alias src, so the caller may reuse src. On error a is left
// in an unspecified state.
func ReadAcc(src []byte, a *Acc) (rest []byte, err error) {
	*a = Acc{}
	if len(src) == 0 {
		return nil, fmt.Errorf("read acc: flags: %w", errTruncated)
	}
	flags := src[0]
	src = src[1:]
	if flags&accReserved != 0 {
		return nil, fmt.Errorf("read acc: reserved flag bit set in %#02x", flags)
	}
	if flags&accN != 0 {
		if a.N, src, err = readVarint(src); err != nil {
			return nil, fmt.Errorf("read acc: n: %w", err)
		}
	}
	if flags&accF != 0 {
		if len(src) < 8 {
			return nil, fmt.Errorf("read acc: f: %w", errTruncated)
		}
		a.F = math.Float64frombits(binary.LittleEndian.Uint64(src))
		src = src[8:]
	}
	if flags&accV != 0 {
		if a.V, src, err = record.ReadValue(src); err != nil {
			return nil, fmt.Errorf("read acc: v: %w", err)
		}
	}
	if flags&accT != 0 {
		if a.T, src, err = readVarint(src); err != nil {
			return nil, fmt.Errorf("read acc: t: %w", err)
		}
	}
	if flags&accX != 0 {
		if a.X, src, err = record.ReadValue(src); err != nil {
			return nil, fmt.Errorf("read acc: x: %w", err)
		}
	}
	kind := int(flags&accSketchMask) >> accSketchShift
	if kind == sketchNone {
		return src, nil
	}
	if len(src) < 4 {
		return nil, fmt.Errorf("read acc: sketch length: %w", errTruncated)
	}
	n := uint64(binary.LittleEndian.Uint32(src))
	src = src[4:]
	if n > uint64(len(src)) {
		return nil, fmt.Errorf("read acc: sketch of %d bytes, have %d: %w", n, len(src), errTruncated)
	}
	payload := src[:n]
	src = src[n:]
	switch kind {
	case sketchHLL:
		sk := new(hyperloglog.Sketch)
		if err := sk.UnmarshalBinary(payload); err != nil {
			return nil, fmt.Errorf("read acc: distinct-count sketch: %w", err)
		}
		a.Sketch = sk
	case sketchDD:
		sk, err := decodeQuantileSketch(payload)
		if err != nil {
			return nil, fmt.Errorf("read acc: quantile sketch: %w", err)
		}
		a.Sketch = sk
	default:
		return nil, fmt.Errorf("read acc: unknown sketch kind %d", kind)
	}
	return src, nil
}

// decodeQuantileSketch decodes a DDSketch written by Encode. It walks the
// flags itself rather than calling ddsketch.DecodeDDSketch, which ignores
// errors from its stores, and it decodes bins into a map-backed store first so
// that out-of-range indexes or bad counts are rejected before they reach the
// bounded store, whose index arithmetic assumes sane input.
func decodeQuantileSketch(b []byte) (*ddsketch.DDSketch, error) {
	m, err := quantileMapping()
	if err != nil {
		return nil, err
	}
	pos, neg := store.NewSparseStore(), store.NewSparseStore()
	var zeros float64
	for len(b) > 0 {
		raw := b[0]
		flag, err := enc.DecodeFlag(&b)
		if err != nil {
			return nil, fmt.Errorf("decode flag: %w", err)
		}
		switch {
		case flag.Type() == enc.FlagTypePositiveStore:
			err = pos.DecodeAndMergeWith(&b, flag.SubFlag())
		case flag.Type() == enc.FlagTypeNegativeStore:
			err = neg.DecodeAndMergeWith(&b, flag.SubFlag())
		case flag.Type() == enc.FlagTypeIndexMapping:
			var dm mapping.IndexMapping
			if dm, err = mapping.Decode(&b, flag); err == nil && !dm.Equals(m) {
				err = errSketchMapping
			}
		case flag == enc.FlagZeroCountVarFloat:
			var z float64
			z, err = enc.DecodeVarfloat64(&b)
			zeros += z
		default:
			err = fmt.Errorf("unknown flag %#02x", raw)
		}
		if err != nil {
			return nil, fmt.Errorf("decode sketch: %w", err)
		}
	}
	if !validCount(zeros) {
		return nil, fmt.Errorf("decode sketch: zero count %v", zeros)
	}
	lo, hi := m.Index(m.MinIndexableValue()), m.Index(m.MaxIndexableValue())
	sk := newQuantileSketch(m)
	for _, s := range []struct {
		from *store.SparseStore
		to   store.Store
	}{{pos, sk.GetPositiveValueStore()}, {neg, sk.GetNegativeValueStore()}} {
		var bad error
		s.from.ForEach(func(index int, count float64) bool {
			if index < lo || index > hi || !validCount(count) {
				bad = fmt.Errorf("decode sketch: bin %d with count %v", index, count)
				return true
			}
			s.to.AddWithCount(index, count)
			return false
		})
		if bad != nil {
			return nil, bad
		}
	}
	if zeros != 0 {
		// Adding at value 0 is how the library exposes its zero bucket.
		if err := sk.AddWithCount(0, zeros); err != nil {
			return nil, fmt.Errorf("decode zero count: %w", err)
		}
	}
	if !validCount(sk.GetCount()) {
		return nil, fmt.Errorf("decode sketch: total count %v", sk.GetCount())
	}
	return sk, nil
}

// validCount accepts the bin counts a sketch can hold: finite and not negative.
func validCount(c float64) bool { return c >= 0 && !math.IsInf(c, 1) }

func readVarint(src []byte) (int64, []byte, error) {
	v, k := binary.Varint(src)
	if k == 0 {
		return 0, nil, errTruncated
	}
	if k < 0 {
		return 0, nil, errVarintOverflow
	}
	return v, src[k:], nil
}

// uvarintErr explains a non-positive length from binary.Uvarint.
func uvarintErr(k int) error {
	if k == 0 {
		return errTruncated
	}
	return errVarintOverflow
}
