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

// AppendFieldType appends the binary form of f's type, the schema
// counterpart of AppendValue: the type byte, then for a struct the number
// of members (uvarint) and each member's name (uvarint length, bytes) and
// type, for a list or a map its element type. A scalar type is its type
// byte alone. f's own name is not written.
func AppendFieldType(dst []byte, f Field) []byte {
	dst = append(dst, byte(f.Type))
	switch f.Type {
	case TypeStruct:
		dst = binary.AppendUvarint(dst, uint64(len(f.Fields)))
		for _, m := range f.Fields {
			dst = binary.AppendUvarint(dst, uint64(len(m.Name)))
			dst = append(dst, m.Name...)
			dst = AppendFieldType(dst, m)
		}
	case TypeList, TypeMap:
		var elem Field
		if f.Elem != nil {
			elem = *f.Elem
		}
		dst = AppendFieldType(dst, elem)
	}
	return dst
}

// ReadFieldType decodes a type written by AppendFieldType from the front of
// src into a field named name, and returns it with the bytes after it. It
// accepts only scalar and nested types, at most MaxNestedDepth levels deep;
// whether a struct has members and its names are unique is left to
// Field.Validate (NewSchema calls it).
func ReadFieldType(src []byte, name string) (Field, []byte, error) {
	return readFieldType(src, name, 1)
}

func readFieldType(src []byte, path string, depth int) (Field, []byte, error) {
	f := Field{Name: path}
	if len(src) == 0 {
		return f, nil, fmt.Errorf("read field %q: type: %w", path, errTruncated)
	}
	f.Type = Type(src[0])
	src = src[1:]
	switch {
	case f.Type.Scalar():
		return f, src, nil
	case !f.Type.Nested():
		return f, nil, fmt.Errorf("read field %q: unknown type %d", path, f.Type)
	case depth > MaxNestedDepth:
		return f, nil, fmt.Errorf("read field %q: nested more than %d levels deep", path, MaxNestedDepth)
	}
	if f.Type != TypeStruct {
		elem, rest, err := readFieldType(src, path+"[]", depth+1)
		if err != nil {
			return f, nil, err
		}
		elem.Name = ""
		f.Elem = &elem
		return f, rest, nil
	}
	n, k := binary.Uvarint(src)
	if k <= 0 {
		return f, nil, fmt.Errorf("read field %q: member count: %w", path, uvarintErr(k))
	}
	src = src[k:]
	// A member is at least its name's length and its type byte.
	if n > uint64(len(src)/2) {
		return f, nil, fmt.Errorf("read field %q: %d members in %d bytes: %w", path, n, len(src), errTruncated)
	}
	f.Fields = make([]Field, 0, n)
	for range n {
		l, k := binary.Uvarint(src)
		if k <= 0 {
			return f, nil, fmt.Errorf("read field %q: member name: %w", path, uvarintErr(k))
		}
		src = src[k:]
		if l > uint64(len(src)) {
			return f, nil, fmt.Errorf("read field %q: member name of %d bytes, have %d: %w", path, l, len(src), errTruncated)
		}
		name := string(src[:l])
		m, rest, err := readFieldType(src[l:], path+"."+name, depth+1)
		if err != nil {
			return f, nil, err
		}
		m.Name = name
		f.Fields = append(f.Fields, m)
		src = rest
	}
	return f, src, nil
}
