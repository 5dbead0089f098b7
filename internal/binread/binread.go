// Package binread reads the compact binary encodings of checkpoint states:
// varints, bytes and counts, in order, remembering the first error so a
// decoder can read a whole record and check once. Every length and count
// is bounded by the bytes that remain, so forged input cannot make a
// decoder allocate more than it holds.
package binread

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Reader consumes B. After the first error every read returns a zero value.
type Reader struct {
	B   []byte
	Err error
}

// Fail records err unless an error is already recorded.
func (r *Reader) Fail(err error) {
	if r.Err == nil {
		r.Err = err
	}
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	if r.Err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.B)
	if n <= 0 {
		r.Err = errors.New("bad varint")
		return 0
	}
	r.B = r.B[n:]
	return v
}

// Varint reads a signed (zigzag) varint.
func (r *Reader) Varint() int64 {
	if r.Err != nil {
		return 0
	}
	v, n := binary.Varint(r.B)
	if n <= 0 {
		r.Err = errors.New("bad varint")
		return 0
	}
	r.B = r.B[n:]
	return v
}

// Int64 reads an unsigned varint that must fit an int64.
func (r *Reader) Int64() int64 {
	v := r.Uvarint()
	if v > math.MaxInt64 {
		r.Fail(errors.New("integer out of range"))
		return 0
	}
	return int64(v)
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.Err != nil {
		return 0
	}
	if len(r.B) == 0 {
		r.Err = errors.New("truncated")
		return 0
	}
	v := r.B[0]
	r.B = r.B[1:]
	return v
}

// Count reads a number of items, each at least minSize bytes long.
func (r *Reader) Count(minSize int) int {
	n := r.Uvarint()
	if r.Err == nil && n > uint64(len(r.B)/max(minSize, 1)) {
		r.Err = fmt.Errorf("%d items in %d bytes", n, len(r.B))
	}
	if r.Err != nil {
		return 0
	}
	return int(n)
}

// Bytes reads a length-prefixed field; the result is a view of B.
func (r *Reader) Bytes() []byte {
	n := r.Uvarint()
	if r.Err != nil {
		return nil
	}
	if n > uint64(len(r.B)) {
		r.Err = fmt.Errorf("field of %d bytes exceeds the %d remaining", n, len(r.B))
		return nil
	}
	v := r.B[:n:n]
	r.B = r.B[n:]
	return v
}

// Str reads a length-prefixed string (a copy).
func (r *Reader) Str() string { return string(r.Bytes()) }
