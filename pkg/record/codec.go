package record

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The value codec: the binary form of one Value, written into checkpoints
// (window state, held sink output) and used as a value's identity bytes.
// A value is a type byte (the Type constant) followed by its payload:
//
//	null       nothing
//	string     uvarint byte length, then the bytes
//	int        zigzag varint (binary.AppendVarint)
//	float      8 bytes, the IEEE 754 bits little endian
//	bool       uvarint, 0 or 1
//	timestamp  zigzag varint of the microseconds
//	struct, list, map
//	           uvarint byte length, then the canonical JSON text, as string
//
// The encoding is self-describing, so values of any schema can be read back
// one after another, and equal values encode to equal bytes. It is part of
// the checkpoint format: changing what an existing type byte is followed by
// makes older checkpoints unreadable.

// errTruncated reports input that ends inside a value.
var errTruncated = errors.New("truncated input")

// errVarintOverflow reports a varint longer than 64 bits.
var errVarintOverflow = errors.New("varint overflows 64 bits")

// AppendValue appends the encoding of v to dst and returns the extended
// slice.
func AppendValue(dst []byte, v Value) []byte {
	dst = append(dst, byte(v.T))
	switch v.T {
	case TypeString, TypeStruct, TypeList, TypeMap:
		dst = binary.AppendUvarint(dst, uint64(len(v.S)))
		dst = append(dst, v.S...)
	case TypeInt, TypeTimestamp:
		dst = binary.AppendVarint(dst, int64(v.N))
	case TypeFloat:
		dst = binary.LittleEndian.AppendUint64(dst, v.N)
	case TypeBool:
		dst = binary.AppendUvarint(dst, v.N)
	}
	return dst
}

// ReadValue decodes one value written by AppendValue from the front of src
// and returns it with the bytes after it. A decoded string (or nested JSON
// text) is a copy, never a view of src, so the caller may reuse src.
func ReadValue(src []byte) (Value, []byte, error) {
	if len(src) == 0 {
		return Null, nil, fmt.Errorf("read value: type: %w", errTruncated)
	}
	t := Type(src[0])
	src = src[1:]
	switch t {
	case TypeNull:
		return Null, src, nil
	case TypeString, TypeStruct, TypeList, TypeMap:
		n, k := binary.Uvarint(src)
		if k <= 0 {
			return Null, nil, fmt.Errorf("read value: %s length: %w", t, uvarintErr(k))
		}
		src = src[k:]
		if n > uint64(len(src)) {
			return Null, nil, fmt.Errorf("read value: %s of %d bytes, have %d: %w", t, n, len(src), errTruncated)
		}
		return Value{S: string(src[:n]), T: t}, src[n:], nil
	case TypeInt, TypeTimestamp:
		i, k := binary.Varint(src)
		if k <= 0 {
			return Null, nil, fmt.Errorf("read value: %s: %w", t, uvarintErr(k))
		}
		return Value{N: uint64(i), T: t}, src[k:], nil
	case TypeFloat:
		if len(src) < 8 {
			return Null, nil, fmt.Errorf("read value: float: %w", errTruncated)
		}
		return Value{N: binary.LittleEndian.Uint64(src), T: t}, src[8:], nil
	case TypeBool:
		n, k := binary.Uvarint(src)
		if k <= 0 {
			return Null, nil, fmt.Errorf("read value: bool: %w", uvarintErr(k))
		}
		return Value{N: n, T: t}, src[k:], nil
	}
	return Null, nil, fmt.Errorf("read value: unknown type %d", t)
}

// uvarintErr explains a non-positive length from binary.Uvarint or
// binary.Varint: 0 is a truncated varint, negative one past 64 bits.
func uvarintErr(k int) error {
	if k == 0 {
		return errTruncated
	}
	return errVarintOverflow
}
